// Sealed workspaces on the server: uploads (from an admin's trigger or a
// worker's phase) are streamed into a temp file, refused unless they are age
// files (the server never stores plaintext by mistake) or over the size limit,
// and served back as streams. The bytes are the blob store's; the rules are here.
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { workspaceTooLarge, type BlobStore } from './blobs.ts';
import { Refusal } from './refusal.ts';
import type { RunRow } from './store.ts';

/** True when bytes start like an age file (binary or armored). */
export function looksSealed(head: Buffer): boolean {
  const s = head.subarray(0, 40).toString('latin1');
  return s.startsWith('age-encryption.org/v1\n') || s.startsWith('-----BEGIN AGE ENCRYPTED FILE-----');
}

export class Workspaces {
  private readonly blobs: BlobStore;
  private readonly maxBytes: number;
  constructor(blobs: BlobStore, maxBytes: number) {
    this.blobs = blobs;
    this.maxBytes = maxBytes;
  }

  /** The run's latest sealed workspace as a stream. */
  async open(run: RunRow): Promise<{ stream: Readable; size: number }> {
    const f = run.has_workspace ? await this.blobs.open(this.blobs.workspacePath(run.id)) : undefined;
    if (!f) throw new Refusal('not-found', 'NO_WORKSPACE', `Run ${run.id} has no sealed workspace`);
    return f;
  }

  /** Streams an upload into a temp file; undefined for an empty body. The caller commits or discards it. */
  async receive(body: Readable, declared: number): Promise<{ tmp: string; size: number } | undefined> {
    const limit = this.maxBytes;
    if (Number.isFinite(declared) && declared > limit) throw workspaceTooLarge(limit);
    const got = await this.blobs.receive(body, limit);
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
