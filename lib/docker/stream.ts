// The engine's multiplexed stream (attach and logs without a TTY): frames of an
// 8-byte header [stream, 0, 0, 0, size as uint32 big-endian] and `size` payload
// bytes. Chunks from the socket cut frames anywhere, so the demuxer keeps the
// partial header and the remaining payload length between pushes. Payloads are
// handed on as views into the received chunks: no copies on the hot path.

export type StdStream = 'stdout' | 'stderr';
export type OutputSink = (chunk: Uint8Array, stream: StdStream) => void;

export class Demuxer {
  #sink: OutputSink;
  #header = new Uint8Array(8);
  #headerLen = 0;
  #remaining = 0;
  #stream: StdStream = 'stdout';

  constructor(sink: OutputSink) {
    this.#sink = sink;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.length - i);
        this.#sink(chunk.subarray(i, i + n), this.#stream);
        this.#remaining -= n;
        i += n;
        continue;
      }
      const n = Math.min(8 - this.#headerLen, chunk.length - i);
      this.#header.set(chunk.subarray(i, i + n), this.#headerLen);
      this.#headerLen += n;
      i += n;
      if (this.#headerLen === 8) {
        const h = this.#header;
        // 0 is stdin echoed back (only with OpenStdin), 1 stdout, 2 stderr.
        this.#stream = h[0] === 2 ? 'stderr' : 'stdout';
        this.#remaining = ((h[4]! << 24) >>> 0) + (h[5]! << 16) + (h[6]! << 8) + h[7]!;
        this.#headerLen = 0;
      }
    }
  }

  /** True when the stream ended cleanly on a frame boundary. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#headerLen === 0;
  }
}

/** Encodes one frame (tests, and anything that must produce the engine's format). */
export function muxFrame(stream: StdStream, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream === 'stderr' ? 2 : 1;
  new DataView(out.buffer).setUint32(4, payload.length);
  out.set(payload, 8);
  return out;
}
