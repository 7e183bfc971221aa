// The streaming masker over the bytes of a run's output (forms.ts says what
// is looked for, automaton.ts how). It keeps the same guarantees as
// buildkite's internal/replacer: the automaton's state is the longest suffix
// of the stream that could still begin a pattern, so holding back exactly
// that many bytes (and nothing else) catches a secret split across any
// number of writes, and matches that overlap or touch become one mask.
//
// A line `::add-mask::VALUE` in the output adds VALUE for the rest of the
// stream; that line itself is printed as `::add-mask::*****`.
import { buildAutomaton, runLane, type Automaton } from './automaton.ts';
import { maskForms } from './forms.ts';

/** What replaces a masked stretch of output. */
export const MASK = '*****';
/** Values shorter than this many bytes are not masked (they would match everywhere). */
export const DEFAULT_MIN_LENGTH = 4;
/** Past this many bytes of patterns, further values are masked without their encoded forms. */
export const MAX_PATTERN_BYTES = 256 * 1024;
/** An `::add-mask::` line longer than this is dropped whole rather than held without limit. */
export const MAX_DIRECTIVE_BYTES = 64 * 1024;

const DIRECTIVE = '::add-mask::';
// Below this many bytes per lane a write is scanned in one lane.
const LANE_MIN = 1024;
const NL = 0x0a;
const enc = new TextEncoder();
const dec = new TextDecoder();
const MASK_BYTES = enc.encode(MASK);
const DIRECTIVE_BYTES = enc.encode(DIRECTIVE);

export interface Secret {
  /** Where the value came from (a variable name); used in warnings, never the value. */
  name: string;
  value: string;
}

export interface MaskerOptions {
  secrets: Secret[];
  /** Defaults to DEFAULT_MIN_LENGTH. */
  minLength?: number;
  /** Receives warnings such as a value too short to mask. Never contains a value. */
  onWarning?(message: string): void;
  /** Honour `::add-mask::` lines in the stream (default true). */
  directives?: boolean;
  /**
   * Called with each value an `::add-mask::` line adds (and is long enough to
   * mask), e.g. to add it to the masker of the run's other output stream.
   */
  onAdd?(value: string): void;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/**
 * Streaming masker. `write` returns the bytes that are safe to emit so far
 * (possibly a view of the input chunk); `end` returns the rest. Output is the
 * same however the input is split into writes.
 */
export class Masker {
  readonly minLength: number;
  #warn: (m: string) => void;
  #onAdd: (value: string) => void;
  #directives: boolean;
  #values = new Set<string>();
  #patterns = new Set<string>();
  #patternBytes = 0;
  // Two automata, so that adding a value does not rebuild the one over every
  // secret: #ac holds the patterns known when it was built (and the add-mask
  // marker), #extra only those added since. Once the added patterns outweigh
  // the others, both are folded into one #ac again, so rebuilding stays
  // proportional to what was added (amortised) and scanning to two lookups
  // per byte at most.
  #basePatterns: string[] = [];
  #baseBytes = 0;
  #addedPatterns: string[] = [];
  #addedBytes = 0;
  #built = false;
  #ac: Automaton;
  #state: number;
  #extra: Automaton | undefined;
  #xstate = 0;
  // Bytes received but not yet emitted, starting at stream offset #heldStart.
  #held: Uint8Array = EMPTY;
  #heldStart = 0;
  #pos = 0; // stream offset just past the last byte received
  #ranges: number[] = []; // merged [from, to) pairs of stream offsets still to emit
  #lastMaskEnd = -1; // so a mask touching one already emitted continues it
  #dirStart = -1; // stream offset of an `::add-mask::` line being held, or -1
  // The byte before #heldStart (a newline before the stream), to tell whether
  // an `::add-mask::` at the start of the held bytes starts a line.
  #prevByte = NL;
  #swallow = false; // dropping the rest of an overlong `::add-mask::` line
  #ended = false;
  // The write in progress: its bytes, their stream offset, how far they are
  // emitted, and the output so far.
  #data: Uint8Array = EMPTY;
  #base = 0;
  #cur = 0;
  #out: Uint8Array[] = [];

