import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { MASK, MAX_DIRECTIVE_BYTES, Masker, base64Forms, createMaskStream, maskForms, type MaskerOptions } from '../lib/mask.ts';
import { prng } from './helpers/random.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

// Seeded, so every random split is reproducible.
const rng = prng;

function runSplits(opts: MaskerOptions, input: Uint8Array, cuts: number[]): string {
  const m = new Masker(opts);
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...cuts, input.length]) {
    // A fresh copy per write, then scribbled over: the masker must not keep
    // references to a caller's buffer.
    const chunk = input.slice(prev, c);
    parts.push(m.write(chunk).slice());
    chunk.fill(0x3f);
    prev = c;
  }
  parts.push(m.end());
  return parts.map((p) => dec.decode(p)).join('');
}

/** Asserts the same output for one write, one byte per write and 300 random splits. */
function check(opts: MaskerOptions, input: string, expected: string, seed = 1): void {
  const bytes = enc.encode(input);
  assert.is(runSplits(opts, bytes, []), expected, 'one write');
  assert.is(runSplits(opts, bytes, Array.from({ length: Math.max(0, bytes.length - 1) }, (_, i) => i + 1)), expected, 'one byte per write');
  const rand = rng(seed);
  for (let round = 0; round < 300; round++) {
    const cuts = new Set<number>();
    const count = Math.floor(rand() * 6) + 1;
    for (let k = 0; k < count; k++) cuts.add(Math.floor(rand() * (bytes.length + 1)));
    const sorted = [...cuts].sort((a, b) => a - b);
    assert.is(runSplits(opts, bytes, sorted), expected, `random splits ${sorted.join(',')}`);
  }
}

const secrets = (...values: string[]) => values.map((value, i) => ({ name: `SECRET_${i}`, value }));

test('aab written as aa + ab still masks secret ab', () => {
  const opts = { secrets: secrets('ab'), minLength: 2 };
  assert.is(runSplits(opts, enc.encode('aab'), [2]), `a${MASK}`);
  check(opts, 'aab', `a${MASK}`);
  check({ secrets: secrets('aaab') }, 'xaaaab', `xa${MASK}`);
  check({ secrets: secrets('abcabd') }, 'abcabcabd!', `abc${MASK}!`);
});

test('masks each occurrence and leaves other text alone', () => {
  check({ secrets: secrets('hunter22') }, 'pw=hunter22; again hunter22\nhunter2 is not it\n', `pw=${MASK}; again ${MASK}\nhunter2 is not it\n`);
  check({ secrets: secrets('hunter22') }, 'no secrets here\n', 'no secrets here\n');
  check({ secrets: [] }, 'nothing to mask\n', 'nothing to mask\n');
});

test('secrets at the start and end of the stream and of writes', () => {
  const opts = { secrets: secrets('topsecret') };
  check(opts, 'topsecret', MASK);
  check(opts, 'topsecrettopsecret', MASK);
  check(opts, 'topsecre', 'topsecre');
  check(opts, 'xtopsecretx', `x${MASK}x`);
  assert.is(runSplits(opts, enc.encode('a topsecret b'), [2, 11]), `a ${MASK} b`);
  assert.is(runSplits(opts, enc.encode('a topsecret b'), [5]), `a ${MASK} b`);
});

test('only bytes that could begin a secret are held back: a finished line comes out whole', () => {
  const m = new Masker({ secrets: secrets('topsecret', 'zebra-crossing') });
  assert.is(dec.decode(m.write(enc.encode('Waiting for the plan...\n'))), 'Waiting for the plan...\n');
  assert.is(dec.decode(m.write(enc.encode('id=top'))), 'id=');
  assert.is(dec.decode(m.write(enc.encode('cat\n'))), 'topcat\n');
  // Its last "t" could begin another topsecret, and touching masks merge.
  assert.is(dec.decode(m.write(enc.encode('topsecret'))), '');
  assert.is(dec.decode(m.write(enc.encode('.'))), `${MASK}.`);
  assert.is(dec.decode(m.write(enc.encode('zebra'))), '');
  assert.is(dec.decode(m.end()), 'zebra');
});

