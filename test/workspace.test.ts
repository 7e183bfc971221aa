import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdtempSync, mkdirSync, writeFileSync, readFileSync, symlinkSync, readlinkSync, rmSync, existsSync, lstatSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack, extract } from 'tar-stream';
import { checkHeader, extractToDirectory, packDirectory, safeArchive, safeEntryName } from '../lib/workspace.ts';

const root = new URL('..', import.meta.url).pathname;
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'launcher-ws-'));
  dirs.push(d);
  return d;
}

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; body?: string };
function tarOf(entries: Entry[]): Readable {
  const p = pack();
  for (const e of entries) {
    if ((e.type ?? 'file') === 'file') p.entry({ name: e.name }, e.body ?? '');
    else p.entry({ name: e.name, type: e.type!, ...(e.linkname ? { linkname: e.linkname } : {}) });
  }
  p.finalize();
  return Readable.from(p, { objectMode: false });
}

async function names(tar: Readable): Promise<string[]> {
  const ex = extract();
  const out: string[] = [];
  const done = (async () => { for await (const e of ex) { out.push(e.header.name); for await (const _ of e) { /* drain */ } } })();
  for await (const c of tar) ex.write(c as Uint8Array);
  (ex as unknown as { end(): void }).end();
  await done;
  return out;
}

