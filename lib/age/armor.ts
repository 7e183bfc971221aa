// ASCII armor: strict PEM with the label "AGE ENCRYPTED FILE", padded
// canonical base64 in 64-column lines, no PEM headers. Whitespace is allowed
// only before and after the block; lines may end in LF or CRLF. Decoding is
// incremental so an armored file streams in constant memory.
import { AgeError } from './errors.ts';
import { decodePadded } from './base64.ts';

export const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
export const ARMOR_END = '-----END AGE ENCRYPTED FILE-----';
const COLUMNS = 64;
const MAX_LINE = 128;

const bad = (d: string): AgeError => new AgeError('AGE_ARMOR_INVALID', `Invalid armored age file: ${d}`);
const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

export class ArmorDecoder {
  #state: 'before' | 'begin' | 'body' | 'after' = 'before';
  #pending = '';
  #lastLineSeen = false;

  /** Feeds armored text; returns the bytes decoded so far. */
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let i = 0;
    if (this.#state === 'before') {
      while (i < chunk.length && isSpace(chunk[i]!)) i++;
      if (i === chunk.length) return Buffer.alloc(0);
      this.#state = 'begin';
    }
    if (this.#state === 'after') {
      for (; i < chunk.length; i++) if (!isSpace(chunk[i]!)) throw bad('data follows the END line');
      return Buffer.alloc(0);
    }
    this.#pending += chunk.toString('latin1', i);
    for (;;) {
      const nl = this.#pending.indexOf('\n');
      if (nl < 0) break;
      let line = this.#pending.slice(0, nl);
      this.#pending = this.#pending.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const decoded = this.#line(line);
      if (decoded) out.push(decoded);
      if (this.#ended()) {
        const rest = this.#pending;
        this.#pending = '';
        for (let j = 0; j < rest.length; j++) if (!isSpace(rest.charCodeAt(j))) throw bad('data follows the END line');
        break;
      }
    }
    if (this.#pending.length > MAX_LINE) throw bad(`a line is longer than ${COLUMNS} columns`);
    return Buffer.concat(out);
  }

  #ended(): boolean {
    return this.#state === 'after';
  }

  /** Call at end of input; the END line may lack its final newline. */
  end(): Buffer {
    let out: Buffer | null = null;
    if (this.#pending.length > 0) {
      const line = this.#pending.endsWith('\r') ? this.#pending.slice(0, -1) : this.#pending;
      this.#pending = '';
      out = this.#line(line);
    }
    if (this.#state === 'before') throw bad('the input is empty');
    if (this.#state !== 'after') throw bad(`the "${ARMOR_END}" line is missing`);
    return out ?? Buffer.alloc(0);
  }

  #line(line: string): Buffer | null {
    switch (this.#state) {
      case 'begin':
        if (line !== ARMOR_BEGIN) throw bad(`the first line must be "${ARMOR_BEGIN}"`);
        this.#state = 'body';
        return null;
      case 'body': {
        if (line === ARMOR_END) {
          this.#state = 'after';
          return null;
        }
        if (this.#lastLineSeen) throw bad(`expected "${ARMOR_END}" after a short or padded line`);
        if (line.length === 0) throw bad('empty line inside the armor');
        if (line.length > COLUMNS) throw bad(`a line is longer than ${COLUMNS} columns`);
        if (line.length < COLUMNS || line.includes('=')) this.#lastLineSeen = true;
        const bytes = decodePadded(line);
        if (!bytes) throw bad('a line is not canonical padded base64');
        return bytes;
      }
      default:
        throw bad('unexpected line');
    }
  }
}

/** Incremental armor encoder: bytes in, PEM text out. */
export class ArmorEncoder {
  #carry = Buffer.alloc(0);
  #started = false;

  push(chunk: Buffer): string {
    let out = this.#started ? '' : ARMOR_BEGIN + '\n';
    this.#started = true;
    const all = this.#carry.length ? Buffer.concat([this.#carry, chunk]) : chunk;
    const whole = all.length - (all.length % 48);
    for (let i = 0; i < whole; i += 48) out += all.toString('base64', i, i + 48) + '\n';
    this.#carry = Buffer.from(all.subarray(whole));
    return out;
  }

  end(): string {
    let out = this.#started ? '' : ARMOR_BEGIN + '\n';
    if (this.#carry.length) out += this.#carry.toString('base64') + '\n';
    return out + ARMOR_END + '\n';
  }
}
