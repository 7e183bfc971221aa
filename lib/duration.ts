// Durations in Go's time.ParseDuration syntax, because the product document
// and users' existing launcher configurations already write them that way:
// `300ms`, `90s`, `1000s`, `120m`, `1h30m`, `1.5h`, `-2m`, and a bare `0`.
// Values are carried as milliseconds (a float: `1ns` is 0.000001).
import { LauncherError } from './errors.ts';

const NS_PER_UNIT: Record<string, number> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3, // U+00B5 micro sign
  'μs': 1e3, // U+03BC Greek small letter mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

// Go refuses durations that do not fit an int64 count of nanoseconds.
const MAX_NS = 9223372036854775807;

/** A text that is not a Go duration. `problem` reads after the quoted value. */
export class DurationError extends LauncherError {
  readonly text: string;
  readonly problem: string;
  readonly suggestion: string;
  constructor(text: string, problem: string, suggestion: string) {
    super('DURATION_INVALID', `Cannot parse duration: ${JSON.stringify(text)} ${problem} (try ${suggestion})`, { exitCode: 2 });
    this.name = 'DurationError';
    this.text = text;
    this.problem = problem;
    this.suggestion = suggestion;
  }
}

/** Parses a Go duration and returns milliseconds. Throws DurationError. */
export function parseDuration(text: string): number {
  const fail = (problem: string, suggestion = '1h30m'): never => {
    throw new DurationError(text, problem, suggestion);
  };
  let s = text;
  if (s.trim() === '') fail('is empty');
  if (s !== s.trim()) fail('has surrounding spaces', s.trim());
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') fail('is not a duration');
  if (/^\d+(\.\d*)?$|^\.\d+$/.test(s)) fail('has no unit', `${text}m`);

  let totalNs = 0;
  const part = /^(\d*)(?:\.(\d*))?([^\d.]*)/;
  while (s !== '') {
    const m = part.exec(s);
    if (m === null) return fail('is not a duration');
    const [whole, int, frac = '', unit] = m;
    if (int === '' && frac === '') fail('is not a duration: a number is missing before a unit');
    if (unit === '') fail('has no unit after a number', `${text}s`);
    const scale = NS_PER_UNIT[unit];
    if (scale === undefined) {
      const hint = unit === 'd' ? `${Number(`${int || 0}.${frac || 0}`) * 24}h` : '1h30m';
      fail(`has an unknown unit "${unit}" (units: ns, us, ms, s, m, h)`, hint);
    }
    totalNs += Number(int || '0') * scale + (frac === '' ? 0 : Number(`0.${frac}`) * scale);
    if (totalNs > MAX_NS) fail('is out of range (at most about 2562047h)', '1h30m');
    s = s.slice(whole.length);
  }
  return (sign * totalNs) / 1e6;
}

/**
 * Formats milliseconds the way Go's Duration.String does: `1h30m0s`, `300ms`,
 * `1.5s`, `0s`. Round-trips through parseDuration to the nanosecond.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`Cannot format duration: ${ms} is not a finite number of milliseconds`);
  let ns = BigInt(Math.round(ms * 1e6));
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  if (neg) ns = -ns;
  const sign = neg ? '-' : '';
  const frac = (n: bigint, unit: bigint): string => {
    const w = n / unit;
    const r = n % unit;
    if (r === 0n) return `${w}`;
    const digits = unit.toString().length - 1;
    return `${w}.${r.toString().padStart(digits, '0').replace(/0+$/, '')}`;
  };
  if (ns < 1000n) return `${sign}${ns}ns`;
  if (ns < 1_000_000n) return `${sign}${frac(ns, 1000n)}µs`;
  if (ns < 1_000_000_000n) return `${sign}${frac(ns, 1_000_000n)}ms`;
  const h = ns / 3_600_000_000_000n;
  const m = (ns / 60_000_000_000n) % 60n;
  const sec = frac(ns % 60_000_000_000n, 1_000_000_000n);
  if (h > 0n) return `${sign}${h}h${m}m${sec}s`;
  if (m > 0n) return `${sign}${m}m${sec}s`;
  return `${sign}${sec}s`;
}