test('overlapping, nested and touching secrets merge into one mask', () => {
  const opts = { secrets: secrets('abcdef', 'defghi', 'cdefgh', 'zzzz', 'yyyyy') };
  check(opts, '1abcdefghi2', `1${MASK}2`);
  check(opts, '1zzzzyyyyy2', `1${MASK}2`);
  check(opts, '1zzzz-yyyyy2', `1${MASK}-${MASK}2`);
  check({ secrets: secrets('long-secret-value', 'secret') }, 'a long-secret-value b secret c', `a ${MASK} b ${MASK} c`);
  check({ secrets: secrets('secret', 'long-secret-value') }, 'a long-secret-valu b', `a long-${MASK}-valu b`);
});

test('the output is the same however writes are split: random texts against a naive search', () => {
  const rand = rng(42);
  const alphabet = 'ab-\n';
  const pick = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
  for (let round = 0; round < 60; round++) {
    const values = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(4 + Math.floor(rand() * 4)).replace(/\n/g, 'a'));
    const text = pick(40 + Math.floor(rand() * 80));
    // Naive reference: every occurrence of every pattern, merged when they overlap or touch.
    const patterns = [...new Set(values.flatMap((v) => maskForms(v)))].filter((p) => enc.encode(p).length >= 4);
    const intervals: [number, number][] = [];
    for (const p of patterns) for (let i = text.indexOf(p); i !== -1; i = text.indexOf(p, i + 1)) intervals.push([i, i + p.length]);
    intervals.sort((x, y) => x[0] - y[0]);
    let expected = '';
    let cur = 0;
    let end = -1;
    for (const [from, to] of intervals) {
      if (from <= end) {
        end = Math.max(end, to);
        continue;
      }
      if (end >= 0) cur = end;
      expected += text.slice(cur, from) + MASK;
      end = to;
    }
    expected += text.slice(end >= 0 ? end : 0);
    check({ secrets: secrets(...values), directives: false }, text, expected, round);
  }
});

test('long writes (scanned in two lanes) give the same output as byte-per-byte writes', () => {
  const rand = rng(7);
  const values = ['lane-secret-one', 'second-lane-secret', 'third!secret?value'];
  const words = ['alpha', 'beta', 'lane-secret-on', 'second-lane', 'x', '::add-mask::late-added-value', 'late-added-value', ...values];
  for (let round = 0; round < 2; round++) {
    let text = '';
    while (text.length < 20_000) {
      const w = words[Math.floor(rand() * words.length)];
      text += w.startsWith('::') ? `\n${w}\n` : `${w}${rand() < 0.1 ? '\n' : ' '}`;
    }
    const opts = { secrets: secrets(...values) };
    const bytes = enc.encode(text);
    const whole = runSplits(opts, bytes, []);
    assert.is(runSplits(opts, bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)), whole, 'byte per byte');
    for (let k = 0; k < 20; k++) {
      const cut = Math.floor(rand() * bytes.length);
      assert.is(runSplits(opts, bytes, [cut]), whole, `split at ${cut}`);
    }
    for (const v of values) assert.not.ok(whole.includes(v), `${v} leaked`);
    const afterAdd = whole.slice(whole.indexOf('::add-mask::'));
    assert.not.ok(afterAdd.includes('late-added-value'), 'a value added by the run leaked after its line');
    assert.ok(whole.includes('lane-secret-on '), 'a mere prefix is not masked');
  }
});

test('::add-mask:: adds a value for the rest of the run and hides it in its own line', () => {
  const opts = { secrets: secrets('preexisting') };
  check(opts, 'before s3cr3t-value\n::add-mask::s3cr3t-value\nafter s3cr3t-value\n', `before s3cr3t-value\n::add-mask::${MASK}\nafter ${MASK}\n`);
  check(opts, '::add-mask::s3cr3t-value\ns3cr3t-value', `::add-mask::${MASK}\n${MASK}`);
  check(opts, 'x\r\n::add-mask::  s3cr3t-value \r\ns3cr3t-value\r\n', `x\r\n::add-mask::${MASK}\r\n${MASK}\r\n`);
  // The marker counts only at the start of a line.
  check(opts, 'echo ::add-mask::s3cr3t-value\ns3cr3t-value\n', 'echo ::add-mask::s3cr3t-value\ns3cr3t-value\n');
  // A line that never ends still hides its value.
  check(opts, 'a\n::add-mask::s3cr3t-value', `a\n::add-mask::${MASK}`);
  // Older secrets stay masked around it, and an empty add-mask adds nothing.
  check(opts, 'preexisting\n::add-mask::\npreexisting\n', `${MASK}\n::add-mask::\n${MASK}\n`);
  // Values added by the run go through the same encodings.
  const b64 = Buffer.from('s3cr3t-value').toString('base64').replace(/=+$/, '');
  check(opts, `::add-mask::s3cr3t-value\n${b64}\n`, `::add-mask::${MASK}\n${MASK}\n`);
});

