// The masker as a node:stream Transform (for piping a run's output).
import { Transform } from 'node:stream';
import { Masker, type MaskerOptions } from './masker.ts';

/** A Transform that masks what flows through it; `masker` is exposed for add(). */
export function createMaskStream(opts: MaskerOptions | Masker): Transform & { masker: Masker } {
  const masker = opts instanceof Masker ? opts : new Masker(opts);
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      try {
        const out = masker.write(chunk);
        if (out.length > 0) this.push(out);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done) {
      const out = masker.end();
      if (out.length > 0) this.push(out);
      done();
    },
  });
  return Object.assign(stream, { masker });
}