  constructor(opts: MaskerOptions) {
    this.minLength = opts.minLength ?? DEFAULT_MIN_LENGTH;
    this.#warn = opts.onWarning ?? (() => {});
    this.#onAdd = opts.onAdd ?? (() => {});
    this.#directives = opts.directives ?? true;
    for (const s of opts.secrets) this.#addValue(s.value, s.name);
    this.#ac = this.#build(this.#basePatterns, this.#directives);
    this.#built = true;
    this.#state = 0;
  }

  /**
   * True when nothing is held back and the last byte written ended a line: a
   * new masker given the same values (and the ones added since) would go on
   * from here exactly as this one (lib/launcher/logcheckpoint.ts).
   */
  get atRest(): boolean {
    return this.#held.length === 0 && this.#dirStart < 0 && !this.#swallow && this.#prevByte === NL;
  }

  /** Number of distinct byte patterns searched for (values and their encodings). */
  get patternCount(): number {
    return this.#patterns.size;
  }

  /**
   * Adds a value to mask from here on. Bytes still held back are searched
   * again; bytes already emitted are not.
   */
  add(value: string, name = 'a value added at run time'): void {
    if (!this.#addValue(value, name)) return;
    this.#compileAdded();
    if (this.#dirStart >= 0 || this.#swallow) return; // matching restarts after that line
    this.#ranges = [];
    this.#scan(this.#held, this.#heldStart, 0, false);
  }

  /** Number of patterns in each automaton (the one built first, the one of later additions): for tests. */
  get automatonSizes(): { base: number; added: number } {
    return { base: this.#basePatterns.length, added: this.#addedPatterns.length };
  }

  write(chunk: Uint8Array): Uint8Array {
    if (this.#ended) throw new Error('Cannot write to a masker after end()');
    if (chunk.length === 0) return EMPTY;
    const owned = this.#held.length > 0;
    // A plain Uint8Array view even for a Buffer keeps the scan loop monomorphic.
    const data = owned ? concat([this.#held, chunk]) : chunk.constructor === Uint8Array ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    this.#begin(data);
    const n = data.length;
    let i = this.#pos - this.#base;
    this.#pos = this.#base + n;
    while (i < n) {
      if (this.#swallow) {
        const nl = data.indexOf(NL, i);
        if (nl === -1) {
          this.#cur = this.#pos;
          break;
        }
        this.#cur = this.#base + nl;
        this.#swallow = false;
        this.#state = 0;
        this.#xstate = 0;
        i = nl;
      } else if (this.#dirStart >= 0) {
        const nl = data.indexOf(NL, i);
        if (nl !== -1) i = this.#finishDirective(nl);
        else {
          if (this.#pos - this.#dirStart > MAX_DIRECTIVE_BYTES) this.#dropDirective();
          break;
        }
      } else {
        i = this.#scan(data, this.#base, i, this.#directives);
      }
    }
    const limit = this.#dirStart >= 0 ? this.#dirStart : this.#swallow ? this.#pos : this.#pos - this.#holdBack();
    this.#flushTo(limit);
    return this.#finish(owned);
  }

  /** Flushes everything held back; the stream is over. */
  end(): Uint8Array {
    if (this.#ended) return EMPTY;
    this.#ended = true;
    this.#begin(this.#held);
    if (this.#swallow) this.#cur = this.#pos;
    if (this.#dirStart >= 0) this.#finishDirective(this.#held.length);
    this.#flushTo(this.#pos);
    return this.#finish(true);
  }

  /** Masks one whole text on its own (for log lines); the stream state is untouched. */
  redact(text: string): string {
    if (this.#patterns.size === 0) return text;
    const bytes = enc.encode(text);
    // (end, length) of every match in either automaton, then merged in order of end.
    const found: [number, number][] = [];
    for (const a of this.#extra === undefined ? [this.#ac] : [this.#ac, this.#extra]) {
      const { delta, cls, width, maskLen } = a;
      let s = 0;
      for (let i = 0; i < bytes.length; i++) {
        const t = delta[s + cls[bytes[i]]];
        if (t >= 0) {
          s = t;
          continue;
        }
        s = ~t;
        const len = maskLen[s / width];
        if (len !== 0) found.push([i + 1, len]);
      }
    }
    if (this.#extra !== undefined) found.sort((x, y) => x[0] - y[0]);
    const ranges: number[] = [];
    for (const [end, len] of found) addRange(ranges, end - len, end);
    if (ranges.length === 0) return text;
    const parts: Uint8Array[] = [];
    let cur = 0;
    for (let r = 0; r < ranges.length; r += 2) {
      parts.push(bytes.subarray(cur, ranges[r]), MASK_BYTES);
      cur = ranges[r + 1];
    }
    parts.push(bytes.subarray(cur));
    return dec.decode(concat(parts));
  }

  #addValue(value: string, name: string): boolean {
    if (this.#values.has(value)) return false;
    const bytes = enc.encode(value).length;
    if (bytes === 0) {
      this.#warn(`Not masking ${name}: its value is empty`);
      return false;
    }
    if (bytes < this.minLength) {
      this.#warn(`Not masking ${name}: its value is ${bytes} bytes long, shorter than the minimum of ${this.minLength}`);
      return false;
    }
    this.#values.add(value);
    const forms = maskForms(value).filter((f) => enc.encode(f).length >= this.minLength);
    let size = 0;
    for (const f of forms) size += enc.encode(f).length;
    // The dense table costs a few hundred bytes per pattern byte; past the
    // budget a value is masked as written (and line by line) only.
    if (this.#patternBytes + size > MAX_PATTERN_BYTES) {
      this.#warn(`Masking ${name} without its encoded forms: the masked values total more than ${MAX_PATTERN_BYTES / 1024} KiB`);
      forms.length = 0;
      forms.push(value, ...value.split(/\r?\n|\r/).filter((l) => enc.encode(l).length >= this.minLength));
    }
    for (const f of forms) {
      if (this.#patterns.has(f)) continue;
      this.#patterns.add(f);
      const n = enc.encode(f).length;
      this.#patternBytes += n;
      if (this.#built) { this.#addedPatterns.push(f); this.#addedBytes += n; } else { this.#basePatterns.push(f); this.#baseBytes += n; }
    }
    return true;
  }

  #build(patterns: string[], withMarker: boolean): Automaton {
    return buildAutomaton(patterns.map((p) => enc.encode(p)), withMarker ? DIRECTIVE_BYTES : undefined);
  }

  // After an addition: build the small automaton of added patterns only, or,
  // once they outweigh the rest, fold everything into one again. Matching
  // restarts from the root in both (the caller rescans what is held).
  #compileAdded(): void {
    if (this.#addedBytes > this.#baseBytes) {
      this.#basePatterns.push(...this.#addedPatterns);
      this.#baseBytes += this.#addedBytes;
      this.#addedPatterns = [];
      this.#addedBytes = 0;
      this.#ac = this.#build(this.#basePatterns, this.#directives);
      this.#extra = undefined;
    } else {
      this.#extra = this.#build(this.#addedPatterns, false);
    }
    this.#state = 0;
    this.#xstate = 0;
  }

  // How many trailing bytes could still begin a match in either automaton.
  #holdBack(): number {
    const base = this.#ac.hold[this.#state / this.#ac.width];
    const x = this.#extra;
    if (x === undefined) return base;
    const extra = x.hold[this.#xstate / x.width];
    return extra > base ? extra : base;
  }

  #begin(data: Uint8Array): void {
    this.#data = data;
    this.#base = this.#heldStart;
    this.#cur = this.#heldStart;
    this.#out = [];
  }

  // Keeps what was not emitted (copied when it is the caller's buffer, which
  // the caller may reuse) and returns the output of this write.
  #finish(owned: boolean): Uint8Array {
    if (this.#cur > this.#base) this.#prevByte = this.#data[this.#cur - 1 - this.#base];
    const rest = this.#data.subarray(this.#cur - this.#base);
    this.#held = rest.length === 0 ? EMPTY : owned ? rest : rest.slice();
    this.#heldStart = this.#cur;
    const out = this.#out;
    this.#data = EMPTY;
    this.#out = [];
    if (out.length === 0) return EMPTY;
    const bytes = concat(out);
    // Never hand out the shared constants: a caller may write into its output.
    return bytes === MASK_BYTES || bytes === DIRECTIVE_BYTES ? bytes.slice() : bytes;
  }

  // Runs the automaton over data[i..] and records matches. Returns where it
  // stopped: the end, or just past an `::add-mask::` marker at a line start.
  //
  // Each byte costs one table load that depends on the previous one, so on a
  // large table the loop waits on the cache. Long stretches are therefore cut
  // in two lanes run interleaved: the second lane starts `maxDepth` bytes
  // before its half from the root, which is enough to reach the true state
  // (a state stands for at most maxDepth trailing bytes). Matches are rare;
  // they are collected per lane and applied in stream order afterwards.
  #scan(data: Uint8Array, base: number, i: number, directives: boolean): number {
    const { delta, cls, maxDepth } = this.#ac;
    const n = data.length;
    let s = this.#state;
    const mid = i + ((n - i) >> 1);
    if (mid - i < maxDepth + LANE_MIN) {
      const ev: number[] = [];
      s = runLane(delta, cls, data, i, n, s, ev);
      return this.#apply(data, ev, base, directives, s, n, i);
    }
    let v = 0;
    for (let j = mid - maxDepth; j < mid; j++) {
      const t = delta[v + cls[data[j]]];
      v = t < 0 ? ~t : t;
    }
    const ev0: number[] = [];
    const ev1: number[] = [];
    let a = i;
    let b = mid;
    for (; a < mid; a++, b++) {
      const t = delta[s + cls[data[a]]];
      const u = delta[v + cls[data[b]]];
      if ((t | u) >= 0) {
        s = t;
        v = u;
        continue;
      }
      if (t < 0) {
        s = ~t;
        ev0.push(a, s);
      } else s = t;
      if (u < 0) {
        v = ~u;
        ev1.push(b, v);
      } else v = u;
    }
    v = runLane(delta, cls, data, b, n, v, ev1);
    for (const x of ev1) ev0.push(x);
    return this.#apply(data, ev0, base, directives, v, n, i);
  }

  // Applies match events (pairs of byte index and state) in order, with the
  // added patterns' automaton run over the same stretch. Stops at the first
  // `::add-mask::` marker at a line start when directives are on.
  #apply(data: Uint8Array, ev: number[], base: number, directives: boolean, endState: number, n: number, from: number): number {
    const { width, maskLen, directive } = this.#ac;
    let stop = n;
    let stopState = endState;
    let count = ev.length;
    if (directives) {
      for (let k = 0; k < ev.length; k += 2) {
        const i = ev[k];
        const s = ev[k + 1];
        if (directive[s / width] === 0) continue;
        // Only a marker at the start of a line counts.
        const start = i + 1 - DIRECTIVE_BYTES.length;
        if ((start > 0 ? data[start - 1] : this.#prevByte) === NL) {
          this.#dirStart = base + start;
          stop = i + 1;
          stopState = s;
          count = k + 2;
          break;
        }
      }
    }
    const x = this.#extra;
    if (x === undefined) {
      for (let k = 0; k < count; k += 2) {
        const len = maskLen[ev[k + 1] / width];
        if (len !== 0) addRange(this.#ranges, base + ev[k] + 1 - len, base + ev[k] + 1);
      }
    } else {
      const xev: number[] = [];
      this.#xstate = runLane(x.delta, x.cls, data, from, stop, this.#xstate, xev);
      // Both lists are in stream order: merged by end, ranges only grow at the tail.
      let k = 0;
      let m = 0;
      while (k < count || m < xev.length) {
        let i: number;
        let len: number;
        if (m >= xev.length || (k < count && ev[k] <= xev[m])) {
          i = ev[k];
          len = maskLen[ev[k + 1] / width];
          k += 2;
        } else {
          i = xev[m];
          len = x.maskLen[xev[m + 1] / x.width];
          m += 2;
        }
        if (len !== 0) addRange(this.#ranges, base + i + 1 - len, base + i + 1);
      }
    }
    this.#state = stopState;
    return stop;
  }

  // Drops recorded matches from the add-mask line on: the whole line is
  // replaced anyway. (A secret that itself contains "\n::add-mask::" is the
  // one thing this gives up on.)
  #cutRangesAt(offset: number): void {
    const ranges = this.#ranges;
    while (ranges.length > 0 && ranges[ranges.length - 2] >= offset) ranges.length -= 2;
    if (ranges.length > 0 && ranges[ranges.length - 1] > offset) ranges[ranges.length - 1] = offset;
  }

  // The add-mask line ends at data[nl] (a newline, or the end of the stream):
  // emit everything before it, then the line with its value masked, then
  // match afresh with the value added.
  #finishDirective(nl: number): number {
    const data = this.#data;
    const start = this.#dirStart - this.#base;
    this.#cutRangesAt(this.#dirStart);
    this.#flushTo(this.#dirStart);
    let end = nl;
    if (end > start && data[end - 1] === 0x0d) end--;
    const value = dec.decode(data.subarray(start + DIRECTIVE_BYTES.length, end)).trim();
    this.#out.push(DIRECTIVE_BYTES);
    if (value !== '') this.#out.push(MASK_BYTES);
    const after = Math.min(nl + 1, data.length);
    this.#out.push(data.subarray(end, after));
    this.#cur = this.#base + after;
    this.#lastMaskEnd = -1;
    this.#dirStart = -1;
    if (value !== '' && this.#addValue(value, 'a value from an ::add-mask:: line')) {
      this.#compileAdded();
      this.#onAdd(value);
    }
    this.#state = 0;
    this.#xstate = 0;
    return nl + 1;
  }

  // An `::add-mask::` line too long to hold: mask it whole, add nothing, and
  // drop the rest of it as it arrives.
  #dropDirective(): void {
    this.#warn(`Dropping an ::add-mask:: line longer than ${MAX_DIRECTIVE_BYTES} bytes`);
    this.#cutRangesAt(this.#dirStart);
    this.#flushTo(this.#dirStart);
    this.#out.push(DIRECTIVE_BYTES, MASK_BYTES);
    this.#cur = this.#pos;
    this.#lastMaskEnd = -1;
    this.#dirStart = -1;
    this.#swallow = true;
  }

  // Emits the write's bytes from #cur up to `limit`, masking recorded ranges.
  // A mask reaching past `limit` is held back whole.
  #flushTo(limit: number): void {
    const { base, data } = { base: this.#base, data: this.#data };
    const ranges = this.#ranges;
    const out = this.#out;
    let cur = this.#cur;
    let r = 0;
    for (; r < ranges.length; r += 2) {
      const from = ranges[r];
      const to = ranges[r + 1];
      if (from >= limit) break;
      if (to > limit) {
        limit = from;
        break;
      }
      if (from > cur) out.push(data.subarray(cur - base, from - base));
      if (from > cur || from !== this.#lastMaskEnd) out.push(MASK_BYTES);
      this.#lastMaskEnd = to;
      cur = to;
    }
    if (r > 0) ranges.splice(0, r);
    if (limit > cur) {
      out.push(data.subarray(cur - base, limit - base));
      cur = limit;
    }
    this.#cur = cur;
  }
}

// Adds [from, to) to sorted merged pairs; matches arrive in order of their
// end, so only the tail can overlap or touch the new range.
function addRange(ranges: number[], from: number, to: number): void {
  while (ranges.length > 0 && from <= ranges[ranges.length - 1]) {
    const lastFrom = ranges[ranges.length - 2];
    const lastTo = ranges[ranges.length - 1];
    ranges.length -= 2;
    if (lastFrom < from) from = lastFrom;
    if (lastTo > to) to = lastTo;
  }
  ranges.push(from, to);
}
