// Files the server keeps outside the database: sealed workspaces and run logs.
// Every whole file lands atomically (temp file in the same directory tree,
// fsync, rename, fsync of the directory), so a crash leaves either the old
// file or the new one, never half of one. Logs grow by appends that are
// fsynced before the database records them (see logs.ts).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir } from '../atomic-file.ts';
import { HttpError } from './http.ts';

export interface BlobStore {
  /** Streams `body` into a temp file, refusing more than `limit` bytes; returns the temp path and size. */
  receive(body: Readable, limit: number): Promise<{ tmp: string; size: number }>;
  /** Moves a received temp file into place atomically. */
  commit(tmp: string, dest: string): Promise<void>;
  discard(tmp: string): Promise<void>;
  workspacePath(runId: string): string;
  open(path: string): Promise<{ stream: ReadStream; size: number } | undefined>;
}

export function workspaceTooLarge(limit: number): HttpError {
  return new HttpError(413, 'WORKSPACE_TOO_LARGE', `Sealed workspace too large: the server's limit is ${limit} bytes (--max-workspace-size)`);
}

export function createBlobStore(opts: { tmpDir: string; workspacesDir: string }): BlobStore {
  return {
    async receive(body, limit) {
      await mkdir(opts.tmpDir, { recursive: true });
      const tmp = join(opts.tmpDir, `upload-${randomBytes(8).toString('hex')}`);
      const out = createWriteStream(tmp, { mode: 0o600 });
      let size = 0;
      try {
        await new Promise<void>((resolve, reject) => {
          const fail = (e: unknown): void => { body.unpipe(out); out.destroy(); reject(e); };
          body.on('data', (c: Buffer) => {
            size += c.length;
            if (size > limit) fail(workspaceTooLarge(limit));
          });
          body.on('error', fail);
          body.on('aborted', () => fail(new HttpError(400, 'UPLOAD_ABORTED', 'Upload aborted: the client closed the connection before the end of the body')));
          out.on('error', fail);
          out.on('finish', resolve);
          body.pipe(out);
        });
        const fh = await open(tmp, 'r+');
        try { await fh.sync(); } finally { await fh.close(); }
        return { tmp, size };
      } catch (e) {
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
