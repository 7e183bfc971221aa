// Sealing and opening on this thread (streams, such as a workspace upload,
// and files below the parallel threshold) allocate a fresh 64 KiB buffer per
// chunk (node:crypto has no update-into-buffer API) and hand it on to a
// stream, so it cannot be freed early the way the worker threads free theirs
// (worker.ts). V8 collects those only after ~64 MB of external memory piles
// up, which would put a 1 GiB stream at ~160 MB RSS; a young-generation
// collection every few MiB (≈0.5 ms each) keeps the garbage to a few blocks.
//
// Why `--expose-gc` is set here, at run time, and only on first need
// (v8.setFlagsFromString, which Node documents as "use with care"):
// - any V8 flag given at start-up (the executable's execArgv) makes V8 reject
//   Node's built-in code cache, which cost every command a quarter of its
//   start-up (a trivial executable: 34 vs 27 ms CPU; docs/benchmarks.md);
// - the flag only decides whether *new* contexts get a `gc` function, so it is
//   set once, the function is fetched from a fresh context (the program's own
//   globals stay untouched), and nothing else reads it;
// - it runs only once a stream has passed a few MiB, never for short commands;
//   if the runtime refuses, this is a no-op and memory is merely higher.
// A runtime started with --expose-gc already has `gc`, which is used as is.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (opts?: { type?: 'minor' | 'major' }) => void;
let gc: Gc | null | undefined;

function load(): Gc | null {
  const global = (globalThis as { gc?: Gc }).gc;
  if (typeof global === 'function') return global;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('typeof gc === "function" ? gc : null') as Gc | null;
  } catch {
    return null;
  }
}

/** Collects the young generation (where per-chunk buffers die). */
export function collectChunkGarbage(): void {
  if (gc === undefined) gc = load();
  gc?.({ type: 'minor' });
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
