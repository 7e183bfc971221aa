// The worker side of parallel STREAM (parallel.ts): one thread seals or opens
// every block of the file assigned to it, reading and writing the files itself
// with positional I/O, so no payload byte passes through the main thread.
// Blocks are 16 chunks; worker k of W takes blocks k, k+W, k+2W, … so every
// position is known in advance and the threads never wait for each other.
//
// node:crypto allocates a fresh buffer for every update() and frees it only
// when the garbage collector finds it. Detaching that buffer right after it
// is written (`transfer(0)`) frees it at once, so the allocator
// hands the same memory back for the next chunk: no garbage, no page faults
// on fresh memory, and no need to force collections.
//
// This module is started as a worker by parallel.ts (from source, or as the
// separate bundle build.mjs embeds in the executable); importing it on the
// main thread does nothing.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { readSync, writeSync, writevSync } from 'node:fs';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CHUNK_SIZE, ENC_CHUNK_SIZE, TAG_SIZE } from './stream.ts';

export const CHUNKS_PER_BLOCK = 16;
/** Marks a Worker started for this module (its workerData). */
export const AGE_WORKER_ROLE = 'launcher-age-worker';
/** Index into the shared Int32Array: first chunk that did not authenticate. */
export const FIRST_FAILURE = 0;
/** Index into the shared Int32Array: non-zero once any worker hit an error. */
export const ABORTED = 1;
export const NO_FAILURE = 0x7fffffff;

/** What a worker is asked to do: the whole payload's geometry, and its share. */
export interface AgeJob {
  op: 'seal' | 'open';
  key: Uint8Array;
  inFd: number;
  outFd: number;
  /** Where the payload starts in the input (open: after header and nonce). */
  inStart: number;
  /** Where the payload starts in the output (seal: after header and nonce). */
  outStart: number;
  /** Payload bytes in the input. */
  inLength: number;
  /** Total chunks in the payload; the last one carries the final flag. */
  chunks: number;
  /** This worker's first block and the stride between its blocks. */
  firstBlock: number;
  stride: number;
  /** Shared with the other workers: [FIRST_FAILURE, ABORTED]. */
  state: Int32Array;
}

export type AgeReply = { ok: true } | { ok: false; message: string; code?: string };

/** Chunk count of a payload: seal counts plaintext (an empty file is one empty chunk), open counts ciphertext. */
export function chunkCount(op: 'seal' | 'open', payloadBytes: number): number {
  return op === 'seal' ? Math.max(1, Math.ceil(payloadBytes / CHUNK_SIZE)) : Math.ceil(payloadBytes / ENC_CHUNK_SIZE);
}