async function refused(tar: Readable): Promise<string> {
  try {
    await names(safeArchive(tar));
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the archive to be refused');
}

test('entry names: relative names normalised, absolute and .. refused', () => {
  assert.is(safeEntryName('./a/b'), 'a/b');
  assert.is(safeEntryName('a//b/./c'), 'a/b/c');
  assert.is(safeEntryName('./'), '');
  assert.throws(() => safeEntryName('/etc/passwd'), /absolute path/);
  assert.throws(() => safeEntryName('a/../../b'), /contains "\.\."/);
  assert.throws(() => safeEntryName('..'), /contains "\.\."/);
});

test('links: inside targets pass, escaping and absolute targets are refused', () => {
  assert.ok(checkHeader({ name: 'a/l', type: 'symlink', linkname: '../b' }));
  // "sub/../x" normalises to "x", but the kernel follows sub first: if sub is a link to
  // "d/s" and d/s a link to "..", it lands outside. Refused, since only leading ".." is safe.
  assert.throws(() => checkHeader({ name: 'l', type: 'symlink', linkname: 'sub/../x' }), /"\.\." after a name/);
  assert.ok(checkHeader({ name: 'a/b/l', type: 'symlink', linkname: '../../x/y' }));
  assert.throws(() => checkHeader({ name: 'a/l', type: 'symlink', linkname: '../../etc' }), /points outside the workspace/);
  assert.throws(() => checkHeader({ name: 'l', type: 'symlink', linkname: '/etc/shadow' }), /absolute path/);
  assert.throws(() => checkHeader({ name: 'h', type: 'link', linkname: '../x' }), /points outside/);
  assert.is(checkHeader({ name: 'workspace/a/h', type: 'link', linkname: 'workspace/a/f' }, 'workspace')!.linkname, 'a/f');
  assert.is(checkHeader({ name: 'workspace/', type: 'directory' }, 'workspace'), null);
});

test('safeArchive passes a clean archive through and refuses an escaping one at the bad entry', async () => {
  assert.equal(await names(safeArchive(tarOf([{ name: 'a.txt', body: 'x' }, { name: 'd', type: 'directory' }, { name: 'd/l', type: 'symlink', linkname: '../a.txt' }]))),
    ['a.txt', 'd/', 'd/l']);
  assert.match(await refused(tarOf([{ name: 'ok' }, { name: '../evil', body: 'x' }])), /Refusing workspace archive entry "\.\.\/evil"/);
  assert.match(await refused(tarOf([{ name: '/etc/cron.d/x', body: 'x' }])), /absolute path/);
  assert.match(await refused(tarOf([{ name: 'l', type: 'symlink', linkname: '../../../etc' }])), /points outside/);
});

test('safeArchive rebases the engine archive of /workspace onto the workspace root', async () => {
  const tar = tarOf([{ name: 'workspace', type: 'directory' }, { name: 'workspace/f', body: 'x' }, { name: 'workspace/d', type: 'directory' }]);
  assert.equal(await names(safeArchive(tar, { stripPrefix: 'workspace' })), ['f', 'd/']);
});

test('packDirectory → extractToDirectory round trip keeps files, modes and in-workspace symlinks', async () => {
  const src = tmp();
  mkdirSync(join(src, 'sub/deep'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'hello');
  writeFileSync(join(src, 'sub/deep/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  writeFileSync(join(src, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 7, 7));
  symlinkSync('../a.txt', join(src, 'sub/link'));
  const dst = tmp();
  await extractToDirectory(safeArchive(packDirectory(src)), join(dst, 'out'));
  assert.is(readFileSync(join(dst, 'out/a.txt'), 'utf8'), 'hello');
  assert.is(lstatSync(join(dst, 'out/sub/deep/run.sh')).mode & 0o777, 0o755);
  assert.is(readFileSync(join(dst, 'out/big.bin')).length, 3 * 1024 * 1024 + 7);
  assert.is(readlinkSync(join(dst, 'out/sub/link')), '../a.txt');
});

test('extractToDirectory refuses escaping entries and writing through a symlink', async () => {
  const dst = tmp();
  let msg = '';
  try { await extractToDirectory(tarOf([{ name: '../escape.txt', body: 'x' }]), join(dst, 'w')); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /contains "\.\."/);
  assert.not.ok(existsSync(join(dst, 'escape.txt')));
  // A symlink that stays inside, then a file written "through" it: refused, since
  // a chain of such links is how lexical checks get fooled.
  msg = '';
  try {
    await extractToDirectory(tarOf([{ name: 'd', type: 'symlink', linkname: '.' }, { name: 'd/f', body: 'x' }]), join(dst, 'w2'));
  } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /"d" on its path is a symbolic link/);
});

/** The bytes of a tar holding `entries` (files only), built before any test stream reads them. */
async function tarBytes(entries: Array<{ name: string; body?: Buffer | string }>): Promise<Buffer> {
  const p = pack();
  for (const e of entries) p.entry({ name: e.name }, e.body ?? '');
  p.finalize();
  const parts: Buffer[] = [];
  for await (const c of p) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A plain Node stream of `buf` in 64 KiB chunks, standing in for a file or a socket. */
function chunked(buf: Buffer): Readable {
  let i = 0;
  return new Readable({ read() { if (i >= buf.length) this.push(null); else { this.push(buf.subarray(i, i + 65536)); i += 65536; } } });
}

/** Lets queued stream work run (event-loop turns, not a clock) until `cond` holds or the turns run out. */
async function eventually(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  return cond();
}

const bigFiles = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `f${i}`, body: Buffer.alloc(256 * 1024, i) }));

test('extractToDirectory: a refused entry destroys the input (no file or socket left open, no hang)', async () => {
  const src = chunked(await tarBytes([{ name: '/etc/bad', body: 'x' }, ...bigFiles(40)]));
  let msg = '';
  try { await extractToDirectory(src, join(tmp(), 'w')); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, /absolute path/);
  assert.ok(await eventually(() => src.destroyed), 'the input stream is destroyed');
});

test('safeArchive: a consumer that goes away destroys the input and does not crash the process', async () => {
  const src = chunked(await tarBytes(bigFiles(40)));
  const out = safeArchive(src);
  const failed = new Promise<Error>((resolve) => out.on('error', resolve));
  out.once('data', () => out.destroy(new Error('upload failed')));
  assert.match((await failed).message, /upload failed/);
  assert.ok(await eventually(() => src.destroyed), 'the input stream is destroyed');
});

test('packDirectory: a consumer that goes away mid-file does not crash the process', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 1));
  writeFileSync(join(dir, 'later.txt'), 'x');
  const out = packDirectory(dir);
  const failed = new Promise<Error>((resolve) => out.on('error', resolve));
  out.once('data', () => out.destroy(new Error('upload failed')));
  assert.match((await failed).message, /upload failed/);
  // An unhandled 'error' from the tar entry would surface on a later turn; give it those turns.
  assert.not.ok(await eventually(() => false));
});

/** A tar with any entry types (devices too), as plain bytes. */
async function rawTar(entries: TarHeaderIn[]): Promise<Readable> {
  const p = pack();
  for (const e of entries) p.entry(e, e.type === 'file' ? (e as { body?: string }).body ?? '' : undefined as unknown as string);
  p.finalize();
  const parts: Buffer[] = [];
  for await (const c of p) parts.push(c as Buffer);
  return chunked(Buffer.concat(parts));
}
type TarHeaderIn = Parameters<typeof checkHeader>[0] & { body?: string };

