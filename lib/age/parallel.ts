// Parallel STREAM for large files. STREAM chunks are independent given their
// index, so with the file sizes known every chunk's place in both files is
// known too: each thread (worker threads running worker.ts, and this thread
// for the last share) reads its own blocks of the input, seals or opens them
// and writes them in place in the output. On a 2-core host that spreads the cipher,
// the copies and the kernel's read and write work over both cores, where a
// single-threaded peer (age) does them one after the other.
//
// Opening keeps the sequential guarantees: when a chunk does not authenticate,
// every chunk before it is still opened, the output is cut back to exactly
// those, and the sequential PayloadOpener re-examines the first failing chunk
// to name the failure (modified, truncated, trailing data).
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import { CHUNK_SIZE, ENC_CHUNK_SIZE, PayloadOpener } from './stream.ts';
import { AgeError } from './errors.ts';
import { ABORTED, AGE_WORKER_ROLE, chunkCount, FIRST_FAILURE, NO_FAILURE, runAgeShare, type AgeJob, type AgeReply } from './worker.ts';

/** Below this the threads' start-up (~tens of ms) costs more than it saves. */
export const PARALLEL_MIN_BYTES = 16 << 20;

/**
 * Set by build.mjs to the bundled worker.ts: inside the executable there is no
 * worker.ts file to start, so the bundle carries the module's compiled form.
 */
declare const LAUNCHER_AGE_WORKER_SOURCE: string | undefined;

/** A worker thread running worker.ts, however this code is being run. */
export function startAgeWorker(): Worker {
  const options = { workerData: { role: AGE_WORKER_ROLE }, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } };
  if (typeof LAUNCHER_AGE_WORKER_SOURCE === 'string') return new Worker(LAUNCHER_AGE_WORKER_SOURCE, { ...options, eval: true });
  return new Worker(new URL('./worker.ts', import.meta.url), options);
}

export function workerCount(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** Runs `count` shares of the job and resolves with each one's reply when all have stopped. */
export type RunShares = (job: Omit<AgeJob, 'firstBlock' | 'stride'>, count: number) => Promise<AgeReply[]>;

/**
 * Shares 0..count-2 go to worker threads; this thread runs the last one
 * itself, synchronously, once the others have their jobs. The parallel pump
 * serves `launcher state` alone (lib/age/pump.ts), whose main thread would
 * otherwise only wait, and every worker thread costs its own isolate: about
 * 11 MiB of a 1 GiB seal's peak RSS (docs/benchmarks.md, round 3). A worker
 * that dies is noticed once this thread's share is done.
 */
export const runSharesOnThreads: RunShares = async (job, count) => {
  const workers = Array.from({ length: count - 1 }, () => startAgeWorker());
  try {
    const replies = workers.map((w, k) => new Promise<AgeReply>((resolve) => {
      // A worker that dies (out of memory, killed) must not leave us waiting.
      const died = (e: unknown) => {
        Atomics.store(job.state, ABORTED, 1);
        resolve({ ok: false, message: `age worker thread failed: ${String((e as Error)?.message ?? e)}` });
      };
      w.once('message', resolve);
      w.once('error', died);
      w.once('exit', (code) => died(new Error(`exited with code ${code}`)));
      w.postMessage({ ...job, firstBlock: k, stride: count } satisfies AgeJob);
    }));
    const own = runAgeShare({ ...job, firstBlock: count - 1, stride: count });
    return [...(await Promise.all(replies)), own];
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
};

export interface PayloadPlace {
  /** Where the payload starts in the input (open: after the header and nonce). */
  inStart: number;
  /** Where the payload starts in the output (seal: after the header and nonce). */
  outStart: number;
}

/**
 * Seals or opens the payload of `input` into `output` on worker threads. Both
 * must be regular files, the output opened for writing without append. The
 * input's size is read once; a file that changes size meanwhile is an error.
 */
export async function pumpPayloadParallel(op: 'seal' | 'open', key: Buffer, input: FileHandle, output: FileHandle, place: PayloadPlace, opts: { threads?: number; runShares?: RunShares } = {}): Promise<void> {
  const size = (await input.stat()).size;
  const inLength = size - place.inStart;
  const chunks = chunkCount(op, inLength);
  if (op === 'open' && chunks === 0) {
    // Nothing after the nonce: let the sequential opener say "no chunks".
    new PayloadOpener(key).next(Buffer.alloc(0), false, () => undefined);
  }
  const state = new Int32Array(new SharedArrayBuffer(8));
  state[FIRST_FAILURE] = NO_FAILURE;
  const threads = Math.max(1, Math.min(opts.threads ?? workerCount(), Math.ceil(chunks / 16)));
  const replies = await (opts.runShares ?? runSharesOnThreads)({
    op, key: new Uint8Array(key), inFd: input.fd, outFd: output.fd, inStart: place.inStart, outStart: place.outStart, inLength, chunks, state,
  }, threads);
  const failed = replies.find((r): r is Extract<AgeReply, { ok: false }> => !r.ok);
  const changed = (): AgeError => new AgeError('AGE_INPUT_CHANGED', `Cannot ${op} the input: it changed size while it was being ${op === 'seal' ? 'sealed' : 'opened'} (${size} bytes at the start); seal or open a copy that is not being written to`);
  if (failed?.code === 'AGE_INPUT_CHANGED') throw changed();
  // I/O errors keep their errno code (EIO, ENOSPC, …) for the caller to report.
  if (failed) throw Object.assign(new Error(failed.message), failed.code ? { code: failed.code } : {});
  if ((await input.stat()).size !== size) throw changed();
  const first = state[FIRST_FAILURE]!;
  if (op === 'seal' || first === NO_FAILURE) return;
  // Keep exactly the chunks before the first failure, then name the failure.
  await output.truncate(place.outStart + first * CHUNK_SIZE);
  const at = first * ENC_CHUNK_SIZE;
  const chunk = Buffer.alloc(Math.min(ENC_CHUNK_SIZE, inLength - at));
  for (let n = 0; n < chunk.length;) {
    const { bytesRead } = await input.read(chunk, n, chunk.length - n, place.inStart + at + n);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  new PayloadOpener(key, first).next(chunk, first < chunks - 1, () => undefined);
  throw new AgeError('AGE_PAYLOAD_INVALID', `Invalid age payload: chunk ${first + 1} does not authenticate`);
}
