// The sign-in throttle's rules on a clock the test moves (the server-side
// behaviour, 429 with Retry-After per address, is in console-security.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FIRST_WAIT_MS, FORGET_AFTER_MS, FREE_FAILURES, MAX_WAIT_MS, SignInThrottle, clientKey } from '../lib/console/throttle.ts';

function clock() {
  let t = 1_000_000;
  return { now: () => t, move: (ms: number) => { t += ms; } };
}

test('free failures, then a doubling wait capped at the ceiling', () => {
  const c = clock();
  const th = new SignInThrottle(c.now);
  for (let i = 0; i < FREE_FAILURES; i++) assert.is(th.failed('a'), 0);
  const waits: number[] = [];
  for (let i = 0; i < 12; i++) {
    waits.push(th.failed('a'));
    c.move(waits.at(-1)!);
    assert.is(th.waitMs('a'), 0);
  }
  assert.equal(waits.slice(0, 7), [1, 2, 4, 8, 16, 32, 60].map((s) => s * 1000));
  assert.ok(waits.every((w) => w <= MAX_WAIT_MS));
  assert.is(waits.at(-1), MAX_WAIT_MS);
});

test('a wait only runs down; a success or a quiet spell forgets the address; other addresses are apart', () => {
  const c = clock();
  const th = new SignInThrottle(c.now);
  for (let i = 0; i <= FREE_FAILURES; i++) th.failed('a');
  assert.is(th.waitMs('a'), FIRST_WAIT_MS);
  assert.is(th.waitMs('b'), 0);
  c.move(400);
  assert.is(th.waitMs('a'), FIRST_WAIT_MS - 400);
  c.move(600);
  th.succeeded('a');
  assert.is(th.failed('a'), 0, 'afresh after the right token');
  for (let i = 0; i < FREE_FAILURES; i++) th.failed('a');
  assert.ok(th.waitMs('a') > 0);
  c.move(FORGET_AFTER_MS);
  assert.is(th.waitMs('a'), 0);
  assert.is(th.failed('a'), 0, 'forgotten after a quiet spell');
});

test('the client key: IPv4 as is (also when mapped into IPv6), IPv6 by its /64', () => {
  assert.is(clientKey('192.0.2.7'), '192.0.2.7');
  assert.is(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.is(clientKey('2001:db8:0:1:aaaa::1'), '2001:db8:0:1::/64');
  assert.is(clientKey('2001:0db8:0000:0001:bbbb:cccc:dddd:eeee'), '2001:db8:0:1::/64');
  assert.is(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.is(clientKey('::1'), '0:0:0:0::/64');
  assert.is(clientKey(undefined), 'unknown');
});

test.run();
