// Files the server keeps outside the database: sealed workspaces and run logs.
// Every whole file lands atomically (temp file in the same directory tree,
// fsync, rename, fsync of the directory), so a crash leaves either the old
// file or the new one, never half of one. Logs grow by appends that are
// fsynced before the database records them (see logs.ts).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { once } from 'node:events';
import { lstat, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { HttpError } from './http.ts';

export interface BlobStore {
  /**
   * Streams `body` into a temp file, refusing more than `limit` bytes; returns
   * the temp path and size. `diskCheck` runs every 64 MiB and may throw to stop.
   * On any failure the temp file is gone when the promise rejects.
   */
  receive(body: Readable, limit: number, diskCheck?: (received: number) => Promise<void>): Promise<{ tmp: string; size: number }>;
  /** Moves a received temp file into place atomically. */
  commit(tmp: string, dest: string): Promise<void>;
  discard(tmp: string): Promise<void>;
  workspacePath(runId: string): string;
  open(path: string): Promise<{ stream: ReadStream; size: number } | undefined>;
}

const DISK_CHECK_EVERY = 64 * 1024 * 1024;

/**
 * Removes everything in tmp/: uploads left by a server that stopped (or
 * crashed) while receiving them. Nothing in tmp/ is ever referenced by the
 * database, so at start-up all of it is garbage.
 */
export async function cleanTmp(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  let names: string[];
  try { names = await readdir(dir); } catch { return { files, bytes }; }
  for (const name of names) {
    const p = join(dir, name);
    try {
      const st = await lstat(p);
      bytes += st.size;
      await rm(p, { recursive: true, force: true });
      files++;
    } catch { /* raced with something else removing it */ }
  }
  return { files, bytes };
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

export function workspaceTooLarge(limit: number): HttpError {
  return new HttpError(413, 'WORKSPACE_TOO_LARGE', `Sealed workspace too large: the server's limit is ${limit} bytes (--max-workspace-size)`);
}

export function createBlobStore(opts: { tmpDir: string; workspacesDir: string }): BlobStore {
  return {
    async receive(body, limit, diskCheck) {
      await mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
      const tmp = join(opts.tmpDir, `upload-${randomBytes(8).toString('hex')}`);
      // Opened before any byte is read, so a refusal can never race the open
      // and leave a file behind after the clean-up below.
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
      await once(out, 'ready');
      // Resolves once the descriptor is closed (pending writes included).
      const closeFile = (): Promise<void> => (out.closed ? Promise.resolve() : new Promise((resolve) => { out.once('close', () => resolve()); out.destroy(); }));
      let size = 0;
      let checkedAt = 0;
      try {
        await new Promise<void>((resolve, reject) => {
          let failed = false;
          const fail = (e: unknown): void => {
            if (failed) return;
            failed = true;
            body.unpipe(out);
            body.pause();
            out.destroy();
            reject(e);
          };
          body.on('data', (c: Buffer) => {
            size += c.length;
            if (size > limit) { fail(workspaceTooLarge(limit)); return; }
            // The free-disk floor, again every 64 MiB of a long upload.
            if (diskCheck && size - checkedAt >= DISK_CHECK_EVERY) {
              checkedAt = size;
              body.pause();
              diskCheck(size).then(() => { if (!failed) body.resume(); }, fail);
            }
          });
          body.on('error', fail);
          const aborted = (): void => fail(new HttpError(400, 'UPLOAD_ABORTED', 'Upload aborted: the client closed the connection before the end of the body'));
          body.on('aborted', aborted);
          body.on('close', () => { if ((body as { complete?: boolean }).complete === false) aborted(); });
          out.on('error', fail);
          out.on('finish', resolve);
          body.pipe(out);
        });
        const fh = await open(tmp, 'r+');
        try { await fh.sync(); } finally { await fh.close(); }
        await closeFile();
        return { tmp, size };
      } catch (e) {
        // Wait for the descriptor to close (after writes in flight): nothing lands after the rm.
        await closeFile();
        await rm(tmp, { force: true });
        throw e;
      }
    },
    async commit(tmp, dest) {
      await mkdir(dirname(dest), { recursive: true });
      await rename(tmp, dest);
      await fsyncDir(dirname(dest));
    },
    async discard(tmp) {
      await unlink(tmp).catch(() => {});
    },
    workspacePath(runId) {
      return join(opts.workspacesDir, `${runId}.age`);
    },
    async open(path) {
      try {
        const s = await stat(path);
        return { stream: createReadStream(path), size: s.size };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
  };
}

/** Writes a small whole file atomically with the given mode (keys, certificates, tokens). */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}
