// sealAndUpload: the workspace is sealed once, uploaded while it is sealed,
// and retried from the complete copy on disk when the upload fails. The upload
// here is a FAKE (an in-process stand-in for the server's PUT, named as such)
// because it must fail on cue; sealing and opening are the real age code, and
// the result is checked with the stock age CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sshRsaRecipient } from '../lib/age/index.ts';
import { ServerError } from '../lib/launcher/api.ts';
import { sealAndUpload } from '../lib/launcher/seal-upload.ts';

const dir = mkdtempSync(join(tmpdir(), 'launcher-seal-'));
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
writeFileSync(join(dir, 'key.pem'), privateKey, { mode: 0o600 });
const recipients = [sshRsaRecipient(publicKey)];
const fast = { backoff: { baseMs: 1, capMs: 2 } };

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
function ageOpen(sealed: Buffer): Buffer {
  const f = join(dir, `in-${randomBytes(4).toString('hex')}.age`);
  writeFileSync(f, sealed);
  return execFileSync('age', ['-d', '-i', join(dir, 'key.pem'), f], { maxBuffer: 64 * 1024 * 1024 });
}

test('uploads while sealing; the stored copy and the upload are the same age file', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const uploads: Buffer[] = [];
  await sealAndUpload(Readable.from([data]), join(dir, 'a.age'), recipients, async (body) => { uploads.push(await collect(body)); }, fast);
  assert.is(uploads.length, 1);
  assert.ok(ageOpen(uploads[0]!).equals(data));
});

test('a failed upload (fake unreachable server) is retried from the complete file', async () => {
  const data = randomBytes(2 * 1024 * 1024);
  const uploads: Buffer[] = [];
  let calls = 0;
  const fakeServer = async (body: Readable) => {
    calls++;
    if (calls <= 2) {
      // Read a little, then drop the connection as a dying server does.
      const it = body[Symbol.asyncIterator]();
      await it.next();
      throw new ServerError('SERVER_UNREACHABLE', 'Cannot reach the server (fake)', { transient: true });
    }
    uploads.push(await collect(body));
  };
  await sealAndUpload(Readable.from([data]), join(dir, 'b.age'), recipients, fakeServer, fast);
  assert.is(calls, 3);
  assert.ok(ageOpen(uploads[0]!).equals(data));
});

test('a sealing failure is the error, and nothing half-sealed is retried', async () => {
  let calls = 0;
  const broken = new Readable({ read() { this.push(randomBytes(70_000)); this.destroy(new Error('archive read failed')); } });
  try {
    await sealAndUpload(broken, join(dir, 'c.age'), recipients, async (body) => { calls++; await collect(body); }, fast);
    assert.unreachable('should fail');
  } catch (e) {
    assert.match((e as Error).message, /archive read failed/);
  }
  assert.is(calls, 1, 'no retry from an incomplete file');
});

test('a permanent refusal is not retried', async () => {
  let calls = 0;
  try {
    await sealAndUpload(Readable.from([randomBytes(1000)]), join(dir, 'd.age'), recipients, async (body) => {
      calls++;
      body.resume();
      throw new ServerError('SERVER_REFUSED', 'refused (fake)', { status: 403, permanent: true });
    }, fast);
    assert.unreachable('should fail');
  } catch (e) {
    assert.is((e as ServerError).code, 'SERVER_REFUSED');
  }
  assert.is(calls, 1);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