test('onAdd reports each value an ::add-mask:: line adds, so another stream can mask it too', () => {
  const stderr = new Masker({ secrets: [] });
  const added: string[] = [];
  const stdout = new Masker({ secrets: [], onAdd: (v) => { added.push(v); stderr.add(v, 'a value added on stdout'); } });
  stdout.write(enc.encode('::add-mask::cross-stream-value\n::add-mask::abc\n::add-mask::cross-stream-value\n'));
  stdout.end();
  assert.equal(added, ['cross-stream-value']);
  assert.is(dec.decode(stderr.write(enc.encode('err cross-stream-value\n'))), `err ${MASK}\n`);
});

test('a too-short ::add-mask:: value is hidden in its line, not masked after, and warned about', () => {
  const warnings: string[] = [];
  const m = new Masker({ secrets: [], onWarning: (w) => warnings.push(w) });
  const out = dec.decode(m.write(enc.encode('::add-mask::abc\nabc\n'))) + dec.decode(m.end());
  assert.is(out, `::add-mask::${MASK}\nabc\n`);
  assert.is(warnings.length, 1);
  assert.match(warnings[0], /^Not masking a value from an ::add-mask:: line: its value is 3 bytes long, shorter than the minimum of 4$/);
});

test('an overlong ::add-mask:: line is dropped whole with a warning', () => {
  const warnings: string[] = [];
  const m = new Masker({ secrets: [], onWarning: (w) => warnings.push(w) });
  const long = 'x'.repeat(MAX_DIRECTIVE_BYTES + 10);
  let out = '';
  out += dec.decode(m.write(enc.encode('ok\n::add-mask::')));
  for (let i = 0; i < long.length; i += 1000) out += dec.decode(m.write(enc.encode(long.slice(i, i + 1000))));
  out += dec.decode(m.write(enc.encode('\nnext line\n')));
  out += dec.decode(m.end());
  assert.is(out, `ok\n::add-mask::${MASK}\nnext line\n`);
  assert.is(warnings.length, 1);
  assert.match(warnings[0], /Dropping an ::add-mask:: line longer than 65536 bytes/);
});

test('add() masks a value from then on, including bytes still held back', () => {
  // "two added-va" is held back because it could begin the first secret.
  const m = new Masker({ secrets: secrets('two added-vaXYZ') });
  let out = dec.decode(m.write(enc.encode('one added-value two added-va')));
  assert.is(out, 'one added-value ');
  m.add('added-value', 'ADDED');
  out += dec.decode(m.write(enc.encode('lue three\n'))) + dec.decode(m.end());
  assert.is(out, `one added-value two ${MASK} three\n`);
});

test('base64 forms are masked at all three alignments, padding trimmed', () => {
  const value = 'correct horse battery';
  const opts = { secrets: secrets(value) };
  for (const prefix of ['', 'x', 'xy', 'xyz']) {
    for (const suffix of ['', 'q', 'qr']) {
      const blob = Buffer.from(`${prefix}${value}${suffix}`).toString('base64');
      const out = runSplits(opts, enc.encode(`data: ${blob}\n`), []);
      assert.ok(out.includes(MASK), `masked with prefix "${prefix}" suffix "${suffix}": ${out}`);
      // What is left of the blob on either side is at most a group's worth.
      const kept = out.slice('data: '.length, -1).split(MASK).join('');
      assert.ok(kept.length <= 10, `little of the blob stays: ${out}`);
    }
  }
  const forms = base64Forms(enc.encode('abc'));
  assert.equal(forms, ['YWJj', 'FiY', 'hYm']);
  check(opts, `${Buffer.from(value).toString('base64')}\n`, `${MASK}\n`);
});

