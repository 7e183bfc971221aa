// A folder chosen in the browser, packed and sealed as the run's workspace:
// the same tar `launcher admin run trigger --workspace DIR` builds (no gzip,
// paths relative to the folder, directories first then their contents in
// sorted order), sealed to the pool's keys on the way so only sealed bytes
// exist outside this page. The browser cannot see file modes or links: files
// go in as 0644 and directories as 0755, and a link arrives as whatever the
// browser read through it.
import { END_OF_ARCHIVE, headerBlocks, padding, type TarHeader } from './tar.ts';
import { startSeal } from './age.ts';

/** A file of the chosen folder: its path under the folder and its contents. */
export interface FolderFile { path: string; file: Blob; lastModified: number }

/** A file as the browser's folder picker gives it (webkitRelativePath starts with the folder's own name). */
export function pickedFiles(list: ArrayLike<File>): FolderFile[] {
  return Array.from(list, (f) => {
    const rel = f.webkitRelativePath || f.name;
    const slash = rel.indexOf('/');
    return { path: slash < 0 ? rel : rel.slice(slash + 1), file: f, lastModified: f.lastModified };
  });
}

interface Dir { dirs: Map<string, Dir>; files: Map<string, FolderFile> }

export interface Workspace {
  /** Entries in archive order. */
  entries: (TarHeader & { file?: Blob })[];
  files: number;
  dirs: number;
  /** Bytes of file contents. */
  bytes: number;
  /** Bytes of the tar (headers, contents, padding, end). */
  tarBytes: number;
}

function refuse(path: string, why: string): Error {
  return new Error(`Cannot use "${path}" in the workspace: ${why}`);
}

/** Checks every path and lays the files out as packDirectory walks a directory. */
export function planWorkspace(files: FolderFile[], nowMs: number): Workspace {
  const root: Dir = { dirs: new Map(), files: new Map() };
  for (const f of files) {
    if (f.path.includes('\0')) throw refuse(f.path.replace(/\0/g, '\\0'), 'the name contains a NUL byte');
    const parts = f.path.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..')) throw refuse(f.path, 'expected a path relative to the folder, without empty, "." or ".." parts');
    let d = root;
    for (const p of parts.slice(0, -1)) {
      if (d.files.has(p)) throw refuse(f.path, `"${p}" is both a file and a directory`);
      let next = d.dirs.get(p);
      if (!next) { next = { dirs: new Map(), files: new Map() }; d.dirs.set(p, next); }
      d = next;
    }
    const leaf = parts[parts.length - 1]!;
    if (d.dirs.has(leaf)) throw refuse(f.path, `"${leaf}" is both a file and a directory`);
    if (d.files.has(leaf)) throw refuse(f.path, 'the folder lists it twice');
    d.files.set(leaf, f);
  }
  const ws: Workspace = { entries: [], files: 0, dirs: 0, bytes: 0, tarBytes: END_OF_ARCHIVE.length };
  const walk = (d: Dir, rel: string): void => {
    // packDirectory sorts readdir's names with the default sort: the same order here.
    for (const n of [...d.dirs.keys(), ...d.files.keys()].sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const sub = d.dirs.get(n);
      if (sub) {
        const h: TarHeader = { name: `${r}/`, type: 'directory', mode: 0o755, size: 0, mtimeMs: nowMs };
        ws.entries.push(h);
        ws.dirs++;
        ws.tarBytes += headerBlocks(h).length;
        walk(sub, r);
      } else {
        const f = d.files.get(n)!;
        const h: TarHeader = { name: r, type: 'file', mode: 0o644, size: f.file.size, mtimeMs: f.lastModified };
        ws.entries.push({ ...h, file: f.file });
        ws.files++;
        ws.bytes += h.size;
        ws.tarBytes += headerBlocks(h).length + h.size + padding(h.size);
      }
    }
  };
  walk(root, '');
  return ws;
}

/** The age file's size after its header for `n` bytes of plaintext: the nonce, and a 16-byte tag per 64 KiB chunk. */
export function sealedPayloadBytes(n: number): number {
  return 16 + n + 16 * Math.max(1, Math.ceil(n / 65536));
}

/** The tar's pieces in order, reading each file in slices. */
export async function* tarPieces(ws: Workspace, onFile: (done: number) => void = () => {}): AsyncGenerator<Uint8Array> {
  const SLICE = 1024 * 1024;
  let done = 0;
  for (const e of ws.entries) {
    yield headerBlocks(e);
    if (!e.file) continue;
    let read = 0;
    for (let o = 0; o < e.size; o += SLICE) {
      const piece = new Uint8Array(await e.file.slice(o, Math.min(e.size, o + SLICE)).arrayBuffer());
      read += piece.length;
      yield piece;
    }
    // A file that changed since it was picked would corrupt the archive's framing.
    if (read !== e.size) throw refuse(e.name, `it was ${e.size} bytes when chosen and ${read} bytes when read; choose the folder again`);
    const pad = padding(e.size);
    if (pad) yield new Uint8Array(pad);
    onFile(++done);
  }
  yield END_OF_ARCHIVE;
}

export interface SealedWorkspace { body: Blob; keys: number }

/**
 * Packs and seals the workspace to `publicKeyPems`. Gives the event loop a
 * turn every few milliseconds so the page keeps painting (and the progress
 * moves) while thousands of files go through.
 */
export async function sealWorkspace(ws: Workspace, publicKeyPems: string[], onFile: (done: number) => void = () => {}): Promise<SealedWorkspace> {
  const { head, payload, keys } = await startSeal(publicKeyPems);
  const parts: Uint8Array[] = [head];
  let turn = Date.now();
  for await (const piece of tarPieces(ws, onFile)) {
    parts.push(...payload.write(piece));
    if (Date.now() - turn > 12) {
      await new Promise((r) => setTimeout(r, 0));
      turn = Date.now();
    }
  }
  parts.push(payload.end());
  return { body: new Blob(parts as Uint8Array<ArrayBuffer>[], { type: 'application/octet-stream' }), keys };
}
