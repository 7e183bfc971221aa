// File-to-file sealing and opening without stream machinery: two reusable
// read buffers (one being filled while the other is processed) and gathered
// writes (writev) of the sealed or opened chunks, so reading, crypto and
// writing overlap and memory stays at a few blocks for any file size.
import type { FileHandle } from 'node:fs/promises';
import type { Emit } from './seal.ts';
import { GarbageMeter } from './memory.ts';
import { Sealer } from './seal.ts';
import { Opener } from './open.ts';
import { CHUNK_SIZE } from './stream.ts';
import { MAX_HEADER_BYTES } from './format.ts';
import { PARALLEL_MIN_BYTES, pumpPayloadParallel } from './parallel.ts';

/** The pure cores (Sealer, Opener): they copy whatever they keep from `chunk`. */
export interface ChunkCore {
  write(chunk: Buffer, emit: Emit): void;
  end(emit: Emit): void;
}

export const BLOCK_SIZE = 1 << 20;
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

async function writeAt(out: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let off = 0; off < buf.length;) off += (await out.write(buf, off, buf.length - off, position + off)).bytesWritten;
}

/** Large regular files, where worker threads pay for their start-up. */
async function parallelWorthIt(input: FileHandle, output: FileHandle): Promise<boolean> {
  if (process.env.LAUNCHER_AGE_THREADS === '0') return false;
  const i = await input.stat();
  if (!i.isFile() || i.size < PARALLEL_MIN_BYTES) return false;
  // Positional writes need a regular file; a FIFO or device is written in order.
  return (await output.stat()).isFile();
}

/**
 * Seals or opens `input` into `output`, both freshly opened (at position 0;
 * the output not in append mode). Large regular files are sealed or opened by
 * worker threads (parallel.ts) once the header is done; everything else, and
 * armored input, runs on this thread.
 */
export async function pumpFile(core: ChunkCore, input: FileHandle, output: FileHandle, blockSize = BLOCK_SIZE): Promise<void> {
  if (await parallelWorthIt(input, output)) {
    if (core instanceof Sealer) {
      const d = core.detachPayload();
      if (d) {
        await writeAt(output, d.prefix, 0);
        return await pumpPayloadParallel('seal', d.key, input, output, { inStart: 0, outStart: d.prefix.length });
      }
    }
    if (core instanceof Opener) {
      // Feed the header in 64 KiB pieces: fewer bytes than one encrypted
      // chunk are queued at a time, so no chunk is opened before detaching.
      const buf = Buffer.allocUnsafe(CHUNK_SIZE);
      let read = 0;
      let written = 0;
      while (read <= MAX_HEADER_BYTES + CHUNK_SIZE) {
        const { bytesRead } = await input.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        read += bytesRead;
        const out: Buffer[] = [];
        core.write(buf.subarray(0, bytesRead), (b) => { if (b.length) out.push(b); });
        await writeAll(output, out);
        written += out.reduce((n, b) => n + b.length, 0);
        const d = core.detachPayload();
        if (d) return await pumpPayloadParallel('open', d.key, input, output, { inStart: read - d.pending.length, outStart: written });
        if (core.armored) break;
      }
    }
  }
  const bufs = [Buffer.allocUnsafe(blockSize), Buffer.allocUnsafe(blockSize)];
  let which = 0;
  // A read and a write are in flight together and only one is awaited at a
  // time: one failing while the loop awaits the other would be an unhandled
  // rejection (fatal in Node) before the loop reaches it. Marking each as
  // handled up front is safe: awaiting it later still throws its error.
  const inFlight = <T>(p: Promise<T>): Promise<T> => { p.catch(() => undefined); return p; };
  let reading = inFlight(input.read(bufs[0]!, 0, blockSize, null));
  let writing: Promise<void> = Promise.resolve();
  const meter = new GarbageMeter(1 << 19);
  try {
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      const cur = bufs[which]!;
      which ^= 1;
      reading = inFlight(input.read(bufs[which]!, 0, blockSize, null));
      const out: Buffer[] = [];
      core.write(cur.subarray(0, bytesRead), (b) => { if (b.length) out.push(b); });
      await writing;
      // The previous block's output is written and unreferenced now.
      meter.add(bytesRead);
      writing = inFlight(writeAll(output, out));
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
