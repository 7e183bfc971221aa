// Sealing and opening allocate a fresh 64 KiB buffer per chunk (node:crypto
// has no update-into-buffer API), and V8 collects those only after ~64 MB of
// external memory piles up, which would put a 1 GiB seal at ~160 MB RSS. A
// young-generation collection every few MiB (≈0.5 ms each) keeps the garbage
// to a few blocks. `gc` comes from V8's --expose-gc flag set at runtime and
// fetched from a fresh context, so the main context's globals are untouched;
// if the runtime refuses, this is a no-op and memory is merely higher.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (opts?: { type?: 'minor' | 'major' }) => void;
let gc: Gc | null | undefined;

function load(): Gc | null {
  try {
    setFlagsFromString('--expose-gc');
    const f = runInNewContext('typeof gc === "function" ? gc : null') as Gc | null;
    return f;
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
