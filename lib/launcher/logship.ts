// The log shipper: masked run output in, numbered chunks out. Like buildkite's
// log streamer it only cuts output into chunks and hands them to an injected
// `upload(seq, bytes)`; it never talks HTTP itself.
//
// Guarantees, in the protocol's words:
// - at most about `flushMs` behind: the first byte after a quiet spell starts a
//   timer, and when it fires the buffered bytes become a chunk;
// - a chunk's bytes are fixed once it has a number, so a retry sends exactly
//   the same bytes under the same `seq` and the server (which ignores
//   seq < next) never stores a line twice;
// - chunks go up strictly in order, one at a time, and are dropped only once
//   the server's `nextSeq` is past them, so nothing is lost;
// - bounded memory: while the server is unreachable, chunks beyond
//   `memoryBytes` are written to files in the spill directory and read back in
//   order; and while uploads are behind, output keeps collecting into one chunk
//   up to `maxChunkBytes` instead of making a chunk a second.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff, sleep, type BackoffOptions } from './backoff.ts';
import { LauncherError } from '../errors.ts';

/**
 * Sends one chunk; resolves with the server's next expected sequence number,
 * and `stop: true` when the server takes no more output for this run (its log
 * cap is reached): the shipper then drops what it still holds and what comes.
 */
export type UploadChunk = (seq: number, bytes: Uint8Array) => Promise<number | { nextSeq: number; stop: boolean }>;

export interface LogShipperOptions {
  upload: UploadChunk;
  /** Where chunks go while memory is full; created on first use, removed by close(). */
  spillDir: string;
  /** First sequence number (the server's nextSeq when resuming). */
  startSeq?: number;
  flushMs?: number;
  maxChunkBytes?: number;
  /** Queued chunk bytes kept in memory; beyond this they spill to files. */
  memoryBytes?: number;
  backoff?: BackoffOptions;
  /** Errors that must stop retrying (the server refused the worker for good). */
  isPermanent?: (e: unknown) => boolean;
  /** Told about every failed upload before the retry (for logs and metrics). */
  onRetry?: (e: unknown, attempt: number) => void;
  /** Told about every stored chunk. */
  onShipped?: (seq: number, bytes: number) => void;
  signal?: AbortSignal;
}

interface Chunk {
  seq: number;
  size: number;
  bytes?: Buffer;
  file?: string;
}

export const DEFAULT_FLUSH_MS = 1000;
export const DEFAULT_MAX_CHUNK_BYTES = 256 * 1024;
export const DEFAULT_MEMORY_BYTES = 1024 * 1024;

function defaultPermanent(e: unknown): boolean {
  return (e as { permanent?: boolean } | null)?.permanent === true;
}

export class LogShipper {
  readonly #o: Required<Omit<LogShipperOptions, 'signal' | 'backoff' | 'onRetry' | 'onShipped'>> & LogShipperOptions;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #queue: Chunk[] = [];
  #memBytes = 0;
  #nextSeq: number;
  #acked: number;
  #timer: NodeJS.Timeout | undefined;
  #due = false;
  #pumping: Promise<void> | undefined;
  #failed: unknown;
  #closed = false;
  #spilled = 0;
  #stopped = false;
  #idleWaiters: Array<() => void> = [];
  readonly #backoff: Backoff;

