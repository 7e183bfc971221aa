import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DurationError, formatDuration, parseDuration } from '../lib/duration.ts';

const ok: [string, number][] = [
  ['300ms', 300],
  ['90s', 90_000],
  ['1000s', 1_000_000],
  ['120m', 7_200_000],
  ['1h30m', 5_400_000],
  ['1.5h', 5_400_000],
  ['7m', 420_000],
  ['70m', 4_200_000],
  ['0', 0],
  ['-0', 0],
  ['0s', 0],
  ['-2m', -120_000],
  ['+5s', 5_000],
  ['.5s', 500],
  ['5.s', 5_000],
  ['1h2m3s4ms', 3_723_004],
  ['1500us', 1.5],
  ['1500µs', 1.5],
  ['1500μs', 1.5],
  ['2000000ns', 2],
  ['1m1m', 120_000],
];

for (const [text, ms] of ok) {
  test(`parses ${text}`, () => {
    assert.is(parseDuration(text), ms);
  });
}

function problem(text: string): DurationError {
  try {
    parseDuration(text);
  } catch (e) {
    assert.instance(e, DurationError);
    return e as DurationError;
  }
  throw new Error(`${text} should not parse`);
}

test('a number without a unit is refused with a suggested unit', () => {
  const e = problem('70');
  assert.is(e.problem, 'has no unit');
  assert.is(e.suggestion, '70m');
  assert.is(e.message, 'Cannot parse duration: "70" has no unit (try 70m)');
  assert.is(e.code, 'DURATION_INVALID');
  assert.is(e.exitCode, 2);
});

test('unknown units, days included, are refused with a hint', () => {
  assert.match(problem('7d').problem, /unknown unit "d"/);
  assert.is(problem('7d').suggestion, '168h');
  assert.match(problem('5 min').problem, /unknown unit " min"/);
  assert.match(problem('1H').problem, /unknown unit "H"/);
});

test('malformed texts are refused', () => {
  for (const t of ['', ' ', 'h', 'ms', '.s', '1h30', '-', '1.2.3s', ' 5s', '5s ', '1e3s', 'abc']) {
    const e = problem(t);
    assert.ok(e.message.startsWith('Cannot parse duration: '), t);
  }
});

test('values beyond Go int64 nanoseconds are refused', () => {
  assert.match(problem('2562048h').problem, /out of range/);
  assert.is(parseDuration('2562047h'), 2562047 * 3_600_000);
});

test('formatDuration writes Go Duration.String forms', () => {
  assert.is(formatDuration(0), '0s');
  assert.is(formatDuration(300), '300ms');
  assert.is(formatDuration(420_000), '7m0s');
  assert.is(formatDuration(5_400_000), '1h30m0s');
  assert.is(formatDuration(1_500), '1.5s');
  assert.is(formatDuration(1.5), '1.5ms');
  assert.is(formatDuration(0.0015), '1.5µs');
  assert.is(formatDuration(0.000001), '1ns');
  assert.is(formatDuration(-120_000), '-2m0s');
  assert.is(formatDuration(3_723_004), '1h2m3.004s');
});

test('formatDuration output parses back to the same value', () => {
  let seed = 7;
  for (let i = 0; i < 500; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const ms = Math.round((seed / 2 ** 31) * 10 ** (i % 10)) / 1000;
    assert.is(parseDuration(formatDuration(ms)), ms, `round trip of ${ms}`);
  }
});

test.run();