function setNonce(nonce: Buffer, counter: number, last: boolean): Buffer {
  nonce.fill(0);
  nonce.writeUIntBE(Math.floor(counter / 2 ** 32), 3, 4);
  nonce.writeUInt32BE(counter >>> 0, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/** Frees a buffer node:crypto allocated for us alone, now rather than at the next collection. */
function release(b: Buffer): void {
  if (b.byteOffset === 0 && b.length === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) b.buffer.transfer(0);
}

function readFully(fd: number, buf: Buffer, length: number, position: number): void {
  let n = 0;
  while (n < length) {
    const r = readSync(fd, buf, n, length - n, position + n);
    if (r === 0) throw Object.assign(new Error('the input file became shorter while it was being read'), { code: 'AGE_INPUT_CHANGED' });
    n += r;
  }
}

/**
 * Writes one chunk's buffers at `position`. One chunk per call on purpose: the
 * kernel sizes page-cache folios by the write's length, and 1 MiB writes made
 * it allocate large folios whose first touch cost 2-4× the system time of the
 * whole seal on this VM (profile in docs/benchmarks.md); age-sized writes do not.
 */
function writeChunkAt(fd: number, bufs: Buffer[], position: number): void {
  let want = 0;
  for (const b of bufs) want += b.length;
  let done = writevSync(fd, bufs, position);
  if (done === want) return;
  // Short write (rare for regular files): write the rest from one buffer.
  const all = Buffer.concat(bufs);
  while (done < want) done += writeSync(fd, all, done, want - done, position + done);
}

/** Records chunk `i` as failing unless an earlier one already did. */
function noteFailure(state: Int32Array, i: number): void {
  for (let cur = Atomics.load(state, FIRST_FAILURE); i < cur; cur = Atomics.load(state, FIRST_FAILURE)) {
    if (Atomics.compareExchange(state, FIRST_FAILURE, cur, i) === cur) return;
  }
}

/** Runs this worker's share of a job. Pure apart from the two file descriptors. */
export function runAgeJob(job: AgeJob): void {
  const key = Buffer.from(job.key);
  const nonce = Buffer.alloc(12);
  const seal = job.op === 'seal';
  const inChunk = seal ? CHUNK_SIZE : ENC_CHUNK_SIZE;
  const outChunk = seal ? ENC_CHUNK_SIZE : CHUNK_SIZE;
  const input = Buffer.allocUnsafe(CHUNKS_PER_BLOCK * inChunk);
  const blocks = Math.ceil(job.chunks / CHUNKS_PER_BLOCK);
  for (let b = job.firstBlock; b < blocks; b += job.stride) {
    const first = b * CHUNKS_PER_BLOCK;
    // Stop at blocks after a known failure; earlier ones still run, so the
    // failure that is finally reported is the first in the file.
    if (Atomics.load(job.state, ABORTED) !== 0 || first > Atomics.load(job.state, FIRST_FAILURE)) return;
    const count = Math.min(CHUNKS_PER_BLOCK, job.chunks - first);
    const inOff = first * inChunk;
    const inLen = Math.min(count * inChunk, job.inLength - inOff);
    readFully(job.inFd, input, inLen, job.inStart + inOff);
    for (let i = 0, off = 0; i < count; i++) {
      const n = first + i;
      const last = n === job.chunks - 1;
      const end = Math.min(off + inChunk, inLen);
      const at = job.outStart + n * outChunk;
      if (seal) {
        const c = createCipheriv('chacha20-poly1305', key, setNonce(nonce, n, last), { authTagLength: TAG_SIZE });
        const ct = c.update(input.subarray(off, end));
        c.final();
        writeChunkAt(job.outFd, [ct, c.getAuthTag()], at);
        release(ct);
      } else {
        const enc = input.subarray(off, end);
        // A short chunk that is not the last, or one shorter than its tag:
        // the main thread names what is wrong with it.
        if (enc.length < TAG_SIZE || (!last && enc.length !== ENC_CHUNK_SIZE)) { noteFailure(job.state, n); return; }
        const d = createDecipheriv('chacha20-poly1305', key, setNonce(nonce, n, last), { authTagLength: TAG_SIZE });
        d.setAuthTag(enc.subarray(enc.length - TAG_SIZE));
        const pt = d.update(enc.subarray(0, enc.length - TAG_SIZE));
        let ok = true;
        try { d.final(); } catch { ok = false; }
        // Only an empty file may end in an empty final chunk. Nothing of a
        // failing chunk is written, and nothing after it in this share.
        if (!ok || (last && pt.length === 0 && n > 0)) { release(pt); noteFailure(job.state, n); return; }
        if (pt.length) writeChunkAt(job.outFd, [pt], at);
        release(pt);
      }
      off = end;
    }
  }
}

/** Runs one share and says how it went; an error also stops the other shares. */
export function runAgeShare(job: AgeJob): AgeReply {
  try {
    runAgeJob(job);
    return { ok: true };
  } catch (e) {
    Atomics.store(job.state, ABORTED, 1);
    const err = e as NodeJS.ErrnoException;
    return { ok: false, message: String(err?.message ?? e), ...(err?.code ? { code: err.code } : {}) };
  }
}

function serve(): void {
  parentPort!.on('message', (job: AgeJob) => parentPort!.postMessage(runAgeShare(job)));
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === AGE_WORKER_ROLE) serve();
