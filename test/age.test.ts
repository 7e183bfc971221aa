import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AgeError, Opener, Sealer, createOpenStream, createSealStream, generateX25519Identity, openBuffer, parseIdentityFile,
  parseRecipientsFile, scryptIdentity, scryptRecipient, sealBuffer, x25519Identity, x25519Recipient, x25519RecipientOf,
  type Identity, type Recipient,
} from '../lib/age/index.ts';
import * as bech32 from '../lib/age/bech32.ts';
import { decodePadded, decodeRaw, encodeRaw } from '../lib/age/base64.ts';
import { MAX_HEADER_BYTES, encodeHeader, parseHeader } from '../lib/age/format.ts';
import { CHUNK_SIZE, ENC_CHUNK_SIZE } from '../lib/age/stream.ts';
import { TempDir } from './helpers/age-tools.ts';
import { prng, pseudoRandomBytes } from './helpers/random.ts';
import { open } from 'node:fs/promises';
import { pumpFile, type ChunkCore } from '../lib/age/pump.ts';
import { PARALLEL_MIN_BYTES, pumpPayloadParallel, runSharesOnThreads } from '../lib/age/parallel.ts';
import { appendFile } from 'node:fs/promises';

const alice = generateX25519Identity();
const bob = generateX25519Identity();
const toAlice: Recipient[] = [x25519Recipient(alice.recipient)];
const asAlice: Identity[] = [x25519Identity(alice.identity)];

async function expectAgeError(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<AgeError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AgeError, `expected AgeError, got ${String(e)}`);
    assert.is((e as AgeError).code, code, (e as Error).message);
    if (pattern) assert.match((e as Error).message, pattern);
    return e as AgeError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

/** Header length of a sealed file (the payload nonce follows it). */
function headerLength(file: Buffer): number {
  return parseHeader(file, true)!.length;
}

test('bech32 keys: the spec example identity derives the spec example recipient', () => {
  assert.is(x25519RecipientOf('AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX'),
    'age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj');
  const d = bech32.decode(alice.recipient)!;
  assert.is(bech32.encode('age', d.data), alice.recipient);
  assert.is(bech32.decode(alice.recipient.slice(0, -1) + (alice.recipient.endsWith('q') ? 'p' : 'q')), null, 'checksum must catch a changed character');
  assert.is(bech32.decode('Age1' + alice.recipient.slice(4)), null, 'mixed case is refused');
  assert.throws(() => x25519Recipient(alice.identity), /expected an "age1…" public key/);
  assert.throws(() => x25519Identity(alice.recipient), /AGE-SECRET-KEY-1/);
});

test('base64: only canonical unpadded (header) or canonical padded (armor) is accepted', () => {
  assert.is(encodeRaw(Buffer.from('ab')), 'YWI');
  assert.equal(decodeRaw('YWI'), Buffer.from('ab'));
  assert.is(decodeRaw('YWI='), null, 'padding refused');
  assert.is(decodeRaw('YWJ'), null, 'non-zero trailing bits refused');
  assert.is(decodeRaw('YW I'), null);
  assert.is(decodeRaw('Y'), null);
  assert.equal(decodePadded('YWI='), Buffer.from('ab'));
  assert.is(decodePadded('YWI'), null);
  assert.is(decodePadded('YWJ='), null);
});

