// The C2SP CCTV age vectors (test/fixtures/age-cctv). Every vector whose
// identities we support (X25519, scrypt passphrases) must give exactly the
// expected outcome and, where given, the SHA-256 of all plaintext released
// (even when a later chunk fails). Vectors for identity types we do not
// implement (the hybrid ML-KEM "AGE-SECRET-KEY-PQ-1" type) are skipped by
// type, counted and printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AgeError, Opener, createOpenStream, scryptIdentity, x25519Identity, type Identity } from '../lib/age/index.ts';
import { failureKind } from '../lib/age/errors.ts';
import { loadVectors, type AgeVector } from './helpers/age-vectors.ts';

const vectors = loadVectors();
const supported = (v: AgeVector): boolean => v.identities.every((i) => i.startsWith('AGE-SECRET-KEY-1'));
const runnable = vectors.filter(supported);
const skipped = vectors.filter((v) => !supported(v));

function identitiesOf(v: AgeVector): Identity[] {
  return [...v.identities.map((i) => x25519Identity(i)), ...v.passphrases.map((p) => scryptIdentity(p))];
}

/** Feeds the file in pieces of `step` bytes; returns the outcome and released plaintext hash. */
function openInPieces(v: AgeVector, step: number): { outcome: string; hash: string; message: string } {
  const h = createHash('sha256');
  const o = new Opener(identitiesOf(v), { armor: v.armored });
  try {
    for (let i = 0; i < v.file.length; i += step) o.write(v.file.subarray(i, i + step), (b) => h.update(b));
    o.end((b) => h.update(b));
    return { outcome: 'success', hash: h.digest('hex'), message: '' };
  } catch (e) {
    if (!(e instanceof AgeError)) throw e;
    return { outcome: failureKind(e.code), hash: h.digest('hex'), message: e.message };
  }
}

test('the vector set is complete and only unsupported identity types are skipped', () => {
  assert.is(vectors.length, 143);
  assert.ok(runnable.length >= 120, `only ${runnable.length} vectors runnable`);
  for (const v of skipped) assert.ok(v.identities.some((i) => i.startsWith('AGE-SECRET-KEY-PQ-1')), `${v.name} skipped without reason`);
  console.log(`\n  age CCTV: ${runnable.length} vectors run, ${skipped.length} skipped (hybrid ML-KEM identities: ${skipped.map((v) => v.name).join(', ')})`);
});

for (const v of runnable) {
  test(`vector ${v.name}: ${v.expect}`, () => {
    const steps = [v.file.length || 1, 4093];
    if (v.file.length < 4096) steps.push(1);
    for (const step of steps) {
      const r = openInPieces(v, step);
      assert.is(r.outcome, v.expect, `${v.name} (pieces of ${step}): ${r.message}${v.comment ? ` — ${v.comment}` : ''}`);
      if (v.payload) assert.is(r.hash, v.payload, `${v.name}: hash of released plaintext`);
    }
  });
}

test('the stream API gives the same outcomes for every runnable vector', async () => {
  for (const v of runnable) {
    let outcome = 'success';
    try {
      await pipeline(Readable.from([v.file]), createOpenStream(identitiesOf(v), { armor: v.armored }), new Writable({ write(_c, _e, cb) { cb(); } }));
    } catch (e) {
      assert.ok(e instanceof AgeError, `${v.name}: ${String(e)}`);
      outcome = failureKind((e as AgeError).code);
    }
    assert.is(outcome, v.expect, v.name);
  }
});

test.run();
