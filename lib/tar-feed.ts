// Copying a stream into one tar-stream entry (or any streamx writable) with
// backpressure, for workspace archives and backups alike. A destroyed sink
// never emits 'drain' or 'close' again: waiting would hang and leave the
// source (a file, a socket) open forever, so a sink found destroyed (before a
// write, after a refused write, before the end) throws `gone()` instead,
// which ends the for-await and destroys the source.

interface TarWritable {
  readonly destroyed: boolean;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

export async function feedEntry(src: AsyncIterable<unknown> | Iterable<unknown>, sink: object, gone: () => Error, onChunk?: (c: Buffer) => void): Promise<void> {
  // tar-stream's streamx event typings do not fit a structural type; the shape is this.
  const dst = sink as TarWritable;
  for await (const chunk of src) {
    if (dst.destroyed) throw gone();
    onChunk?.(chunk as Buffer);
    if (!dst.write(chunk as Uint8Array)) {
      if (dst.destroyed) throw gone();
      await new Promise<void>((resolve) => {
        const done = (): void => { dst.off('drain', done); dst.off('close', done); resolve(); };
        dst.once('drain', done);
        dst.once('close', done);
      });
    }
  }
  if (dst.destroyed) throw gone();
  dst.end();
}
