// Quotas: how much of the server's disk one run or one worker may take.
// - a run's logs, all phases together, up to `maxRunLogBytes`: past it the
//   output is cut with a visible marker and the launcher is told to stop;
// - sealed workspace uploads in flight: at most `maxUploadsPerWorker` per
//   worker and `maxUploads` in all (each holds a file in tmp/);
// - a free-disk floor: an upload that would leave less than `minFreeDiskBytes`
//   free gets 507 instead of filling the disk.
import { statfs } from 'node:fs/promises';
import { Refusal } from './refusal.ts';

export interface Quotas {
  maxRunLogBytes: number;
  maxUploadsPerWorker: number;
  maxUploads: number;
  minFreeDiskBytes: number;
}

export const DEFAULT_QUOTAS: Quotas = {
  maxRunLogBytes: 100 * 1024 * 1024,
  maxUploadsPerWorker: 2,
  maxUploads: 32,
  minFreeDiskBytes: 1024 * 1024 * 1024,
};

/** The line a truncated log ends with (what readers see where the output stops). */
export function truncationMarker(limit: number): Buffer {
  return Buffer.from(`\n[launcher server] Log truncated: this run's logs reached the limit of ${limit} bytes (--max-run-log); later output was not stored\n`);
}

/**
 * What to store of a chunk given the run's total so far. `marked`: this
 * phase's log already ends with the marker. Returns the bytes to append
 * (possibly empty) and whether the run is now over its limit.
 */
export function capChunk(chunk: Buffer, runTotal: number, phaseBytes: number, limit: number): { store: Buffer; truncated: boolean } {
  if (runTotal + chunk.length <= limit) return { store: chunk, truncated: false };
  // Once the marker is written the total is past the limit; a phase that
  // has bytes while the run is past it therefore already carries the marker.
  const marked = runTotal > limit && phaseBytes > 0;
  if (marked) return { store: Buffer.alloc(0), truncated: true };
  const room = Math.max(0, limit - runTotal);
  return { store: Buffer.concat([chunk.subarray(0, room), truncationMarker(limit)]), truncated: true };
}

export class UploadSlots {
  readonly #q: Quotas;
  readonly #perWorker = new Map<string, number>();
  #total = 0;
  constructor(q: Quotas) { this.#q = q; }

  get inFlight(): number { return this.#total; }

  /** Takes an upload slot for `owner` (a worker id, or "admin"); returns its release. */
  acquire(owner: string): () => void {
    const mine = this.#perWorker.get(owner) ?? 0;
    if (owner !== 'admin' && mine >= this.#q.maxUploadsPerWorker) {
      throw new Refusal('busy', 'TOO_MANY_UPLOADS', `Too many uploads at once: worker ${owner} already has ${mine} in progress (the limit is ${this.#q.maxUploadsPerWorker}); retry when one has finished`);
    }
    if (this.#total >= this.#q.maxUploads) {
      throw new Refusal('busy', 'TOO_MANY_UPLOADS', `Too many uploads at once: the server has ${this.#total} in progress (the limit is ${this.#q.maxUploads}); retry shortly`);
    }
    this.#perWorker.set(owner, mine + 1);
    this.#total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const n = (this.#perWorker.get(owner) ?? 1) - 1;
      if (n <= 0) this.#perWorker.delete(owner); else this.#perWorker.set(owner, n);
    };
  }
}

/** Free bytes for an unprivileged writer on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws 507 when writing `incoming` more bytes into `dir` would leave less than the floor free. */
export async function checkDiskFloor(dir: string, incoming: number, floor: number): Promise<void> {
  const free = await freeBytes(dir);
  if (free - incoming < floor) {
    throw new Refusal('full', 'INSUFFICIENT_STORAGE', `Upload refused: the server's disk has ${free} bytes free and keeps at least ${floor} free (--min-free-disk)`);
  }
}
