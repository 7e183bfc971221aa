// Interop with the real `age` CLI (Debian package) both ways: ssh-rsa with
// keys made by the seed's openssl command, X25519 with age-keygen, several
// recipients, armor, and sizes around the 64 KiB chunk boundary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import {
  AgeError, openBuffer, parseIdentityFile, parseRecipientsFile, sealBuffer, sshRsaIdentity, sshRsaPublicLine,
  sshRsaRecipient, sshRsaTag, x25519Identity, x25519Recipient, x25519RecipientOf,
} from '../lib/age/index.ts';
import { parseHeader } from '../lib/age/format.ts';
import { createPublicKey } from 'node:crypto';
import { TempDir, hasSshKeygen, run, seedKey } from './helpers/age-tools.ts';
import { pseudoRandomBytes } from './helpers/random.ts';

const t = new TempDir();
// One 4096-bit key made exactly as the seed says (slow on a busy machine), plus
// a 2048-bit one from the same command for the multi-recipient cases.
const pool = seedKey(t, 'spacelift');
const other = seedKey(t, 'other', 2048);
const poolPem = readFileSync(pool.key, 'utf8');
const otherPem = readFileSync(other.key, 'utf8');
run('openssl', ['pkey', '-in', pool.key, '-pubout', '-out', t.path('spacelift.pub.pem')]);
run('openssl', ['req', '-x509', '-key', pool.key, '-subj', '/CN=pool', '-days', '2', '-out', t.path('spacelift.crt')]);
run('openssl', ['rsa', '-in', pool.key, '-traditional', '-out', t.path('spacelift.pkcs1.key')]);
run('age-keygen', ['-o', t.path('x.key')]);
const xIdentityFile = readFileSync(t.path('x.key'), 'utf8');
const xRecipient = run('age-keygen', ['-y', t.path('x.key')]).toString().trim();
const ourPoolLine = sshRsaPublicLine(poolPem);
const ourOtherLine = sshRsaPublicLine(otherPem);
t.write('spacelift.pub', ourPoolLine + '\n');
t.write('other.pub', ourOtherLine + '\n');

const SIZES = [0, 65536, 65537, 5 * 1024 * 1024 + 3];

test.after(() => t.remove());

test('our ssh-rsa public line is what OpenSSH (or age -R, when it reads it) expects', () => {
  if (hasSshKeygen()) {
    assert.is(ourPoolLine, run('ssh-keygen', ['-y', '-f', pool.key]).toString().trim().split(' ').slice(0, 2).join(' '));
  }
  // age itself accepts the line as a recipient and writes the tag we compute.
  const sealed = run('age', ['-R', t.path('spacelift.pub')], { input: 'x' });
  const stanza = parseHeader(sealed, true)!.stanzas[0]!;
  assert.is(stanza.type, 'ssh-rsa');
  assert.equal(stanza.args, [sshRsaTag(createPublicKey(poolPem))]);
});

test('we seal to the pool key in every accepted form → age -d -i spacelift.key opens', async () => {
  const forms: [string, string][] = [
    ['PEM public key', readFileSync(t.path('spacelift.pub.pem'), 'utf8')],
    ['PEM certificate', readFileSync(t.path('spacelift.crt'), 'utf8')],
    ['ssh-rsa line', ourPoolLine],
  ];
  for (const [name, form] of forms) {
    for (const size of SIZES) {
      const plain = pseudoRandomBytes(size, size + name.length);
      t.write('ours.age', await sealBuffer(plain, [sshRsaRecipient(form)]));
      const out = run('age', ['-d', '-i', pool.key, t.path('ours.age')]);
      assert.ok(out.equals(plain), `${name}, ${size} bytes`);
    }
  }
});

test('age -R seals → we open with the PEM key (PKCS#8 and PKCS#1)', async () => {
  for (const size of SIZES) {
    const plain = pseudoRandomBytes(size, 7 * size + 1);
    t.write('plain', plain);
    run('age', ['-R', t.path('spacelift.pub'), '-o', t.path('theirs.age'), t.path('plain')]);
    const file = t.read('theirs.age');
    assert.equal(await openBuffer(file, [sshRsaIdentity(poolPem)]), plain, `PKCS#8, ${size} bytes`);
    assert.equal(await openBuffer(file, parseIdentityFile(readFileSync(t.path('spacelift.pkcs1.key'), 'utf8'))), plain, `PKCS#1, ${size} bytes`);
  }
});

