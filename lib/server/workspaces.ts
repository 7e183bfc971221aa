// Sealed workspaces on the server: uploads (from an admin's trigger or a
// worker's phase) are streamed into a temp file, refused unless they are age
// files (the server never stores plaintext by mistake) or over the size limit,
// and served back as streams. The bytes are the blob store's; the rules are here.
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { workspaceTooLarge, type BlobStore } from './blobs.ts';
import { checkDiskFloor, type Quotas, type UploadSlots } from './quotas.ts';
import { Refusal } from './refusal.ts';
import type { RunRow } from './store.ts';

/** True when bytes start like an age file (binary or armored). */
export function looksSealed(head: Buffer): boolean {
  const s = head.subarray(0, 40).toString('latin1');
  return s.startsWith('age-encryption.org/v1\n') || s.startsWith('-----BEGIN AGE ENCRYPTED FILE-----');
}

export interface WorkspaceOptions {
  blobs: BlobStore;
  maxBytes: number;
  /** Upload slots per worker and in total (quotas.ts). */
  uploads: UploadSlots;
  quotas: Quotas;
  /** Where uploads land first (the free-disk floor is measured there). */
  tmpDir: string | undefined;
}

export class Workspaces {
  private readonly blobs: BlobStore;
  private readonly maxBytes: number;
  private readonly o: WorkspaceOptions;
  constructor(o: WorkspaceOptions) {
    this.o = o;
    this.blobs = o.blobs;
    this.maxBytes = o.maxBytes;
  }

  /** The run's latest sealed workspace as a stream. */
  async open(run: RunRow): Promise<{ stream: Readable; size: number }> {
    const f = run.has_workspace ? await this.blobs.open(this.blobs.workspacePath(run.id)) : undefined;
    if (!f) throw new Refusal('not-found', 'NO_WORKSPACE', `Run ${run.id} has no sealed workspace`);
    return f;
  }

  /**
   * Streams an upload into a temp file for `owner` (a worker id, or "admin"):
   * within the per-worker and total upload slots and above the free-disk
   * floor; undefined for an empty body. The caller commits or discards it;
   * whatever fails, nothing is left in tmp/.
   */
  async receive(body: Readable, declared: number, owner = 'admin'): Promise<{ tmp: string; size: number } | undefined> {
    const limit = this.maxBytes;
    if (Number.isFinite(declared) && declared > limit) throw workspaceTooLarge(limit);
    const release = this.o.uploads.acquire(owner);
    try {
      return await this.#receive(body, declared, limit);
    } finally {
      release();
    }
  }

  async #receive(body: Readable, declared: number, limit: number): Promise<{ tmp: string; size: number } | undefined> {
    const floor = this.o.quotas.minFreeDiskBytes;
    const dir = this.o.tmpDir;
    if (dir !== undefined) await checkDiskFloor(dir, Number.isFinite(declared) ? declared : 0, floor);
    const got = await this.blobs.receive(body, limit, dir === undefined ? undefined : (n) => checkDiskFloor(dir, Number.isFinite(declared) ? Math.max(0, declared - n) : 0, floor));
    if (got.size === 0) { await this.blobs.discard(got.tmp); return undefined; }
    const fh = await open(got.tmp, 'r');
    const head = Buffer.alloc(40);
    try { await fh.read(head, 0, 40, 0); } finally { await fh.close(); }
    if (!looksSealed(head)) {
      await this.blobs.discard(got.tmp);
      throw new Refusal('invalid', 'NOT_SEALED', 'Workspace refused: it is not an age file (seal it to the pool\'s keys first; the server never stores plaintext)');
    }
    return got;
  }
}
