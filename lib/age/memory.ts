// Sealing and opening on this thread (streams, and files below the parallel
// threshold) allocate a fresh 64 KiB buffer per chunk (node:crypto has no
// update-into-buffer API) and hand it to a stream, so it cannot be freed
// early the way the worker threads do (worker.ts). V8 collects those only
// after ~64 MB of external memory piles up, which would put a 1 GiB stream
// at ~160 MB RSS; a young-generation collection every few MiB (≈0.5 ms each)
// keeps the garbage to a few blocks.
//
// `gc` exists when the runtime was started with --expose-gc: the executable
// bakes that flag in (scripts/build-sea.mjs, SEA_EXEC_ARGV) and so does
// `npm run launcher`. Elsewhere (tests, a library user's process) this is a
// no-op and memory is merely higher; flags are never changed at run time.
type Gc = (opts?: { type?: 'minor' | 'major' }) => void;

/** Collects the young generation (where per-chunk buffers die), when the runtime allows it. */
export function collectChunkGarbage(): void {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (typeof gc === 'function') gc({ type: 'minor' });
}

/** Calls collectChunkGarbage after every `every` bytes counted. */
export class GarbageMeter {
  #since = 0;
  #every: number;
  constructor(every = 8 << 20) {
    this.#every = every;
  }
  add(bytes: number): void {
    this.#since += bytes;
    if (this.#since >= this.#every) {
      this.#since = 0;
      collectChunkGarbage();
    }
  }
}
