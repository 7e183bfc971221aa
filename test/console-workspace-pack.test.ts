// The console's workspace packing (lib/console/app/workspace.ts, tar.ts) run
// on Node: the tar it builds from a folder is byte for byte the tar
// `launcher admin run trigger --workspace` builds (lib/workspace.ts
// packDirectory) for the same files, modes and times; sealed in pieces it
// opens with the `age` CLI and lists with `tar -t`; bad folders are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { packDirectory } from '../lib/workspace.ts';
import { planWorkspace, sealWorkspace, sealedPayloadBytes, tarPieces, type FolderFile } from '../lib/console/app/workspace.ts';

const work = mkdtempSync(join(tmpdir(), 'console-workspace-'));
const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
writeFileSync(join(work, 'spacelift.key'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
test.after(() => rmSync(work, { recursive: true, force: true }));

const LONG = `${'deep/'.repeat(30)}file.txt`; // over 100 bytes: ustar prefix
const VERY_LONG = `${'x'.repeat(120)}/${'y'.repeat(120)}/z.txt`; // no ustar split fits: pax path
const FILES: Record<string, string | Buffer> = {
  'README.md': '# hello\n',
  'docs/hello world.txt': 'spaces in the name\n',
  'docs/ünïcode.txt': 'a pax path\n',
  'a/b/c/nested.txt': 'three levels down\n',
  'Zeta.txt': 'sorts before a\n',
  'big.bin': Buffer.alloc(200_000, 7),
  'empty.txt': '',
  [LONG]: 'long\n',
  [VERY_LONG]: 'very long\n',
};

/** Writes FILES with the modes and times the browser uses (0644 files, 0755 directories, one time for directories). */
function makeFolder(dir: string, dirTime: Date, fileTime: Date): void {
  for (const [p, body] of Object.entries(FILES)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), body);
    chmodSync(join(dir, p), 0o644);
    utimesSync(join(dir, p), fileTime, fileTime);
  }
  const fixDirs = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) { fixDirs(p); chmodSync(p, 0o755); utimesSync(p, dirTime, dirTime); }
    }
  };
  fixDirs(dir);
}

const folderFiles = (fileTime: Date): FolderFile[] =>
  Object.entries(FILES).map(([path, body]) => ({ path, file: new Blob([typeof body === 'string' ? body : new Uint8Array(body)]), lastModified: fileTime.getTime() }));

async function concatPieces(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

test('the browser\'s tar of a folder is byte for byte the CLI\'s tar of the same directory', async () => {
  const dirTime = new Date('2026-11-30T10:00:00Z');
  const fileTime = new Date('2026-11-29T08:30:15Z');
  const dir = join(work, 'folder');
  makeFolder(dir, dirTime, fileTime);
  const cli = await buffer(packDirectory(dir));
  const ws = planWorkspace(folderFiles(fileTime).reverse(), dirTime.getTime());
  const browser = await concatPieces(tarPieces(ws));
  assert.is(browser.length, ws.tarBytes, 'the planned size is the archive\'s size');
  assert.is(browser.length, cli.length, 'same length');
  assert.ok(browser.equals(cli), 'same bytes');
  assert.is(ws.files, Object.keys(FILES).length);
  assert.is(ws.bytes, Object.values(FILES).reduce((n, b) => n + Buffer.byteLength(b), 0));
});

test('sealed in pieces, the workspace opens with age -d -i and tar -t lists the folder\'s paths', async () => {
  const ws = planWorkspace(folderFiles(new Date()), Date.now());
  let progress = 0;
  const { body, keys } = await sealWorkspace(ws, [pem], (n) => { progress = n; });
  assert.is(keys, 1);
  assert.is(progress, ws.files);
  const sealed = Buffer.from(await body.arrayBuffer());
  const headerEnd = sealed.indexOf('\n', sealed.indexOf('\n---') + 1) + 1;
  assert.is(sealed.length - headerEnd, sealedPayloadBytes(ws.tarBytes), 'the size estimate is exact after the header');
  writeFileSync(join(work, 'ws.age'), sealed);
  const tar = execFileSync('age', ['-d', '-i', join(work, 'spacelift.key'), join(work, 'ws.age')], { maxBuffer: 1 << 26 });
  writeFileSync(join(work, 'ws.tar'), tar);
  const listed = execFileSync('tar', ['-tf', join(work, 'ws.tar')], { encoding: 'utf8' }).trim().split('\n');
  for (const p of Object.keys(FILES)) assert.ok(listed.includes(p), `tar lists ${p}`);
  assert.ok(listed.includes('docs/') && listed.includes('a/b/c/'), 'directories are listed');
  const out = join(work, 'extracted');
  mkdirSync(out);
  execFileSync('tar', ['-xf', join(work, 'ws.tar'), '-C', out]);
  assert.is(readFileSync(join(out, 'docs/hello world.txt'), 'utf8'), 'spaces in the name\n');
  assert.ok(readFileSync(join(out, 'big.bin')).equals(FILES['big.bin'] as Buffer));
});

test('paths that cannot be a workspace are refused, naming the path and why', () => {
  const f = (path: string): FolderFile => ({ path, file: new Blob(['x']), lastModified: 0 });
  assert.throws(() => planWorkspace([f('a/../b')], 0), /Cannot use "a\/..\/b" in the workspace: expected a path relative to the folder/);
  assert.throws(() => planWorkspace([f('a'), f('a/b')], 0), /"a" is both a file and a directory/);
  assert.throws(() => planWorkspace([f('a/b'), f('a')], 0), /"a" is both a file and a directory/);
  assert.throws(() => planWorkspace([f('x'), f('x')], 0), /lists it twice/);
  assert.throws(() => planWorkspace([f('n\0ul')], 0), /NUL byte/);
});

test.run();