test('JSON-escaped and URL-escaped forms are masked', () => {
  const value = 'pa"ss\\wo/rd é&x y';
  const opts = { secrets: secrets(value) };
  const json = JSON.stringify({ password: value });
  check(opts, `${json}\n`, `{"password":"${MASK}"}\n`);
  const ascii = json.replace(/\//g, '\\/').replace(/é/g, '\\u00e9');
  check(opts, `${ascii}\n`, `{"password":"${MASK}"}\n`);
  const url = `https://example.invalid/?p=${encodeURIComponent(value)}&q=1`;
  check(opts, `${url}\n`, `https://example.invalid/?p=${MASK}&q=1\n`);
  const lower = `p=${encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (p) => p.toLowerCase())}`;
  check(opts, lower, `p=${MASK}`);
  const form = `p=${encodeURIComponent(value).replace(/%20/g, '+')}`;
  check(opts, form, `p=${MASK}`);
});

test('multi-line secrets are masked whole and line by line', () => {
  const value = '-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0\nAQEFAASCBKcwggSjAgEAAo\n-----END KEY-----';
  const opts = { secrets: secrets(value) };
  check(opts, `key:\n${value}\ndone\n`, `key:\n${MASK}\ndone\n`);
  check(opts, 'one line: AQEFAASCBKcwggSjAgEAAo only\n', `one line: ${MASK} only\n`);
  check(opts, `${value.replace(/\n/g, '\r\n')}\n`, `${MASK}\r\n${MASK}\r\n${MASK}\r\n${MASK}\n`);
  check(opts, `${JSON.stringify(value)}\n`, `"${MASK}"\n`);
});

test('short and empty values are not masked and a warning names their variable, never the value', () => {
  const warnings: string[] = [];
  const m = new Masker({ secrets: [{ name: 'TINY', value: 'abc' }, { name: 'EMPTY', value: '' }, { name: 'OK', value: 'abcd' }], onWarning: (w) => warnings.push(w) });
  assert.equal(warnings, [
    'Not masking TINY: its value is 3 bytes long, shorter than the minimum of 4',
    'Not masking EMPTY: its value is empty',
  ]);
  assert.is(dec.decode(m.write(enc.encode('abc abcd'))) + dec.decode(m.end()), `abc ${MASK}`);
  const w2: string[] = [];
  new Masker({ secrets: [{ name: 'X', value: 'abcdef' }], minLength: 8, onWarning: (w) => w2.push(w) });
  assert.equal(w2, ['Not masking X: its value is 6 bytes long, shorter than the minimum of 8']);
});

test('past the pattern budget, values are still masked as written and line by line, with a warning', () => {
  const warnings: string[] = [];
  const big = Array.from({ length: 40 }, (_, i) => `line-${i}-`.padEnd(1500, String.fromCharCode(97 + (i % 26)))).join('\n');
  const m = new Masker({ secrets: [{ name: 'BIG', value: big }, { name: 'SMALL', value: 'small-secret' }], onWarning: (w) => warnings.push(w) });
  assert.equal(warnings, ['Masking BIG without its encoded forms: the masked values total more than 256 KiB']);
  const line = big.split('\n')[3];
  const out = dec.decode(m.write(enc.encode(`${big}\n${line}\nsmall-secret ${Buffer.from('small-secret').toString('base64')}\n`))) + dec.decode(m.end());
  assert.is(out, `${MASK}\n${MASK}\n${MASK} ${MASK}\n`);
});

test('multi-byte UTF-8 secrets split inside a character are still caught', () => {
  check({ secrets: secrets('pässwörd✓') }, 'x pässwörd✓ y', `x ${MASK} y`);
});

test('redact masks a whole text without touching the stream', () => {
  const m = new Masker({ secrets: secrets('s3cr3t-token') });
  const held = m.write(enc.encode('start s3cr3t'));
  assert.is(m.redact('token=s3cr3t-token and "s3cr3t-token"'), `token=${MASK} and "${MASK}"`);
  assert.is(m.redact('clean'), 'clean');
  assert.is(dec.decode(held) + dec.decode(m.write(enc.encode('-token end'))) + dec.decode(m.end()), `start ${MASK} end`);
});

test('write after end is refused', () => {
  const m = new Masker({ secrets: [] });
  m.end();
  assert.throws(() => m.write(enc.encode('x')), /after end/);
});

test('createMaskStream masks a secret printed in two writes with a pause between', async () => {
  const stream = createMaskStream({ secrets: secrets('my-api-token-123') });
  async function* source() {
    yield Buffer.from('token: my-api-to');
    await sleep(30);
    yield Buffer.from('ken-123\n::add-mask::later-value\nlater-value\n');
  }
  const got: Buffer[] = [];
  await pipeline(Readable.from(source()), stream, new Writable({ write(c, _e, cb) { got.push(c); cb(); } }));
  assert.is(Buffer.concat(got).toString(), `token: ${MASK}\n::add-mask::${MASK}\nlater-value`.replace('later-value', MASK) + '\n');
  assert.ok(stream.masker.patternCount >= 2);
});

// ---- adding values: a second automaton, not a rebuild of the first ----

/** Writes `input` in the given pieces, calling add(value) before the piece at `addAt`. */
function runWithAdd(secrets: string[], added: string[], input: Uint8Array, cuts: number[], addAt: number): string {
  const m = new Masker({ secrets: secrets.map((value, i) => ({ name: `S${i}`, value })) });
  const parts: Uint8Array[] = [];
  let prev = 0;
  const ends = [...cuts, input.length];
  ends.forEach((c, k) => {
    if (k === addAt) for (const v of added) m.add(v);
    parts.push(m.write(input.slice(prev, c)).slice());
    prev = c;
  });
  if (addAt >= ends.length) for (const v of added) m.add(v);
  parts.push(m.end());
  return parts.map((p) => dec.decode(p)).join('');
}

test('add() builds an automaton of the added patterns only; the first one is kept until the added outweigh it', () => {
  const m = new Masker({ secrets: [{ name: 'A', value: 'first-secret-value-that-is-long' }, { name: 'B', value: 'second-secret-value-long-too' }] });
  const before = m.automatonSizes;
  assert.ok(before.base > 0);
  assert.is(before.added, 0);
  m.add('later-value');
  assert.is(m.automatonSizes.base, before.base, 'the automaton over the first secrets is not rebuilt');
  assert.ok(m.automatonSizes.added > 0);
  // Enough later values to outweigh the first ones: folded into one automaton again.
  for (let i = 0; i < 20; i++) m.add(`another-later-value-${i}-padding`);
  const after = m.automatonSizes;
  assert.ok(after.base > before.base, `folded: ${JSON.stringify(after)}`);
  assert.ok(after.added < after.base, 'what was added since the fold stays smaller than the rest');
  assert.is(dec.decode(m.write(enc.encode('x later-value y first-secret-value-that-is-long z another-later-value-7-padding\n'))) + dec.decode(m.end()),
    `x ${MASK} y ${MASK} z ${MASK}\n`);
});

test('a value added before the output is masked exactly as if it had been given at the start, whatever the splits', () => {
  const secrets = ['base-secret-1234', 'overlapping-abc', 'dGVzdC1zZWNyZXQ='];
  const added = ['abc-added-value', 'secret-1234-more', 'x'.repeat(3) + 'late'];
  const text = 'pre base-secret-1234-more overlapping-abc-added-value mid xxxlate ' +
    `${Buffer.from('abc-added-value').toString('base64')} "abc-added-value" secret-1234-more base-secret-1234\nend`;
  const bytes = enc.encode(text);
  const expected = runSplits({ secrets: [...secrets, ...added].map((value, i) => ({ name: `S${i}`, value })) }, bytes, []);
  assert.not.match(expected, /abc-added-value|secret-1234|xxxlate/);
  const rand = rng(7);
  for (let round = 0; round < 300; round++) {
    const cuts = [...new Set(Array.from({ length: Math.floor(rand() * 6) + 1 }, () => Math.floor(rand() * (bytes.length + 1))))].sort((a, b) => a - b);
    assert.is(runWithAdd(secrets, added, bytes, cuts, 0), expected, `cuts ${cuts.join(',')}`);
  }
});

test('a value added mid-stream masks what is still held back and everything after; redact uses both automata', () => {
  const m = new Masker({ secrets: [{ name: 'T', value: 'token-value-1' }] });
  let out = dec.decode(m.write(enc.encode('a token-val')));
  m.add('val-added-9');
  out += dec.decode(m.write(enc.encode('ue-1 b val-added-9 c token-value-1 d\n'))) + dec.decode(m.end());
  assert.is(out, `a ${MASK} b ${MASK} c ${MASK} d\n`);
  assert.is(m.redact('val-added-9 and token-value-1 and val-added-9token-value-1'), `${MASK} and ${MASK} and ${MASK}`);
});

test('::add-mask:: lines add to the second automaton and still mask across any split', () => {
  const input = 'one\n::add-mask::dir-value-42\nsee dir-value-42 and base-secret-xyz\n::add-mask::other-77\ndir-value-42other-77\n';
  check({ secrets: [{ name: 'B', value: 'base-secret-xyz' }] }, input, `one\n::add-mask::${MASK}\nsee ${MASK} and ${MASK}\n::add-mask::${MASK}\n${MASK}\n`, 11);
});

test.run();
