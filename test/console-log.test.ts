// The console's log pieces that need no browser: ANSI colour parsing and the
// line store the run page's view reads from.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PLAIN, applySgr, endState, segments, sgrClass } from '../lib/console/app/ansi.ts';
import { LogLines } from '../lib/console/app/logstore.ts';

test('SGR colours become classes; other escapes are dropped; text is kept', () => {
  const segs = segments('a \x1b[1;32mgreen\x1b[0m b\x1b[K', PLAIN);
  assert.equal(segs.map((s) => [s.text, sgrClass(s.sgr)]), [['a ', ''], ['green', 'f2 ab'], [' b', '']]);
  assert.equal(segments('\x1b]0;title\x07x', PLAIN).map((s) => s.text), ['x']);
  assert.equal(segments('\x1b[91;44mx', PLAIN).map((s) => sgrClass(s.sgr)), ['f9 b4']);
});

test('256-colour and true-colour values become rgb() styles; 39/49 reset them', () => {
  assert.is(applySgr(PLAIN, '38;5;196').fg, 'rgb(255,0,0)');
  assert.is(applySgr(PLAIN, '38;5;3').fg, 3);
  assert.is(applySgr(PLAIN, '48;2;1;2;3').bg, 'rgb(1,2,3)');
  assert.is(applySgr(applySgr(PLAIN, '31;41'), '39;49').fg, null);
});

test('a colour set on one line carries to the next, as in a terminal', () => {
  const s = endState('start \x1b[33myellow', PLAIN);
  assert.is(s.fg, 3);
  assert.is(sgrClass(segments('still yellow', s)[0]!.sgr), 'f3');
  assert.is(endState('\x1b[0m', s).fg, null);
});

test('a carriage return shows what a terminal would: the text after it', () => {
  assert.equal(segments('10%\r50%\r100%', PLAIN).map((s) => s.text), ['100%']);
  assert.equal(segments('windows line\r', PLAIN).map((s) => s.text), ['windows line']);
});

test('the line store splits chunks at newlines, heads each phase, keeps each line\'s start colour', () => {
  const l = new LogLines();
  l.append(0, 'plan', 'one\ntw');
  l.append(0, 'plan', 'o\n\x1b[31mred\nstill');
  assert.is(l.length, 5, 'heading, one, two, red, partial "still"');
  assert.equal(l.marks.get(0), { index: 0, name: 'plan' });
  assert.equal([l.line(1), l.line(2), l.line(3), l.line(4)], ['one', 'two', '\x1b[31mred', 'still']);
  assert.is(l.start(4).fg, 1, 'the partial line starts red');
  l.append(1, 'apply', 'x\n');
  assert.is(l.lines[4], 'still', 'a new phase completes the partial line');
  assert.equal(l.marks.get(5), { index: 1, name: 'apply' });
  assert.is(l.line(6), 'x');
  assert.is(l.start(6).fg, null, 'a phase starts uncoloured');
});

test('100,000 lines go in at once without trouble', () => {
  const l = new LogLines();
  const chunk = Array.from({ length: 1000 }, (_, i) => `line ${i} \x1b[32mok\x1b[0m`).join('\n') + '\n';
  for (let i = 0; i < 100; i++) l.append(0, 'p', chunk);
  assert.is(l.length, 100_001);
  assert.is(l.line(100_000), 'line 999 \x1b[32mok\x1b[0m');
});

test.run();