  constructor(opts: LogShipperOptions) {
    this.#o = {
      startSeq: 0,
      flushMs: DEFAULT_FLUSH_MS,
      maxChunkBytes: DEFAULT_MAX_CHUNK_BYTES,
      memoryBytes: DEFAULT_MEMORY_BYTES,
      isPermanent: defaultPermanent,
      ...opts,
    };
    this.#nextSeq = this.#o.startSeq;
    this.#acked = this.#o.startSeq;
    this.#backoff = new Backoff({ baseMs: 200, ...opts.backoff });
  }

  /** Next sequence number the shipper would hand out (what `logSeq` reports). */
  get nextSeq(): number {
    return this.#nextSeq;
  }
  /** The server's next sequence number as last confirmed. */
  get ackedSeq(): number {
    return this.#acked;
  }
  /** True once the server said the run's log cap is reached (output is dropped from then on). */
  get stopped(): boolean {
    return this.#stopped;
  }
  /** Chunks written to spill files so far (for tests and metrics). */
  get spilledChunks(): number {
    return this.#spilled;
  }
  /** Bytes not yet confirmed by the server (queued plus buffered). */
  get backlogBytes(): number {
    return this.#queue.reduce((n, c) => n + c.size, 0) + this.#pendingBytes;
  }

  write(bytes: Uint8Array): void {
    if (this.#closed) throw new LauncherError('LOGS_CLOSED', 'Cannot ship logs: the phase log is already closed');
    if (bytes.length === 0 || this.#stopped) return;
    this.#pending.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    this.#pendingBytes += bytes.length;
    while (this.#pendingBytes >= this.#o.maxChunkBytes) this.#cut(this.#o.maxChunkBytes);
    if (this.#pendingBytes > 0 && this.#timer === undefined && !this.#due) {
      this.#timer = setTimeout(() => this.#onTimer(), this.#o.flushMs);
      this.#timer.unref?.();
    }
  }

  /** Cuts what is buffered into a chunk and waits until the server has every chunk. */
  async flush(): Promise<void> {
    while (this.#pendingBytes > 0) this.#cut(this.#o.maxChunkBytes);
    await this.#idle();
    if (this.#failed !== undefined) throw this.#failed;
  }

  /** Flushes, stops the timer and removes the spill files; resolves with the final nextSeq. */
  async close(): Promise<number> {
    await this.flush();
    this.#closed = true;
    this.#stopTimer();
    rmSync(this.#o.spillDir, { recursive: true, force: true });
    return this.#nextSeq;
  }

  /** Stops without flushing (the process is leaving); spill files stay. */
  abort(): void {
    this.#closed = true;
    this.#stopTimer();
  }

  /**
   * The server stores no more of this run's output: forget every chunk not
   * yet sent and number nothing more, so `nextSeq` (the result's logSeq) is
   * what the server has acknowledged.
   */
  #stop(next: number): void {
    this.#stopped = true;
    for (const c of this.#queue) if (c.file) rmSync(c.file, { force: true });
    this.#queue = [];
    this.#memBytes = 0;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#due = false;
    this.#nextSeq = next;
    this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onTimer(): void {
    this.#timer = undefined;
    // While a chunk is still on its way, keep collecting: the next chunk is
    // cut when the queue drains, so a slow server gets fewer, larger chunks.
    if (this.#queue.length === 0) {
      if (this.#pendingBytes > 0) this.#cut(this.#o.maxChunkBytes);
    } else {
      this.#due = true;
    }
  }

  #cut(max: number): void {
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    const bytes = Buffer.from(all.subarray(0, Math.min(max, all.length)));
    const rest = all.subarray(bytes.length);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingBytes = rest.length;
    const chunk: Chunk = { seq: this.#nextSeq++, size: bytes.length };
    if (this.#memBytes + bytes.length <= this.#o.memoryBytes) {
      chunk.bytes = bytes;
      this.#memBytes += bytes.length;
    } else {
      mkdirSync(this.#o.spillDir, { recursive: true });
      chunk.file = join(this.#o.spillDir, `${String(chunk.seq).padStart(10, '0')}.chunk`);
      writeFileSync(chunk.file, bytes);
      this.#spilled++;
    }
    this.#queue.push(chunk);
    this.#kick();
  }

  #kick(): void {
    if (this.#pumping !== undefined) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = undefined;
      // A chunk cut between the loop's last check and here still goes up.
      if (this.#queue.length > 0 && this.#failed === undefined) return this.#kick();
      for (const w of this.#idleWaiters.splice(0)) w();
    });
  }

  #idle(): Promise<void> {
    if (this.#pumping === undefined) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async #pump(): Promise<void> {
    while (this.#queue.length > 0 && this.#failed === undefined) {
      if (this.#o.signal?.aborted) {
        this.#failed = new LauncherError('LOGS_ABORTED', 'Log shipping stopped: the launcher is leaving');
        return;
      }
      const head = this.#queue[0]!;
      try {
        const bytes = head.bytes ?? readFileSync(head.file!);
        const answer = await this.#o.upload(head.seq, bytes);
        const next = typeof answer === 'number' ? answer : answer.nextSeq;
        this.#backoff.reset();
        if (next < head.seq + 1) {
          // The server lost chunks it had confirmed: nothing here can refill them.
          this.#failed = new LauncherError('LOG_SEQ_GAP', `Cannot ship logs: the server expects chunk ${next} but chunk ${head.seq} was the next to send`);
          return;
        }
        this.#acked = next;
        while (this.#queue.length > 0 && this.#queue[0]!.seq < next) {
          const done = this.#queue.shift()!;
          if (done.bytes) this.#memBytes -= done.size;
          if (done.file) rmSync(done.file, { force: true });
          this.#o.onShipped?.(done.seq, done.size);
        }
        if (typeof answer !== 'number' && answer.stop) this.#stop(next);
      } catch (e) {
        if (this.#o.isPermanent(e)) {
          this.#failed = e;
          return;
        }
        const gapNext = (e as { code?: string; nextSeq?: number }).code === 'LOG_SEQ_GAP' ? (e as { nextSeq?: number }).nextSeq : undefined;
        if (gapNext !== undefined && gapNext < head.seq) {
          this.#failed = new LauncherError('LOG_SEQ_GAP', `Cannot ship logs: the server expects chunk ${gapNext} but chunk ${head.seq} was the next to send`, { cause: e });
          return;
        }
        this.#o.onRetry?.(e, this.#backoff.attempt);
        await sleep(this.#backoff.next(), this.#o.signal);
      }
      if (this.#queue.length === 0 && this.#due && this.#pendingBytes > 0) {
        this.#due = false;
        this.#cut(this.#o.maxChunkBytes);
      } else if (this.#queue.length === 0) {
        this.#due = false;
      }
    }
  }
}
