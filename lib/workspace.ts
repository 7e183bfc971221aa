// Workspace archives: the tar streams that carry a run's /workspace between
// the host, the container and later phases. Every archive is checked entry by
// entry as it streams: absolute names, `..` components and links that point
// outside the workspace are refused, so an archive can never write or expose
// anything beyond the workspace (in the container or on the host).
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readlink, symlink, link, rm, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, pack, type Header, type Pack } from 'tar-stream';
import { feedEntry } from './tar-feed.ts';
import { LauncherError } from './errors.ts';

/** What tar-stream accepts for an entry: a name and any other header fields. */
export type TarHeader = Partial<Header> & { name: string };

/** tar-stream speaks streamx; hand out plain Node streams (errors carried through). */
function nodeReadable(p: Pack): Readable {
  return Readable.from(p, { objectMode: false });
}

function sinkGone(): LauncherError {
  return new LauncherError('WORKSPACE_STREAM_CLOSED', 'Cannot copy the workspace archive: its destination closed before the archive ended');
}

/** Writes a stream into a tar-stream writable with backpressure, then ends it. */
function feed(src: AsyncIterable<unknown>, sink: object): Promise<void> {
  return feedEntry(src, sink, sinkGone);
}

/** Starts one entry of `out` and copies `body` into it; settles when the entry is written or fails. */
function copyEntry(out: Pack, h: TarHeader, body: AsyncIterable<unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = out.entry(h, (err) => (err ? reject(err) : resolve()));
    // Without a listener, an entry destroyed because the consumer went away
    // (a failed upload) emits an unhandled 'error' and takes the process down.
    sink.on('error', reject);
    feed(body, sink).catch(reject);
  });
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry) { /* skip this entry's data */ }
}

function unsafe(name: string, why: string): LauncherError {
  return new LauncherError('WORKSPACE_UNSAFE', `Refusing workspace archive entry "${name}": ${why} (entries must stay inside the workspace)`);
}

/** Normalises an entry name to a relative path inside the workspace, or throws. "" is the workspace itself. */
export function safeEntryName(name: string): string {
  if (name.includes('\0')) throw unsafe(name.replace(/\0/g, '\\0'), 'the name contains a NUL byte');
  if (name.startsWith('/')) throw unsafe(name, 'absolute path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(name, 'the path contains ".."');
  return parts.join('/');
}

/** Checks a link entry: a symlink target resolves relative to its own directory, a hard link's relative to the root. */
export function checkLink(name: string, type: 'symlink' | 'link', linkname: string): string {
  if (linkname.startsWith('/')) throw unsafe(name, `${type} to the absolute path "${linkname}"`);
  if (linkname.includes('\0')) throw unsafe(name, `${type} target contains a NUL byte`);
  if (type === 'symlink') {
    // The kernel resolves "x/.." by following x first, so "d/s/.." leaves the
    // workspace when d/s is itself a link to "..", while posix.normalize says
    // "d". Only leading ".." components resolve the same both ways.
    const parts = linkname.split('/').filter((p) => p !== '' && p !== '.');
    const firstNamed = parts.findIndex((p) => p !== '..');
    if (firstNamed >= 0 && parts.indexOf('..', firstNamed) >= 0) {
      throw unsafe(name, `symlink to "${linkname}" has ".." after a name, which a chain of links can turn outside the workspace`);
    }
  }
  const base = type === 'symlink' ? posix.dirname(name) : '.';
  const resolved = posix.normalize(posix.join(base, linkname));
  if (resolved === '..' || resolved.startsWith('../')) throw unsafe(name, `${type} to "${linkname}" points outside the workspace`);
  return type === 'link' ? safeEntryName(linkname) : linkname;
}

/** Checks one header and returns a normalised copy, or null for the workspace root entry. */
export function checkHeader(header: TarHeader, stripPrefix = ''): TarHeader | null {
  let name = header.name;
  let linkname = header.linkname ?? undefined;
  if (stripPrefix) {
    name = stripOne(name, stripPrefix);
    if (header.type === 'link' && linkname) linkname = stripOne(linkname, stripPrefix);
  }
  const clean = safeEntryName(name);
  if (clean === '') return null;
  const out: TarHeader = { ...header, name: header.type === 'directory' ? `${clean}/` : clean };
  if (header.type === 'symlink' || header.type === 'link') {
    out.linkname = checkLink(clean, header.type, linkname ?? '');
  }
  return out;
}

function stripOne(name: string, prefix: string): string {
  const n = name.replace(/^\.\//, '');
  if (n === prefix || n === `${prefix}/`) return '';
  if (n.startsWith(`${prefix}/`)) return n.slice(prefix.length + 1);
  throw unsafe(name, `expected it under "${prefix}/"`);
}

/**
 * Entry types a workspace may hold. Devices and FIFOs are dropped (as
 * packDirectory does): a device node restored into a container or onto the
 * host is a door to hardware, not workspace data.
 */
const WORKSPACE_TYPES = new Set(['file', 'contiguous-file', 'directory', 'symlink', 'link']);

/**
 * Re-packs `tar` entry by entry after checking each one; the output fails with
 * WORKSPACE_UNSAFE at the first bad entry. `stripPrefix` rebases the engine's
 * archive of /workspace (`workspace/…`) onto the workspace root.
 */
export function safeArchive(tar: Readable, opts: { stripPrefix?: string } = {}): Readable {
  const ex = extract();
  const out = pack();
  (async () => {
    const feeding = feed(tar, ex);
    feeding.catch(() => {});
    for await (const entry of ex) {
      const h = checkHeader(entry.header, opts.stripPrefix);
      if (h === null || !WORKSPACE_TYPES.has(h.type ?? 'file')) {
        await drain(entry); // the workspace root itself, or a device or FIFO: nothing to copy
        continue;
      }
      await copyEntry(out, h, entry);
    }
    await feeding;
    out.finalize();
  })().catch((e: unknown) => {
    out.destroy(e as Error);
    ex.destroy();
    tar.destroy();
  });
  return nodeReadable(out);
}

/** Streams a host directory as a workspace tar (regular files, directories, symlinks). */
export function packDirectory(dir: string): Readable {
  const out = pack();
  const addFile = async (h: TarHeader, path: string): Promise<void> => {
    const file = createReadStream(path);
    try {
      await copyEntry(out, h, file);
    } finally {
      file.destroy(); // on every path: a failed copy must not leave the file open
    }
  };
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const p = join(dir, r);
      const st = await lstat(p);
      // Permission bits only: setuid, setgid and sticky never go into an
      // archive (extraction drops them too; see below).
      const base = { name: r, mode: st.mode & 0o777, mtime: st.mtime };
      if (st.isDirectory()) {
        out.entry({ ...base, name: `${r}/`, type: 'directory' });
        await walk(r);
      } else if (st.isSymbolicLink()) {
        out.entry({ ...base, type: 'symlink', linkname: await readlink(p) });
      } else if (st.isFile()) {
        await addFile({ ...base, type: 'file', size: st.size }, p);
      }
      // Sockets, FIFOs and devices have no place in a workspace and are skipped.
    }
  };
  walk('').then(() => out.finalize(), (e: unknown) => out.destroy(e as Error));
  return nodeReadable(out);
}