test('header: stanza bodies wrap at 64 columns and always end with a short (maybe empty) line', () => {
  const key = Buffer.alloc(16, 7);
  const stanzas = [
    { type: 'a', args: ['x'], body: Buffer.alloc(48, 1) }, // exactly one full line → empty final line
    { type: 'b', args: [], body: Buffer.alloc(0) },
    { type: 'c', args: ['1', '2'], body: Buffer.alloc(100, 3) },
  ];
  const h = encodeHeader(key, stanzas);
  const text = h.toString('latin1');
  assert.ok(text.startsWith('age-encryption.org/v1\n-> a x\n'));
  const lines = text.split('\n');
  assert.is(lines[3], '', 'a 48-byte body needs an empty final line');
  const parsed = parseHeader(h, true)!;
  assert.is(parsed.length, h.length);
  assert.equal(parsed.stanzas.map((s) => [s.type, s.args, Buffer.from(s.body).toString('hex')]),
    stanzas.map((s) => [s.type, s.args, s.body.toString('hex')]));
  assert.is(parseHeader(h.subarray(0, 30), false), null, 'a prefix asks for more input');
  assert.throws(() => parseHeader(h.subarray(0, 30), true), /ends inside the header/);
  assert.throws(() => parseHeader(Buffer.from('hello world\n'), false), /does not start with "age-encryption.org\/v1"/);
  assert.throws(() => parseHeader(Buffer.from('age-encryption.org/v2\n'), false), (e: AgeError) => e.code === 'AGE_VERSION_UNSUPPORTED');
});

test('header: the 1 MiB limit holds however the input is split', () => {
  // Many small stanzas, each valid: a complete header just over the limit.
  const stanzas = Array.from({ length: 16_000 }, (_, i) => ({ type: 'x', args: [String(i)], body: Buffer.alloc(48, 1) }));
  const big = encodeHeader(Buffer.alloc(16, 7), stanzas);
  assert.ok(big.length > MAX_HEADER_BYTES);
  const whole = Buffer.concat([big, Buffer.alloc(64)]);
  assert.throws(() => parseHeader(whole, false), /header is larger than 1048576 bytes/, 'complete in one buffer');
  assert.throws(() => parseHeader(whole.subarray(0, MAX_HEADER_BYTES + 10), false), /header is larger than/, 'a prefix');
  const small = encodeHeader(Buffer.alloc(16, 7), stanzas.slice(0, 100));
  assert.is(parseHeader(small, true)!.stanzas.length, 100);
});

test('round trip at chunk boundaries, and the chunk layout is canonical', async () => {
  for (const size of [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17]) {
    const plain = pseudoRandomBytes(size, size);
    const file = await sealBuffer(plain, toAlice);
    const chunks = Math.max(1, Math.ceil(size / CHUNK_SIZE));
    // A payload of k·64 KiB ends in a full final chunk, never full + empty.
    assert.is(file.length, headerLength(file) + 16 + size + 16 * chunks, `layout for ${size} bytes`);
    assert.equal(await openBuffer(file, asAlice), plain, `round trip of ${size} bytes`);
  }
});

test('input split at every byte still opens (header and chunk boundaries anywhere)', async () => {
  const plain = pseudoRandomBytes(CHUNK_SIZE + 5, 1);
  const file = await sealBuffer(plain, toAlice);
  const out: Buffer[] = [];
  const o = new Opener(asAlice);
  for (let i = 0; i < file.length; i++) o.write(file.subarray(i, i + 1), (b) => out.push(b));
  o.end((b) => out.push(b));
  assert.equal(Buffer.concat(out), plain);
});

