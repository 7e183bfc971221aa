// File-to-file sealing and opening without stream machinery: two reusable
// read buffers (one being filled while the other is processed) and gathered
// writes (writev) of the sealed or opened chunks, so reading, crypto and
// writing overlap and memory stays at a few blocks for any file size.
import type { FileHandle } from 'node:fs/promises';
import type { Emit } from './seal.ts';

/** The pure cores (Sealer, Opener): they copy whatever they keep from `chunk`. */
export interface ChunkCore {
  write(chunk: Buffer, emit: Emit): void;
  end(emit: Emit): void;
}

export const BLOCK_SIZE = 4 << 20;
// writev takes at most IOV_MAX (1024 on Linux) buffers per call.
const MAX_IOV = 1024;

async function writeAll(out: FileHandle, bufs: Buffer[]): Promise<void> {
  for (let i = 0; i < bufs.length; i += MAX_IOV) {
    let batch = bufs.slice(i, i + MAX_IOV);
    let want = batch.reduce((n, b) => n + b.length, 0);
    while (want > 0) {
      const { bytesWritten } = await out.writev(batch);
      want -= bytesWritten;
      if (want === 0) break;
      // Short write: drop what went out and retry the rest.
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const b of batch) {
        if (skip >= b.length) skip -= b.length;
        else { rest.push(skip ? b.subarray(skip) : b); skip = 0; }
      }
      batch = rest;
    }
  }
}

export async function pumpFile(core: ChunkCore, input: FileHandle, output: FileHandle, blockSize = BLOCK_SIZE): Promise<void> {
  const bufs = [Buffer.allocUnsafe(blockSize), Buffer.allocUnsafe(blockSize)];
  let which = 0;
  let reading = input.read(bufs[0]!, 0, blockSize, null);
  let writing: Promise<void> = Promise.resolve();
  try {
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      const cur = bufs[which]!;
      which ^= 1;
      reading = input.read(bufs[which]!, 0, blockSize, null);
      const out: Buffer[] = [];
      core.write(cur.subarray(0, bytesRead), (b) => { if (b.length) out.push(b); });
      await writing;
      writing = writeAll(output, out);
    }
    const out: Buffer[] = [];
    core.end((b) => { if (b.length) out.push(b); });
    await writing;
    await writeAll(output, out);
  } catch (e) {
    // Let in-flight I/O settle before the caller closes the handles.
    await reading.catch(() => undefined);
    await writing.catch(() => undefined);
    throw e;
  }
}