test('X25519 with age-keygen, both ways', async () => {
  assert.is(x25519RecipientOf(xIdentityFile.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!), xRecipient);
  for (const size of SIZES) {
    const plain = pseudoRandomBytes(size, size + 11);
    t.write('ours.age', await sealBuffer(plain, [x25519Recipient(xRecipient)]));
    assert.ok(run('age', ['-d', '-i', t.path('x.key'), t.path('ours.age')]).equals(plain), `age opens ours, ${size} bytes`);
    t.write('plain', plain);
    run('age', ['-r', xRecipient, '-o', t.path('theirs.age'), t.path('plain')]);
    assert.equal(await openBuffer(t.read('theirs.age'), parseIdentityFile(xIdentityFile)), plain, `we open age's, ${size} bytes`);
  }
});

test('several recipients (two RSA keys and an X25519 key), both ways; each identity opens alone', async () => {
  const plain = pseudoRandomBytes(65537, 99);
  const recipients = parseRecipientsFile(`${ourPoolLine}\n${readFileSync(t.path('other.pub'), 'utf8')}${xRecipient}\n`);
  assert.is(recipients.length, 3);
  t.write('ours.age', await sealBuffer(plain, recipients));
  for (const id of [pool.key, other.key, t.path('x.key')]) {
    assert.ok(run('age', ['-d', '-i', id, t.path('ours.age')]).equals(plain), `age opens ours with ${id}`);
  }
  t.write('plain', plain);
  run('age', ['-R', t.path('spacelift.pub'), '-R', t.path('other.pub'), '-r', xRecipient, '-o', t.path('theirs.age'), t.path('plain')]);
  const theirs = t.read('theirs.age');
  assert.is(parseHeader(theirs, true)!.stanzas.length, 3);
  assert.equal(await openBuffer(theirs, [sshRsaIdentity(poolPem)]), plain);
  assert.equal(await openBuffer(theirs, [sshRsaIdentity(otherPem)]), plain);
  assert.equal(await openBuffer(theirs, [x25519Identity(xIdentityFile.split('\n').find((l) => l.startsWith('AGE-'))!)]), plain);
});

test('armor both ways', async () => {
  const plain = pseudoRandomBytes(100_000, 5);
  t.write('plain', plain);
  run('age', ['-a', '-R', t.path('spacelift.pub'), '-o', t.path('theirs.asc'), t.path('plain')]);
  assert.equal(await openBuffer(t.read('theirs.asc'), [sshRsaIdentity(poolPem)]), plain);
  t.write('ours.asc', await sealBuffer(plain, [sshRsaRecipient(ourPoolLine)], { armor: true }));
  assert.ok(run('age', ['-d', '-i', pool.key, t.path('ours.asc')]).equals(plain));
});

test('a file sealed by age to another key is refused with AGE_NO_IDENTITY', async () => {
  run('age', ['-R', t.path('other.pub'), '-o', t.path('theirs.age')], { input: 'not for you' });
  try {
    await openBuffer(t.read('theirs.age'), [sshRsaIdentity(poolPem)]);
    assert.unreachable('should not open');
  } catch (e) {
    assert.ok(e instanceof AgeError);
    assert.is((e as AgeError).code, 'AGE_NO_IDENTITY');
    assert.match((e as Error).message, /^No identity matches/);
  }
});

test('age refuses what we refuse: a payload bit flip in our file fails in age too', async () => {
  const plain = pseudoRandomBytes(70_000, 3);
  const file = await sealBuffer(plain, [sshRsaRecipient(ourPoolLine)]);
  file[file.length - 100]! ^= 1;
  t.write('bad.age', file);
  assert.throws(() => run('age', ['-d', '-i', pool.key, t.path('bad.age')]), /exited 1/);
});

test.run();
