// Run logs on disk: logs/<run>/<phase>.log, one file per phase. A chunk is
// written at the offset the database says the file ends at, the file is cut to
// that length plus the chunk and fsynced, and only then does the database move
// `log_next_seq`/`log_bytes` on. A crash between the two leaves extra bytes past
// `log_bytes` that the retried chunk overwrites, so nothing is duplicated and
// readers never see bytes the database does not account for.
import { createReadStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';

/** How long a log reader may leave the stream full before it is closed. */
export const STREAM_IDLE_MS = 60_000;

export class LogFiles {
  private readonly dir: string;
  private readonly locks = new Map<string, Promise<unknown>>();
  constructor(dir: string) { this.dir = dir; }

  path(runId: string, phase: number): string {
    return join(this.dir, runId, `${phase}.log`);
  }

  /** Serialises work on one phase's log (a retry racing its original waits its turn). */
  async exclusive<T>(runId: string, phase: number, fn: () => Promise<T>): Promise<T> {
    const key = `${runId}/${phase}`;
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  // Open handles of phases that are shipping logs (used under exclusive()),
  // so a chunk costs a write and an fdatasync, not an open and a close too.
  private readonly handles = new Map<string, FileHandle>();
  private static readonly MAX_OPEN = 256;

  private async handle(runId: string, phase: number): Promise<FileHandle> {
    const key = `${runId}/${phase}`;
    const open_ = this.handles.get(key);
    if (open_) return open_;
    await mkdir(join(this.dir, runId), { recursive: true, mode: 0o700 });
    const fh = await open(this.path(runId, phase), 'a+', 0o600);
    if (this.handles.size >= LogFiles.MAX_OPEN) {
      const [oldKey, oldFh] = this.handles.entries().next().value as [string, FileHandle];
      this.handles.delete(oldKey);
      await oldFh.close().catch(() => {});
    }
    this.handles.set(key, fh);
    return fh;
  }

  /** Writes `chunk` at `offset`, truncating anything after it, and syncs it to disk. */
  async write(runId: string, phase: number, offset: number, chunk: Buffer): Promise<void> {
    const fh = await this.handle(runId, phase);
    try {
      await fh.truncate(offset);
      // Positional writes are ignored in append mode on Linux, so after the
      // truncate the end of file is exactly `offset`.
      await fh.write(chunk, 0, chunk.length, null);
      await fh.datasync();
    } catch (e) {
      await this.release(runId, phase);
      throw e;
    }
  }

  /** Closes a phase's handle (its phase ended). */
  async release(runId: string, phase: number): Promise<void> {
    const key = `${runId}/${phase}`;
    const fh = this.handles.get(key);
    if (!fh) return;
    this.handles.delete(key);
    await fh.close().catch(() => {});
  }

  async closeAll(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((fh) => fh.close().catch(() => {})));
  }

  /** Reads bytes [start, end) of a phase's log (callers bound the size). */
  async read(runId: string, phase: number, start: number, end: number): Promise<Buffer> {
    if (end <= start) return Buffer.alloc(0);
    const fh = await open(this.path(runId, phase), 'r');
    try {
      const buf = Buffer.allocUnsafe(end - start);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /** Copies bytes [start, end) of a phase's log to `out`, respecting back-pressure. */
  async copy(runId: string, phase: number, start: number, end: number, out: Writable): Promise<void> {
    if (end <= start) return;
    const input = createReadStream(this.path(runId, phase), { start, end: end - 1 });
    for await (const c of input) {
      if (out.destroyed) { input.destroy(); return; }
      if (!out.write(c)) {
        // A reader that stops reading holds a file handle and buffers: after
        // STREAM_IDLE_MS without draining, the stream is closed.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => { out.destroy(); done(); }, STREAM_IDLE_MS);
          timer.unref();
          const done = (): void => { clearTimeout(timer); out.off('drain', done); out.off('close', done); resolve(); };
          out.on('drain', done);
          out.on('close', done);
        });
      }
    }
  }
}
