// Parallel STREAM for large files. STREAM chunks are independent given their
// index, so blocks of chunks go to worker threads while the main thread only
// reads, orders results and writes; on a 2-core host that roughly halves the
// crypto time, which is what a single-threaded peer (age) spends most of its
// time on. Buffers are recycled between the threads (transferred, never
// copied or reallocated), so memory stays at a fixed number of blocks.
//
// The worker is plain CommonJS evaluated from a string so the same code runs
// under tsx, from the esbuild bundle and inside the single executable.
// Opening releases a block's plaintext only after every chunk in it
// authenticated; on the first chunk that does not, the sequential
// PayloadOpener re-examines that chunk to name the exact failure.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import { CHUNK_SIZE, ENC_CHUNK_SIZE, PayloadOpener, TAG_SIZE } from './stream.ts';
import { AgeError } from './errors.ts';

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const { createCipheriv, createDecipheriv } = require('node:crypto');
const CHUNK = ${CHUNK_SIZE}, TAG = ${TAG_SIZE}, ENC = ${ENC_CHUNK_SIZE};
let collect = null;
try { require('node:v8').setFlagsFromString('--expose-gc'); collect = require('node:vm').runInNewContext('typeof gc === "function" ? gc : null'); } catch {}
let key = null;
let sinceGc = 0;
const nonce = Buffer.alloc(12);
function setNonce(counter, last) {
  nonce.fill(0);
  nonce.writeUIntBE(Math.floor(counter / 4294967296), 3, 4);
  nonce.writeUInt32BE(counter >>> 0, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}
parentPort.on('message', (m) => {
  if (m.key) { key = Buffer.from(m.key); return; }
  const input = Buffer.from(m.input, 0, m.length);
  const output = Buffer.from(m.output);
  let o = 0, failed = -1;
  if (m.op === 'seal') {
    const count = m.last ? Math.max(1, Math.ceil(m.length / CHUNK)) : m.length / CHUNK;
    for (let i = 0, off = 0; i < count; i++) {
      const end = Math.min(off + CHUNK, m.length);
      const c = createCipheriv('chacha20-poly1305', key, setNonce(m.counter + i, m.last && i === count - 1), { authTagLength: TAG });
      o += c.update(input.subarray(off, end)).copy(output, o);
      c.final();
      o += c.getAuthTag().copy(output, o);
      off = end;
    }
  } else {
    const count = Math.ceil(m.length / ENC);
    for (let i = 0, off = 0; i < count; i++) {
      const end = Math.min(off + ENC, m.length);
      const last = m.last && i === count - 1;
      const enc = input.subarray(off, end);
      if (enc.length < TAG || (!last && enc.length !== ENC)) { failed = i; break; }
      const d = createDecipheriv('chacha20-poly1305', key, setNonce(m.counter + i, last), { authTagLength: TAG });
      d.setAuthTag(enc.subarray(enc.length - TAG));
      const pt = d.update(enc.subarray(0, enc.length - TAG));
      try { d.final(); } catch { failed = i; break; }
      if (last && pt.length === 0 && m.counter + i > 0) { failed = i; break; }
      o += pt.copy(output, o);
      off = end;
    }
  }
  sinceGc += m.length;
  if (collect && sinceGc >= (1 << 19)) { sinceGc = 0; collect({ type: 'minor' }); }
  parentPort.postMessage({ id: m.id, input: m.input, output: m.output, outLength: o, failed }, [m.input, m.output]);
});
`;

const CHUNKS_PER_BLOCK = 16;
/** Below this the pool's start-up (~tens of ms) costs more than it saves. */
export const PARALLEL_MIN_BYTES = 16 << 20;

interface Result { input: ArrayBuffer; output: ArrayBuffer; outLength: number; failed: number }

export class Pool {
  #workers: Worker[];
  #next = 0;
  #waiting = new Map<number, { resolve: (r: Result) => void; reject: (e: unknown) => void }>();
  #id = 0;
  #error: unknown = null;
  #closing = false;

  constructor(size: number) {
    this.#workers = Array.from({ length: size }, () => {
      // Small heaps: a worker holds a few buffers, and every isolate counts toward RSS.
      const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
      w.on('message', (r: Result & { id: number }) => {
        const p = this.#waiting.get(r.id);
        this.#waiting.delete(r.id);
        p?.resolve(r);
      });
      w.on('error', (e) => this.#fail(e));
      // A worker that stops on its own (e.g. killed for memory) must not leave a job waiting forever.
      w.on('exit', (code) => { if (!this.#closing) this.#fail(new Error(`age worker thread exited with code ${code}`)); });
      return w;
    });
  }

  /** Starts a pool, or returns null where worker threads are unavailable. */
  static tryStart(size = workerCount()): Pool | null {
    try {
      return new Pool(size);
    } catch {
      return null;
    }
  }

  setKey(key: Buffer): void {
    for (const w of this.#workers) w.postMessage({ key: new Uint8Array(key) });
  }

  get size(): number {
    return this.#workers.length;
  }

  #fail(e: unknown): void {
    this.#error = e;
    for (const p of this.#waiting.values()) p.reject(e);
    this.#waiting.clear();
  }

  run(job: { op: 'seal' | 'open'; input: ArrayBuffer; length: number; output: ArrayBuffer; counter: number; last: boolean }): Promise<Result> {
    if (this.#error) return Promise.reject(this.#error);
    const id = this.#id++;
    const w = this.#workers[this.#next++ % this.#workers.length]!;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      w.postMessage({ ...job, id }, [job.input, job.output]);
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

export function workerCount(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** Reads until `buf` is full or the file ends, after `start` prefilled bytes. */
async function fill(input: FileHandle, buf: Buffer, start: number): Promise<number> {
  let n = start;
  while (n < buf.length) {
    const { bytesRead } = await input.read(buf, n, buf.length - n, null);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  return n;
}

export async function writeFully(out: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await out.write(buf, off, buf.length - off, null)).bytesWritten;
}

/**
 * Runs the payload of a file through the pool: `op` seal (plaintext in) or
 * open (ciphertext in, `prefix` = payload bytes already read with the header).
 */
export async function pumpPayloadParallel(pool: Pool, op: 'seal' | 'open', key: Buffer, input: FileHandle, output: FileHandle, prefix: Buffer = Buffer.alloc(0)): Promise<void> {
  const inBlock = CHUNKS_PER_BLOCK * (op === 'seal' ? CHUNK_SIZE : ENC_CHUNK_SIZE);
  const outBlock = CHUNKS_PER_BLOCK * ENC_CHUNK_SIZE;
  // One block queued behind each busy worker keeps them fed; more only costs memory.
  const depth = pool.size + 1;
  pool.setKey(key);
  const freeIn: ArrayBuffer[] = Array.from({ length: depth + 2 }, () => new ArrayBuffer(inBlock));
  const freeOut: ArrayBuffer[] = Array.from({ length: depth }, () => new ArrayBuffer(outBlock));
  const inflight: { job: Promise<Result>; counter: number; last: boolean; length: number }[] = [];
  let counter = 0;

  const readBlock = async (pre?: Buffer): Promise<{ ab: ArrayBuffer; length: number }> => {
    const ab = freeIn.pop()!;
    const buf = Buffer.from(ab);
    let start = 0;
    if (pre && pre.length) start = pre.copy(buf, 0);
    return { ab, length: await fill(input, buf, start) };
  };

  const finishOldest = async (): Promise<void> => {
    const f = inflight.shift()!;
    const r = await f.job;
    if (r.failed >= 0) {
      // Release the chunks that authenticated, then let the sequential
      // opener classify the failing chunk (truncation, trailing data, …).
      if (r.outLength) await writeFully(output, Buffer.from(r.output, 0, r.outLength));
      const data = Buffer.from(r.input, 0, f.length);
      const at = r.failed * ENC_CHUNK_SIZE;
      const chunk = data.subarray(at, Math.min(at + ENC_CHUNK_SIZE, data.length));
      const more = !(f.last && at + chunk.length === data.length);
      const opener = new PayloadOpener(key, f.counter + r.failed);
      const released: Buffer[] = [];
      opener.next(Buffer.from(chunk), more, (b) => released.push(b));
      throw new AgeError('AGE_PAYLOAD_INVALID', `Invalid age payload: chunk ${f.counter + r.failed + 1} does not authenticate`);
    }
    await writeFully(output, Buffer.from(r.output, 0, r.outLength));
    freeIn.push(r.input);
    freeOut.push(r.output);
  };

  try {
    let pending = await readBlock(prefix);
    if (op === 'open' && pending.length > inBlock) throw new Error('internal: prefix larger than a block');
    for (;;) {
      const next = pending.length === inBlock ? await readBlock() : null;
      const last = next === null || next.length === 0;
      if (op === 'open' && last && pending.length === 0) {
        // Nothing after the nonce: let the sequential opener say "no chunks".
        new PayloadOpener(key, counter).next(Buffer.alloc(0), false, () => undefined);
      }
      const chunks = op === 'seal' ? Math.max(1, Math.ceil(pending.length / CHUNK_SIZE)) : Math.ceil(pending.length / ENC_CHUNK_SIZE);
      const job = pool.run({ op, input: pending.ab, length: pending.length, output: freeOut.pop()!, counter, last });
      // Jobs are awaited oldest first; when a worker dies every job rejects at
      // once, maybe while we await a read. Marked handled here so that is not
      // a (fatal) unhandled rejection; finishOldest still sees each error.
      job.catch(() => undefined);
      inflight.push({ job, counter, last, length: pending.length });
      counter += chunks;
      if (last) {
        if (next) freeIn.push(next.ab);
        break;
      }
      pending = next!;
      while (inflight.length >= depth || freeOut.length === 0 || freeIn.length < 2) await finishOldest();
    }
    while (inflight.length) await finishOldest();
  } catch (e) {
    await Promise.allSettled(inflight.map((f) => f.job));
    throw e;
  }
}