test('several recipients: each identity opens the file alone; a stranger gets AGE_NO_IDENTITY', async () => {
  const file = await sealBuffer(Buffer.from('rotate me'), [x25519Recipient(alice.recipient), x25519Recipient(bob.recipient)]);
  assert.is(parseHeader(file, true)!.stanzas.length, 2);
  assert.is((await openBuffer(file, [x25519Identity(bob.identity)])).toString(), 'rotate me');
  assert.is((await openBuffer(file, asAlice)).toString(), 'rotate me');
  const stranger = generateX25519Identity();
  await expectAgeError(openBuffer(file, [x25519Identity(stranger.identity)]), 'AGE_NO_IDENTITY', /^No identity matches any of the file's 2 recipient stanzas \(X25519\)/);
  await expectAgeError(openBuffer(file, []), 'AGE_NO_IDENTITY');
});

test('sealing needs a recipient, and scrypt must be alone', async () => {
  assert.throws(() => createSealStream([]), (e: AgeError) => e.code === 'AGE_STATE_ERROR' && /no recipients/.test(e.message));
  assert.throws(() => createSealStream([scryptRecipient('pw', 10), toAlice[0]!]), /must be the only recipient/);
  const file = await sealBuffer(Buffer.from('secret'), [scryptRecipient('correct horse', 10)]);
  assert.is((await openBuffer(file, [scryptIdentity('correct horse')])).toString(), 'secret');
  await expectAgeError(openBuffer(file, [scryptIdentity('wrong')]), 'AGE_NO_IDENTITY');
});

test('armor: sealed with armor, opened with auto-detection; binary is detected too', async () => {
  const plain = pseudoRandomBytes(1000, 3);
  const armored = await sealBuffer(plain, toAlice, { armor: true });
  const text = armored.toString('latin1');
  assert.match(text, /^-----BEGIN AGE ENCRYPTED FILE-----\n/);
  assert.match(text, /\n-----END AGE ENCRYPTED FILE-----\n$/);
  for (const line of text.split('\n').slice(1, -3)) assert.is(line.length, 64);
  assert.equal(await openBuffer(armored, asAlice), plain);
  assert.equal(await openBuffer(Buffer.concat([Buffer.from('\n  \r\n'), armored, Buffer.from('\n\n')]), asAlice), plain);
  await expectAgeError(openBuffer(Buffer.from(text.replace('\n', '\nX: y\n')), asAlice), 'AGE_ARMOR_INVALID');
  await expectAgeError(openBuffer(await sealBuffer(plain, toAlice), asAlice, { armor: true }), 'AGE_ARMOR_INVALID');
});

test('identity and recipient files: comments and blank lines allowed, junk named by line', () => {
  const ids = parseIdentityFile(`# created: now\n# public key: ${alice.recipient}\n${alice.identity}\n\n${bob.identity}\n`);
  assert.is(ids.length, 2);
  assert.throws(() => parseIdentityFile('# nothing\n'), /holds no identities/);
  assert.throws(() => parseIdentityFile(`${alice.identity}\nnonsense\n`), /line 2 is not an "AGE-SECRET-KEY-1…" identity/);
  assert.is(parseRecipientsFile(`# pool\n${alice.recipient}\n${bob.recipient}\n`).length, 2);
  assert.throws(() => parseRecipientsFile('hello\n'), /line 1 is not an age1… or ssh-rsa recipient/);
  assert.throws(() => parseRecipientsFile('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), /"PRIVATE KEY" block is not a recipient/);
});

test('streams keep memory flat: 48 MiB through seal and open hold only a few chunks at a time', async () => {
  const total = 48 << 20;
  const block = pseudoRandomBytes(1 << 20, 9);
  let produced = 0;
  const source = new Readable({
    read() {
      if (produced >= total) return void this.push(null);
      produced += block.length;
      this.push(block);
    },
  });
  const want = createHash('sha256');
  for (let i = 0; i < total / block.length; i++) want.update(block);
  const got = createHash('sha256');
  let bytes = 0;
  let peak = 0;
  const seal = createSealStream(toAlice);
  const open = createOpenStream(asAlice);
  const buffered = (): number => seal.readableLength + seal.writableLength + open.readableLength + open.writableLength + source.readableLength;
  await pipeline(source, seal, open, new Writable({
    highWaterMark: 1 << 16,
    write(chunk: Buffer, _e, cb) {
      got.update(chunk);
      bytes += chunk.length;
      peak = Math.max(peak, buffered());
      // A slow consumer: backpressure must stop the producer, not buffer the file.
      setImmediate(cb);
    },
  }));
  assert.is(bytes, total);
  assert.is(got.digest('hex'), want.digest('hex'));
  assert.ok(peak < 8 << 20, `streams buffered ${peak} bytes at peak while moving ${total}`);
});

// ---- seeded fuzz: every mutation ends in an AgeError with a stable code, and
// whatever plaintext came out before the error is an authenticated prefix.
const PAYLOAD_CODES = new Set(['AGE_PAYLOAD_TRUNCATED', 'AGE_PAYLOAD_INVALID', 'AGE_TRAILING_DATA']);
const HEADER_CODES = new Set(['AGE_HEADER_INVALID', 'AGE_MAC_MISMATCH', 'AGE_NO_IDENTITY', 'AGE_VERSION_UNSUPPORTED']);

function openMutated(file: Buffer, rnd: () => number): { err: unknown; released: Buffer; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const o = new Opener(asAlice, { armor: false });
  try {
    for (let i = 0; i < file.length;) {
      const n = 1 + Math.floor(rnd() * 100_000);
      o.write(file.subarray(i, i + n), (b) => chunks.push(b));
      i += n;
    }
    o.end((b) => chunks.push(b));
  } catch (err) {
    return { err, released: Buffer.concat(chunks), chunks };
  }
  return { err: null, released: Buffer.concat(chunks), chunks };
}

function checkReleased(plain: Buffer, r: { released: Buffer; chunks: Buffer[] }, what: string): void {
  assert.ok(r.released.equals(plain.subarray(0, r.released.length)), `${what}: released plaintext is not an authenticated prefix`);
  for (const c of r.chunks) assert.ok(c.length === CHUNK_SIZE || c === r.chunks.at(-1), `${what}: a partial chunk was released early`);
}

test('fuzz: bit flips, truncation at every chunk boundary, reordering, appended bytes', async () => {
  const plain = pseudoRandomBytes(4 * CHUNK_SIZE + 1234, 42);
  const file = await sealBuffer(plain, toAlice);
  const hlen = headerLength(file);
  const payloadStart = hlen + 16;
  const rnd = prng(20261128);
  const seen = new Map<string, number>();
  const expectFail = (mutated: Buffer, what: string, codes: Set<string>): void => {
    const r = openMutated(mutated, rnd);
    assert.ok(r.err instanceof AgeError, `${what}: expected an AgeError, got ${String(r.err)}`);
    const code = (r.err as AgeError).code;
    assert.ok(codes.has(code), `${what}: unexpected code ${code}`);
    seen.set(code, (seen.get(code) ?? 0) + 1);
    checkReleased(plain, r, what);
  };
  for (let i = 0; i < 300; i++) {
    const m = Buffer.from(file);
    const pos = Math.floor(rnd() * hlen);
    m[pos]! ^= 1 << Math.floor(rnd() * 8);
    expectFail(m, `header bit flip at ${pos}`, HEADER_CODES);
  }
  for (let i = 0; i < 300; i++) {
    const m = Buffer.from(file);
    const pos = hlen + Math.floor(rnd() * (file.length - hlen));
    m[pos]! ^= 1 << Math.floor(rnd() * 8);
    expectFail(m, `payload bit flip at ${pos}`, PAYLOAD_CODES);
  }
  const chunkCount = Math.ceil(plain.length / CHUNK_SIZE);
  for (let k = 0; k <= chunkCount; k++) {
    for (const delta of [-1, 0, 1, 16, 17]) {
      const cut = payloadStart + k * ENC_CHUNK_SIZE + delta;
      if (cut >= file.length || cut < 0) continue;
      expectFail(file.subarray(0, cut), `truncated at ${cut}`, cut < payloadStart ? HEADER_CODES : PAYLOAD_CODES);
    }
  }
  for (let i = 0; i < 60; i++) {
    const a = Math.floor(rnd() * chunkCount);
    let b = Math.floor(rnd() * chunkCount);
    if (a === b) b = (b + 1) % chunkCount;
    const parts = Array.from({ length: chunkCount }, (_, k) => file.subarray(payloadStart + k * ENC_CHUNK_SIZE, payloadStart + (k + 1) * ENC_CHUNK_SIZE));
    [parts[a], parts[b]] = [parts[b]!, parts[a]!];
    expectFail(Buffer.concat([file.subarray(0, payloadStart), ...parts]), `chunks ${a} and ${b} swapped`, PAYLOAD_CODES);
    // dropping or duplicating a chunk
    const dropped = parts.filter((_, k) => k !== a);
    expectFail(Buffer.concat([file.subarray(0, payloadStart), ...dropped]), `chunk ${a} dropped`, PAYLOAD_CODES);
  }
  for (let i = 0; i < 60; i++) {
    const extra = pseudoRandomBytes(1 + Math.floor(rnd() * 70_000), i);
    expectFail(Buffer.concat([file, extra]), `${extra.length} bytes appended`, PAYLOAD_CODES);
  }
  for (let i = 0; i < 200; i++) {
    const junk = pseudoRandomBytes(Math.floor(rnd() * 3000), 1000 + i);
    expectFail(rnd() < 0.5 ? junk : Buffer.concat([Buffer.from('age-encryption.org/v1\n-> '), junk]), 'random bytes', new Set([...HEADER_CODES, 'AGE_ARMOR_INVALID']));
  }
  assert.ok(seen.size >= 5, `expected a spread of error codes, saw ${[...seen.keys()].join(', ')}`);
});

test('fuzz through the stream API: errors surface as AgeError and no unauthenticated bytes leave', async () => {
  const plain = pseudoRandomBytes(2 * CHUNK_SIZE + 99, 5);
  const file = await sealBuffer(plain, toAlice);
  const rnd = prng(7);
  for (let i = 0; i < 40; i++) {
    const m = Buffer.from(file);
    const pos = Math.floor(rnd() * m.length);
    m[pos]! ^= 0x80;
    const out: Buffer[] = [];
    let err: unknown = null;
    try {
      await pipeline(Readable.from([m.subarray(0, pos), m.subarray(pos)]), createOpenStream(asAlice), new Writable({
        write(c: Buffer, _e, cb) { out.push(c); cb(); },
      }));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof AgeError, `flip at ${pos}: ${String(err)}`);
    const released = Buffer.concat(out);
    assert.ok(released.equals(plain.subarray(0, released.length)), `flip at ${pos}: released bytes are not an authenticated prefix`);
  }
});

test('file pump: a write that fails while the next read is in flight is an error, never an unhandled rejection', async () => {
  // An in-process fake FileHandle, named as such: real files cannot be made to
  // fail a write while a read is still pending with reliable timing. Reads
  // settle a few event-loop turns late; every write fails at once.
  const src = pseudoRandomBytes(3 << 20, 5);
  let pos = 0;
  const turns = (n: number) => new Promise<void>((r) => { const step = (k: number) => (k === 0 ? r() : setImmediate(() => step(k - 1))); step(n); });
  const input = {
    stat: async () => ({ size: src.length, isFile: () => true }),
    read: async (buf: Buffer, off: number, len: number) => {
      await turns(20);
      const n = Math.min(len, src.length - pos);
      src.copy(buf, off, pos, pos + n);
      pos += n;
      return { bytesRead: n, buffer: buf };
    },
  };
  const output = { writev: async () => { throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }); } };
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => { unhandled.push(e); };
  process.on('unhandledRejection', onUnhandled);
  try {
    let err: unknown;
    try {
      await pumpFile(new Sealer(toAlice), input as never, output as never, 1 << 20);
    } catch (e) { err = e; }
    assert.match(String((err as Error)?.message), /ENOSPC/);
    await turns(50); // let any stray rejection surface
    assert.equal(unhandled, [], 'no unhandled rejection');
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('parallel pump: an I/O error inside a worker thread is the error the pump throws, never an unhandled rejection', async () => {
  // Real threads, real files: the output handle is read-only, so every
  // thread's first positional write fails with EBADF.
  const t = new TempDir();
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => { unhandled.push(e); };
  process.on('unhandledRejection', onUnhandled);
  try {
    t.write('plain', pseudoRandomBytes(PARALLEL_MIN_BYTES + 5, 9));
    t.write('out', Buffer.alloc(0));
    const i = await open(t.path('plain'), 'r');
    const o = await open(t.path('out'), 'r');
    let err: NodeJS.ErrnoException | undefined;
    try {
      await pumpFile(new Sealer(toAlice), i, o);
    } catch (e) { err = e as NodeJS.ErrnoException; } finally {
      await i.close();
      await o.close();
    }
    assert.is(err?.code, 'EBADF', String(err));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(unhandled, [], 'no unhandled rejection');
  } finally {
    process.off('unhandledRejection', onUnhandled);
    t.remove();
  }
});

test('parallel pump: an input that grows while it is sealed is an error, not a silently shortened file', async () => {
  const t = new TempDir();
  try {
    t.write('plain', pseudoRandomBytes(PARALLEL_MIN_BYTES, 10));
    const i = await open(t.path('plain'), 'r');
    const o = await open(t.path('out'), 'w');
    let err: NodeJS.ErrnoException | undefined;
    try {
      // The real threads, after the file grew behind the pump's back.
      await pumpPayloadParallel('seal', Buffer.alloc(32, 1), i, o, { inStart: 0, outStart: 0 }, {
        runShares: async (job, n) => { await appendFile(t.path('plain'), 'more'); return runSharesOnThreads(job, n); },
      });
    } catch (e) { err = e as NodeJS.ErrnoException; } finally {
      await i.close();
      await o.close();
    }
    assert.ok(err instanceof AgeError, String(err));
    assert.is(err?.code, 'AGE_INPUT_CHANGED', String(err));
    assert.match(String(err?.message), /changed size while it was being sealed/);
  } finally {
    t.remove();
  }
});

test('parallel pump: one thread or four give the same file, and an empty payload is refused by name', async () => {
  const t = new TempDir();
  try {
    const plain = pseudoRandomBytes(PARALLEL_MIN_BYTES + 70_000, 11);
    t.write('plain', plain);
    const key = Buffer.alloc(32, 7);
    const sealed: Buffer[] = [];
    for (const threads of [1, 4]) {
      const i = await open(t.path('plain'), 'r');
      const o = await open(t.path(`out${threads}`), 'w');
      try {
        await pumpPayloadParallel('seal', key, i, o, { inStart: 0, outStart: 0 }, { threads });
      } finally {
        await i.close();
        await o.close();
      }
      sealed.push(t.read(`out${threads}`));
    }
    assert.ok(sealed[0]!.equals(sealed[1]!), 'same key, same bytes, whatever the thread count');
    assert.is(sealed[0]!.length, plain.length + 16 * Math.ceil(plain.length / CHUNK_SIZE));
    t.write('empty', Buffer.alloc(0));
    const i = await open(t.path('empty'), 'r');
    const o = await open(t.path('out'), 'w');
    try {
      await expectAgeError(pumpPayloadParallel('open', key, i, o, { inStart: 0, outStart: 0 }), 'AGE_PAYLOAD_TRUNCATED', /no chunks/);
    } finally {
      await i.close();
      await o.close();
    }
  } finally {
    t.remove();
  }
});

test('file pump: large files go through the worker pool; damage is classified and only authenticated bytes come out', async () => {
  const t = new TempDir();
  try {
    const size = PARALLEL_MIN_BYTES + 3 * CHUNK_SIZE + 11; // several 16-chunk blocks and a short final chunk
    const plain = pseudoRandomBytes(size, 77);
    t.write('plain', plain);
    const pump = async (core: ChunkCore, from: string, to: string): Promise<void> => {
      const i = await open(t.path(from), 'r');
      const o = await open(t.path(to), 'w');
      try {
        await pumpFile(core, i, o);
      } finally {
        await i.close();
        await o.close();
      }
    };
    await pump(new Sealer(toAlice), 'plain', 'sealed');
    const sealed = t.read('sealed');
    assert.equal(await openBuffer(sealed, asAlice), plain, 'the stream opener reads what the pool sealed');
    await pump(new Opener(asAlice), 'sealed', 'opened');
    assert.ok(t.read('opened').equals(plain), 'the pool opens it');
    // Exactly k·64 KiB: the final chunk is full and flagged, through the pool too.
    t.write('aligned', plain.subarray(0, PARALLEL_MIN_BYTES));
    await pump(new Sealer(toAlice), 'aligned', 'aligned.age');
    assert.is(t.read('aligned.age').length, headerLength(t.read('aligned.age')) + 16 + PARALLEL_MIN_BYTES + 16 * (PARALLEL_MIN_BYTES / CHUNK_SIZE));
    await pump(new Opener(asAlice), 'aligned.age', 'aligned.out');
    assert.ok(t.read('aligned.out').equals(plain.subarray(0, PARALLEL_MIN_BYTES)));

    const payloadStart = headerLength(sealed) + 16;
    const cases: [string, Buffer, string][] = [
      ['bit flip in chunk 40', (() => { const m = Buffer.from(sealed); m[payloadStart + 40 * ENC_CHUNK_SIZE + 7]! ^= 1; return m; })(), 'AGE_PAYLOAD_INVALID'],
      ['bit flip in the final chunk', (() => { const m = Buffer.from(sealed); m[m.length - 2]! ^= 1; return m; })(), 'AGE_PAYLOAD_INVALID'],
      ['truncated at a block boundary', sealed.subarray(0, payloadStart + 32 * ENC_CHUNK_SIZE), 'AGE_PAYLOAD_TRUNCATED'],
      ['truncated 5 bytes into a chunk', sealed.subarray(0, payloadStart + 100 * ENC_CHUNK_SIZE + 5), 'AGE_PAYLOAD_TRUNCATED'],
      ['truncated inside a chunk', sealed.subarray(0, payloadStart + 100 * ENC_CHUNK_SIZE + 500), 'AGE_PAYLOAD_INVALID'],
      // After a short final chunk, appended bytes just make that chunk fail.
      ['bytes appended after a short final chunk', Buffer.concat([sealed, Buffer.from('tail')]), 'AGE_PAYLOAD_INVALID'],
      ['bytes appended after a full final chunk', Buffer.concat([t.read('aligned.age'), Buffer.from('tail')]), 'AGE_TRAILING_DATA'],
      ['a whole chunk appended after a full final chunk', Buffer.concat([t.read('aligned.age'), sealed.subarray(payloadStart, payloadStart + ENC_CHUNK_SIZE)]), 'AGE_TRAILING_DATA'],
      ['chunks 3 and 4 swapped', Buffer.concat([sealed.subarray(0, payloadStart + 3 * ENC_CHUNK_SIZE), sealed.subarray(payloadStart + 4 * ENC_CHUNK_SIZE, payloadStart + 5 * ENC_CHUNK_SIZE), sealed.subarray(payloadStart + 3 * ENC_CHUNK_SIZE, payloadStart + 4 * ENC_CHUNK_SIZE), sealed.subarray(payloadStart + 5 * ENC_CHUNK_SIZE)]), 'AGE_PAYLOAD_INVALID'],
    ];
    for (const [what, file, code] of cases) {
      t.write('bad', file);
      await expectAgeError(pump(new Opener(asAlice), 'bad', 'out'), code);
      const out = t.read('out');
      assert.ok(out.equals(plain.subarray(0, out.length)), `${what}: only an authenticated prefix was written`);
      assert.is(out.length % CHUNK_SIZE, 0, `${what}: whole chunks only`);
    }
  } finally {
    t.remove();
  }
});

test.run();