async function extractError(entries: TarHeaderIn[], dir: string): Promise<string> {
  try { await extractToDirectory(await rawTar(entries), dir); } catch (e) { return (e as Error).message; }
  return '';
}

test('extractToDirectory: a chain of in-workspace symlinks cannot hard-link a file outside the workspace', async () => {
  const parent = tmp();
  writeFileSync(join(parent, 'secret'), 'outside');
  const ws = join(parent, 'w');
  // d/s -> .. is the workspace root; a -> d/s/.. is lexically "d" but really the parent.
  const chain: TarHeaderIn[] = [
    { name: 'd/', type: 'directory' },
    { name: 'd/s', type: 'symlink', linkname: '..' },
    { name: 'a', type: 'symlink', linkname: 'd/s/..' },
    { name: 'h', type: 'link', linkname: 'a/secret' },
  ];
  assert.match(await extractError(chain, ws), /"\.\." after a name/);
  assert.is(lstatSync(join(parent, 'secret')).nlink, 1);
  assert.not.ok(existsSync(join(ws, 'h')));
  // Even without the chain: a hard link whose source path runs through a symlink is refused.
  const via: TarHeaderIn[] = [
    { name: 'real/', type: 'directory' },
    { name: 'real/f', type: 'file', body: 'x' },
    { name: 'l', type: 'symlink', linkname: 'real' },
    { name: 'h', type: 'link', linkname: 'l/f' },
  ];
  assert.match(await extractError(via, join(parent, 'w2')), /"l" on its path is a symbolic link/);
  assert.not.ok(existsSync(join(parent, 'w2/h')));
});

test('extractToDirectory: setuid, setgid and sticky bits are dropped on the host', async () => {
  const ws = join(tmp(), 'w');
  await extractToDirectory(await rawTar([
    { name: 'suid', type: 'file', mode: 0o4755, body: '#!/bin/sh\n' },
    { name: 'sgid', type: 'file', mode: 0o2755, body: 'x' },
    { name: 'tmpdir/', type: 'directory', mode: 0o1777 },
  ]), ws);
  assert.is(lstatSync(join(ws, 'suid')).mode & 0o7777, 0o755 & ~process.umask());
  assert.is(lstatSync(join(ws, 'sgid')).mode & 0o7000, 0);
  assert.is(lstatSync(join(ws, 'tmpdir')).mode & 0o7000, 0);
});

test('extractToDirectory: read-only directories are restored without blocking their own contents (as a non-root user)', async () => {
  const parent = tmp();
  const tarFile = join(parent, 'ws.tar');
  const chunks: Buffer[] = [];
  for await (const c of await rawTar([
    { name: 'ro/', type: 'directory', mode: 0o555 },
    { name: 'ro/sub/', type: 'directory', mode: 0o555 },
    { name: 'ro/sub/g', type: 'file', mode: 0o644, body: 'deep' },
    { name: 'ro/f', type: 'file', mode: 0o644, body: 'x' },
  ])) chunks.push(c as Buffer);
  writeFileSync(tarFile, Buffer.concat(chunks));
  const dest = join(parent, 'out');
  mkdirSync(dest);
  // Root ignores directory permissions, so the extraction runs as nobody.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    chmodSync(parent, 0o755);
    chownSync(dest, 65534, 65534);
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'test/helpers/workspace-extract.ts'), tarFile, dest], {
    cwd: root, encoding: 'utf8', ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  assert.is(r.stdout.trim(), 'ok', r.stderr);
  assert.is(readFileSync(join(dest, 'ro/sub/g'), 'utf8'), 'deep');
  assert.is(lstatSync(join(dest, 'ro')).mode & 0o777, 0o555, 'the archived mode is applied once the contents are in');
  assert.is(lstatSync(join(dest, 'ro/sub')).mode & 0o777, 0o555);
  if (!asRoot) { chmodSync(join(dest, 'ro/sub'), 0o755); chmodSync(join(dest, 'ro'), 0o755); } // so cleanup can remove it
});

test('safeArchive drops device and FIFO entries and keeps the rest', async () => {
  const tar = await rawTar([
    { name: 'a.txt', type: 'file', body: 'x' },
    { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 },
    { name: 'mem', type: 'character-device', devmajor: 1, devminor: 1 },
    { name: 'pipe', type: 'fifo' },
    { name: 'b.txt', type: 'file', body: 'y' },
  ]);
  assert.equal(await names(safeArchive(tar)), ['a.txt', 'b.txt']);
});

test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

test.run();
