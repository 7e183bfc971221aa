// The engine's log endpoint with `timestamps=1`: each frame of the
// multiplexed stream is one log entry whose payload starts with its RFC 3339
// timestamp and a space. Used to pick up a container's output from a point
// (lib/launcher/logcheckpoint.ts) instead of from the start.
import { Transform, type TransformCallback } from 'node:stream';
import { muxFrame, type StdStream } from './stream.ts';

export interface LogEntry { stream: StdStream; ts: string; payload: Buffer }

/** The engine's `since` parameter for an RFC 3339 timestamp: seconds.nanoseconds, no float rounding. */
export function dockerSince(ts: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(ts);
  if (!m) throw new Error(`Not an engine log timestamp: ${ts}`);
  const secs = Date.parse(`${m[1]}Z`) / 1000;
  return `${secs}.${(m[2] ?? '').padEnd(9, '0')}`;
}

/**
 * Parses the engine's multiplexed log stream requested with `timestamps=1`:
 * each frame is one log entry whose payload starts with "TIMESTAMP ".
 */
export class TimestampedFrames {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): LogEntry[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const out: LogEntry[] = [];
    let i = 0;
    while (this.#buf.length - i >= 8) {
      const size = this.#buf.readUInt32BE(i + 4);
      if (this.#buf.length - i - 8 < size) break;
      const stream: StdStream = this.#buf[i] === 2 ? 'stderr' : 'stdout';
      const frame = this.#buf.subarray(i + 8, i + 8 + size);
      const sp = frame.indexOf(0x20);
      if (sp <= 0) throw new Error('A log entry without a timestamp (was timestamps=1 asked for?)');
      out.push({ stream, ts: frame.toString('ascii', 0, sp), payload: frame.subarray(sp + 1) });
      i += 8 + size;
    }
    this.#buf = this.#buf.subarray(i);
    return out;
  }

  /** True when the stream ended on an entry boundary. */
  get atBoundary(): boolean { return this.#buf.length === 0; }
}

/**
 * The resume stream: entries from `since` on, the first `skip` dropped, the
 * rest handed on as plain multiplexed frames (no timestamps), which is what
 * the executor reads from attach.
 */
export function resumeFrames(skip: number): Transform {
  const frames = new TimestampedFrames();
  let toSkip = skip;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        for (const e of frames.push(chunk)) {
          if (toSkip > 0) { toSkip--; continue; }
          this.push(muxFrame(e.stream, e.payload));
        }
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}

