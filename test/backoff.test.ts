import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Backoff, backoffCeiling, backoffDelay, DEFAULT_CAP_MS, sleep } from '../lib/launcher/backoff.ts';

test('ceiling doubles from the base and stops at the cap', () => {
  assert.equal([0, 1, 2, 3].map((a) => backoffCeiling(a, 100, 1000)), [100, 200, 400, 800]);
  assert.is(backoffCeiling(4, 100, 1000), 1000);
  assert.is(backoffCeiling(10_000), DEFAULT_CAP_MS);
  assert.is(backoffCeiling(-1, 100, 1000), 100);
});

test('full jitter: the delay spans zero to the ceiling', () => {
  assert.is(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0 }), 0);
  assert.is(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0.5 }), 400);
  assert.is(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0.999999 }), 799);
  assert.is(backoffDelay(50, { baseMs: 100, capMs: 1000, random: () => 0.5 }), 500);
});

test('a random source out of range is clamped', () => {
  assert.is(backoffDelay(0, { baseMs: 100, random: () => 7 }), 100);
  assert.is(backoffDelay(0, { baseMs: 100, random: () => -1 }), 0);
});

test('Backoff counts failures and reset starts over', () => {
  const b = new Backoff({ baseMs: 10, capMs: 80, random: () => 1 });
  assert.equal([b.next(), b.next(), b.next(), b.next(), b.next()], [10, 20, 40, 80, 80]);
  assert.is(b.attempt, 5);
  b.reset();
  assert.is(b.next(), 10);
});

test('no delay ever exceeds the cap (about 30 s), even after a day of failures', () => {
  const b = new Backoff();
  let max = 0;
  for (let i = 0; i < 5000; i++) max = Math.max(max, b.next());
  assert.ok(max <= 30_000, `max ${max}`);
});

test('sleep resolves early when aborted', async () => {
  const ac = new AbortController();
  const p = sleep(60_000, ac.signal);
  ac.abort();
  await p; // would hang the test for a minute otherwise
  await sleep(60_000, ac.signal); // already aborted
});

test.run();