/** Refuses to write through a symlink that an earlier entry (or the directory) placed on the path. */
async function checkParents(root: string, rel: string): Promise<void> {
  const parts = rel.split('/').slice(0, -1);
  let p = root;
  for (const part of parts) {
    p = join(p, part);
    const st = await lstat(p).catch(() => undefined);
    if (st === undefined) return;
    if (st.isSymbolicLink()) throw unsafe(rel, `"${part}" on its path is a symbolic link`);
  }
}

/** Extracts a workspace tar into a host directory, checking every entry first. */
export async function extractToDirectory(tar: Readable, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const ex = extract();
  const done = feed(tar, ex);
  done.catch(() => {});
  const readOnlyDirs: [string, number][] = [];
  for await (const entry of ex) {
    const h = checkHeader(entry.header);
    if (h === null) { await drain(entry); continue; }
    const rel = h.name.replace(/\/$/, '');
    const target = join(dir, rel);
    await checkParents(dir, rel);
    // No setuid, setgid or sticky bits on the host: the launcher often runs
    // as root, and an archive must not be able to plant a setuid-root program.
    const mode = (h.mode ?? 0o644) & 0o777;
    if (h.type === 'directory') {
      // A read-only directory (0555, as Go's module cache makes) would refuse
      // its own contents to a non-root user: create it writable for the owner
      // and apply the archived mode once everything is in, as tar does.
      await mkdir(target, { recursive: true, mode: mode | 0o700 });
      if ((mode & 0o700) !== 0o700 && (await lstat(target)).isDirectory()) readOnlyDirs.push([target, mode]);
      await drain(entry);
    } else if (h.type === 'file' || h.type === 'contiguous-file') {
      await mkdir(posix.dirname(target), { recursive: true });
      await rm(target, { force: true, recursive: false }).catch(() => undefined);
      await pipeline(Readable.from(entry, { objectMode: false }), createWriteStream(target, { mode }));
      if (h.mtime) await utimes(target, h.mtime, h.mtime).catch(() => undefined);
    } else if (h.type === 'symlink') {
      await mkdir(posix.dirname(target), { recursive: true });
      await rm(target, { force: true });
      await symlink(h.linkname!, target);
      await drain(entry);
    } else if (h.type === 'link') {
      await mkdir(posix.dirname(target), { recursive: true });
      await rm(target, { force: true });
      // link(2) follows symlinks in the source's directories: one placed by an
      // earlier entry would let this entry hard-link a file outside the workspace.
      await checkParents(dir, h.linkname!);
      await link(join(dir, h.linkname!), target);
      await drain(entry);
    } else {
      await drain(entry);
    }
  }
  await done;
  // Deepest first, so a parent's mode never blocks reaching its children.
  for (const [path, mode] of readOnlyDirs.reverse()) await chmod(path, mode);
}

/** A stream that ends immediately with an empty archive (a phase with no input workspace). */
export function emptyArchive(): Readable {
  const p = pack();
  p.finalize();
  return nodeReadable(p);
}
