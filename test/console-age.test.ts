// The console's browser sealing (lib/console/app/age.ts) run on Node's
// WebCrypto, checked against the real `age` CLI and the project's own reader:
// what the browser seals must open with `age -d -i spacelift.key`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seal, sealSecretEnv } from '../lib/console/app/age.ts';
import { openBuffer, sshRsaIdentity } from '../lib/age/index.ts';

const work = mkdtempSync(join(tmpdir(), 'console-age-'));
const keys = [0, 1].map(() => generateKeyPairSync('rsa', { modulusLength: 2048 }));
const pems = keys.map((k) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString());
keys.forEach((k, i) => writeFileSync(join(work, `k${i}.key`), k.privateKey.export({ type: 'pkcs8', format: 'pem' })));

async function rejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  try { await fn(); } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable(`expected a rejection matching ${re}`);
}

test.after(() => rmSync(work, { recursive: true, force: true }));

test('a secret env sealed as the browser does opens with age -d -i for each of the keys', async () => {
  const b64 = await sealSecretEnv({ DB_PASSWORD: 'hunter2 ünïcode', TOKEN: 'x' }, pems);
  writeFileSync(join(work, 'secrets.age'), Buffer.from(b64, 'base64'));
  for (const i of [0, 1]) {
    const out = execFileSync('age', ['-d', '-i', join(work, `k${i}.key`), join(work, 'secrets.age')], { encoding: 'utf8' });
    assert.equal(JSON.parse(out), { DB_PASSWORD: 'hunter2 ünïcode', TOKEN: 'x' });
  }
});

test('payloads across chunk boundaries (0, 64 KiB exactly, 64 KiB + 1, 200 KiB) open with age and with lib/age', async () => {
  for (const size of [0, 65536, 65537, 200 * 1024]) {
    const plain = Buffer.alloc(size);
    for (let i = 0; i < size; i++) plain[i] = (i * 31 + 7) & 255;
    const sealed = await seal(plain, [pems[0]!]);
    const file = join(work, `p${size}.age`);
    writeFileSync(file, sealed);
    const out = execFileSync('age', ['-d', '-i', join(work, 'k0.key'), file], { maxBuffer: 1 << 24 });
    assert.ok(Buffer.compare(out, plain) === 0, `age opened ${size} bytes`);
    const mine = await openBuffer(sealed, [sshRsaIdentity(keys[0]!.privateKey)]);
    assert.ok(Buffer.compare(mine, plain) === 0, `lib/age opened ${size} bytes`);
  }
});

test('a key that is not a PEM public key, or too small, is refused with a clear message', async () => {
  await rejects(() => seal(new Uint8Array(1), ['ssh-rsa AAAA']), /PEM public key/);
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await rejects(() => seal(new Uint8Array(1), [small]), /1024-bit RSA key: at least 2048/);
  await rejects(() => seal(new Uint8Array(1), []), /no active key/);
});

test.run();
