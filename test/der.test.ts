// The one DER reader: strict for CSRs (non-minimal lengths refused), lenient
// for finding a pool key's modulus size (lib/keys.ts), and the same refusals
// of what no reading can accept (truncation, indefinite lengths, long tags).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { DerError, SEQUENCE, children, readTlv } from '../lib/der.ts';
import { rsaModulusBits } from '../lib/keys.ts';

const bytes = (...b: number[]): Buffer => Buffer.from(b);

test('a minimal element, its children, and what is refused in every mode', () => {
  const seq = bytes(0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xff);
  const top = readTlv(seq, 0, seq.length);
  assert.equal(top, { tag: SEQUENCE, start: 0, headerLength: 2, end: 8 });
  assert.equal(children(seq, top).map((t) => t.tag), [0x02, 0x04]);
  for (const [buf, why] of [
    [bytes(0x30, 0x05, 0x02), /truncated/],
    [bytes(0x30, 0x80, 0x00, 0x00), /indefinite length/],
    [bytes(0x1f, 0x81, 0x01, 0x00), /multi-byte DER tag/],
    [bytes(0x30), /ends in the middle/],
  ] as const) {
    for (const minimal of [true, false]) {
      assert.throws(() => readTlv(buf, 0, buf.length, { minimal }), (e: unknown) => e instanceof DerError && why.test((e as Error).message));
    }
  }
});

test('a non-minimal length: refused when strict (CSRs), read when lenient (key sizes)', () => {
  const longForm = bytes(0x04, 0x81, 0x01, 0xaa); // length 1 written in long form
  assert.throws(() => readTlv(longForm, 0, longForm.length), /non-minimal DER length/);
  assert.equal(readTlv(longForm, 0, longForm.length, { minimal: false }), { tag: 0x04, start: 0, headerLength: 3, end: 4 });
});

test('the lenient reading still finds the modulus size of real keys in every layout', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  assert.is(rsaModulusBits(privateKey.export({ type: 'pkcs8', format: 'der' }), 'pkcs8'), 2048);
  assert.is(rsaModulusBits(privateKey.export({ type: 'pkcs1', format: 'der' }), 'pkcs1'), 2048);
  assert.is(rsaModulusBits(publicKey.export({ type: 'spki', format: 'der' }), 'spki'), 2048);
  assert.is(rsaModulusBits(bytes(0x30, 0x03, 0x02, 0x01), 'pkcs1'), null, 'malformed: null, OpenSSL gives the verdict');
});

test.run();
