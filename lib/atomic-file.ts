// Whole files written so that a crash leaves either the old content or the
// new, never half: a temporary file beside the target (same directory, so the
// rename cannot cross file systems), created exclusively with the final mode,
// written, fsynced, renamed over the target, and the directory fsynced so the
// rename itself survives a power loss. The temporary file is removed when any
// step fails. Keys, certificates, tokens, the launcher's state files and the
// server's small files all go through here.
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A hidden name beside `path`, unique per call (several writers may race). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode); // the umask may have narrowed the mode given to open
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(path));
}

/** The same steps, synchronously: for code that must not yield (the launcher's state directory). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = tempPathFor(path);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDirSync(dirname(path));
}

/**
 * Several files that belong together (a key and its CSR): every one is
 * written and fsynced under its temporary name before any is renamed into
 * place, so a crash or a full disk never leaves a new key beside an old CSR.
 */
export async function writeFilesAtomic(files: ReadonlyArray<{ path: string; data: string | Uint8Array; mode: number }>): Promise<void> {
  const tmps: string[] = [];
  try {
    for (const f of files) {
      const tmp = tempPathFor(f.path);
      tmps.push(tmp);
      const fh = await open(tmp, 'wx', f.mode);
      try {
        await fh.chmod(f.mode); // the umask may have narrowed the mode given to open
        await fh.writeFile(f.data);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    for (let i = 0; i < files.length; i++) await rename(tmps[i]!, files[i]!.path);
  } catch (e) {
    for (const t of tmps) await rm(t, { force: true });
    throw e;
  }
  for (const d of new Set(files.map((f) => dirname(f.path)))) await fsyncDir(d);
}
