import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { oversizedRsaPrivateKeyPem } from './helpers/der.ts';
import { prng } from './helpers/random.ts';
import { OpensslDir } from './helpers/openssl.ts';
import { LauncherError } from '../lib/errors.ts';
import {
  assertKeyMatchesCertificate, certificatePublicKeyPem, generatePoolKey, parsePoolPrivateKey, publicKeyPem,
  readPemBlocks, rsaModulusBits,
} from '../lib/keys.ts';
import { createCsr } from '../lib/csr.ts';
import { createCertificateAuthority, issuePoolCertificate } from '../lib/pki.ts';

const ssl = new OpensslDir();
// One 4096-bit key per file, made exactly as the seed says; 2048 elsewhere.
const seed = ssl.seedKeyAndCsr('spacelift', 4096);
const seedPub = ssl.ok(['pkey', '-in', 'spacelift.key', '-pubout']);
const ca = createCertificateAuthority({ bits: 2048 });

function expectError(fn: () => unknown, code: string, ...patterns: RegExp[]): LauncherError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof LauncherError, `expected LauncherError, got ${String(e)}`);
    const err = e as LauncherError;
    assert.is(err.code, code, err.message);
    for (const p of patterns) assert.match(err.message, p);
    return err;
  }
  assert.unreachable('expected an error');
  throw new Error('unreachable');
}

/** No long run of the secret's base64 body appears in the message. */
function assertNoSecret(message: string, secret: string): void {
  const body = secret.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  for (let i = 0; i + 16 <= body.length; i += 16) assert.not.ok(message.includes(body.slice(i, i + 16)), 'message leaks the key');
  const b64 = Buffer.from(secret).toString('base64');
  for (let i = 0; i + 16 <= b64.length; i += 16) assert.not.ok(message.includes(b64.slice(i, i + 16)), 'message leaks the key');
}

test('the seed key (PKCS#8) is accepted as raw PEM, base64 -w 0, wrapped base64, CRLF and escaped newlines', () => {
  const oneLine = execFileSync('base64', ['-w', '0', ssl.path('spacelift.key')], { encoding: 'utf8' });
  const wrapped = execFileSync('base64', [ssl.path('spacelift.key')], { encoding: 'utf8' });
  assert.not.ok(oneLine.includes('\n'));
  assert.ok(wrapped.trim().includes('\n'), 'plain base64 wraps lines');
  const forms = [seed.key, oneLine, wrapped, `\n  ${oneLine}\n`, seed.key.replace(/\n/g, '\r\n'), seed.key.trim().replace(/\n/g, '\\n')];
  for (const form of forms) {
    const key = parsePoolPrivateKey(form);
    assert.is(key.asymmetricKeyType, 'rsa');
    assert.is(key.asymmetricKeyDetails?.modulusLength, 4096);
    assert.is(publicKeyPem(key), seedPub);
  }
});

test('a PKCS#1 "RSA PRIVATE KEY" from openssl rsa -traditional is accepted raw and as base64', () => {
  const pkcs1 = ssl.ok(['rsa', '-in', 'spacelift.key', '-traditional']);
  assert.match(pkcs1, /^-----BEGIN RSA PRIVATE KEY-----/);
  ssl.write('pkcs1.key', pkcs1);
  const b64 = execFileSync('base64', ['-w', '0', ssl.path('pkcs1.key')], { encoding: 'utf8' });
  assert.is(publicKeyPem(parsePoolPrivateKey(pkcs1)), seedPub);
  assert.is(publicKeyPem(parsePoolPrivateKey(b64)), seedPub);
});

test('a one-line PEM body (no wrapping inside the PEM) is accepted', () => {
  const body = seed.key.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const pem = `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
  assert.is(publicKeyPem(parsePoolPrivateKey(pem)), seedPub);
});

test('unusable keys are refused with KEY_INVALID naming the source and what is accepted, never the value', () => {
  const encrypted = ssl.ok(['pkcs8', '-topk8', '-in', 'spacelift.key', '-v2', 'aes-256-cbc', '-passout', 'pass:secret']);
  const legacyEncrypted = ssl.ok(['rsa', '-in', 'spacelift.key', '-traditional', '-aes256', '-passout', 'pass:secret']);
  const ec = ssl.ok(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  const ed = ssl.ok(['genpkey', '-algorithm', 'ED25519']);
  const ecLegacy = ssl.ok(['ecparam', '-genkey', '-name', 'prime256v1', '-noout']);
  ssl.ok(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'ssh.key']);
  execFileSync('ssh-keygen', ['-p', '-N', '', '-f', ssl.path('ssh.key'), '-o'], { stdio: 'ignore' }); // rewrites it in OpenSSH format
  const openssh = ssl.read('ssh.key');
  assert.match(openssh, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  const small = ssl.ok(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']);
  const cert = issuePoolCertificate(ca, seed.csr, { poolId: 'p' }).certPem;
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['   \n', /it is empty/],
    ['not a key at all!', /neither PEM nor valid base64/],
    [Buffer.from('hello world, no pem here').toString('base64'), /does not decode to a PEM file/],
    [encrypted, /encrypted with a passphrase/],
    [legacyEncrypted, /encrypted with a passphrase/],
    [ec, /an EC key, and pool keys are RSA/],
    [ed, /an Ed25519 key, and pool keys are RSA/],
    [ecLegacy, /an EC key, and pool keys are RSA/],
    [openssh, /OpenSSH-format key/],
    [small, /1024 bits, and at least 2048/],
    [cert, /holds a certificate, not the private key/],
    [seedPub, /public key, not the private key/],
    [seed.csr, /holds the CSR/],
    [seed.key.replace('-----END PRIVATE KEY-----', '-----END RSA PRIVATE KEY-----'), /ends with "RSA PRIVATE KEY"/],
    [seed.key.slice(0, 900), /no complete PEM block/],
    [seed.key.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1!!!'), /does not hold valid base64/],
    [seed.key.replace(/\n[A-Za-z0-9+/]{4}/, '\nAAAA'), /not a readable private key/],
    [seed.key + seed.key, /2 private keys/],
    [seed.key + ' '.repeat(70 * 1024), /longer than 64 KiB/],
  ];
  for (const [value, why] of cases) {
    const err = expectError(() => parsePoolPrivateKey(value), 'KEY_INVALID', /^Cannot use SPACELIFT_POOL_PRIVATE_KEY: /, why, /base64 -w 0 spacelift\.key/);
    assert.is(err.exitCode, 2);
    if (value.length > 32) assertNoSecret(err.message, value);
  }
  expectError(() => parsePoolPrivateKey('nope', '/etc/pool.key'), 'KEY_INVALID', /^Cannot use \/etc\/pool\.key: /);
});

test('a key above 16384 bits is refused, as the server refuses its CSR', () => {
  // The DER pre-check agrees with OpenSSL on real keys of every layout.
  assert.is(rsaModulusBits(readPemBlocks(seed.key)[0]!.der, 'pkcs8'), 4096);
  assert.is(rsaModulusBits(readPemBlocks(seedPub)[0]!.der, 'spki'), 4096);
  const pkcs1 = ssl.ok(['pkey', '-in', 'spacelift.key', '-traditional']);
  assert.is(rsaModulusBits(readPemBlocks(pkcs1)[0]!.der, 'pkcs1'), 4096);
  const pem = oversizedRsaPrivateKeyPem(20480);
  assert.ok(pem.length < 64 * 1024, 'within the size limit, so only the bit count refuses it');
  for (let i = 0; i < 3; i++) {
    const err = expectError(() => parsePoolPrivateKey(pem), 'KEY_INVALID', /20480 bits, and at most 16384 are accepted/);
    assertNoSecret(err.message, pem);
    expectError(() => parsePoolPrivateKey(Buffer.from(pem).toString('base64')), 'KEY_INVALID', /at most 16384/);
    // Asking node:crypto for such a key's size leaves an OpenSSL error queued that
    // breaks the next unrelated operation; refusing it must leave crypto working.
    assert.is(parsePoolPrivateKey(seed.key).asymmetricKeyDetails?.modulusLength, 4096);
  }
});

test('publicKeyPem and certificatePublicKeyPem agree with openssl', () => {
  const issued = issuePoolCertificate(ca, seed.csr, { poolId: 'pool-a' });
  ssl.write('pool.pem', issued.certPem);
  assert.is(certificatePublicKeyPem(issued.certPem), ssl.ok(['x509', '-in', 'pool.pem', '-pubkey', '-noout']));
  assert.is(certificatePublicKeyPem(issued.certPem), seedPub);
  assert.is(issued.publicKeyPem, seedPub);
  expectError(() => certificatePublicKeyPem('garbage'), 'CERT_INVALID', /not a PEM X\.509 certificate/);
});

test('the key matches its certificate; a different key is refused naming both', () => {
  const issued = issuePoolCertificate(ca, seed.csr, { poolId: 'pool-a' });
  assertKeyMatchesCertificate(parsePoolPrivateKey(seed.key), issued.certPem);
  const other = parsePoolPrivateKey(generatePoolKey(2048).privateKeyPem);
  const err = expectError(() => assertKeyMatchesCertificate(other, issued.certPem), 'KEY_MISMATCH',
    /^SPACELIFT_POOL_PRIVATE_KEY does not match the certificate in SPACELIFT_TOKEN: /, /SHA256:/);
  assert.is(err.exitCode, 2);
  expectError(() => assertKeyMatchesCertificate(other, issued.certPem, { key: 'pool.key', cert: 'pool.pem' }), 'KEY_MISMATCH',
    /^pool\.key does not match pool\.pem: /);
});

test('generatePoolKey makes PKCS#8 keys openssl checks, in the requested size only', () => {
  const k = generatePoolKey(2048);
  assert.match(k.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  ssl.write('gen.key', k.privateKeyPem);
  assert.match(ssl.ok(['pkey', '-in', 'gen.key', '-check', '-noout']), /valid/i);
  assert.match(ssl.ok(['pkey', '-in', 'gen.key', '-text', '-noout']), /2048 bit/);
  assert.is(ssl.ok(['pkey', '-in', 'gen.key', '-pubout']), k.publicKeyPem);
  for (const bad of [1024, 2047, 32768, 2048.5]) expectError(() => generatePoolKey(bad), 'KEY_SIZE_INVALID', /expected 2048 to 16384 bits/);
});

test('createCsr is accepted by openssl req -verify, for our key and for the seed key', () => {
  const k = generatePoolKey(2048);
  for (const [name, keyPem, pub] of [['ours', k.privateKeyPem, k.publicKeyPem], ['seed', seed.key, seedPub]] as const) {
    const csr = createCsr(keyPem, { commonName: `pool-${name}`, organization: 'Acme' });
    ssl.write(`${name}.csr`, csr);
    const r = ssl.run(['req', '-verify', '-noout', '-in', `${name}.csr`]);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /verify OK/);
    const text = ssl.ok(['req', '-in', `${name}.csr`, '-noout', '-text']);
    assert.match(text, new RegExp(`CN ?= ?pool-${name}`));
    assert.match(text, /O ?= ?Acme/);
    assert.match(text, /sha256WithRSAEncryption/);
    assert.is(ssl.ok(['req', '-in', `${name}.csr`, '-pubkey', '-noout']), pub);
  }
});

test('fuzz: mutated key values end in KEY_INVALID (or still parse as an RSA key), never another exception', () => {
  const rand = prng(0x5eed); // seeded, so failures reproduce
  const pick = (n: number) => Math.floor(rand() * n);
  const small = generatePoolKey(2048).privateKeyPem;
  const der = Buffer.from(small.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const pem = (d: Buffer, label = 'PRIVATE KEY') => `-----BEGIN ${label}-----\n${d.toString('base64')}\n-----END ${label}-----\n`;
  let refused = 0;
  const total = 600;
  for (let i = 0; i < total; i++) {
    const m = Buffer.from(der);
    let input: string;
    switch (i % 5) {
      case 0: // bit flips in the DER, as PEM
        for (let j = 0, n = 1 + pick(4); j < n; j++) { const p = pick(m.length); m[p] = m[p]! ^ (1 << pick(8)); }
        input = pem(m, i % 2 ? 'PRIVATE KEY' : 'RSA PRIVATE KEY');
        break;
      case 1: // truncated DER
        input = pem(m.subarray(0, pick(m.length)));
        break;
      case 2: { // flips in the one-line base64 form
        const b = Buffer.from(Buffer.from(small).toString('base64'));
        for (let j = 0, n = 1 + pick(3); j < n; j++) { const p = pick(b.length); b[p] = b[p]! ^ (1 << pick(7)); }
        input = b.toString('latin1');
        break;
      }
      case 3: // truncated base64 form
        input = Buffer.from(small).toString('base64').slice(0, pick(2300));
        break;
      default: // random bytes in a PEM
        input = pem(Buffer.from(Array.from({ length: pick(1500) }, () => pick(256))));
    }
    try {
      const k = parsePoolPrivateKey(input);
      assert.is(k.asymmetricKeyType, 'rsa');
    } catch (e) {
      if (!(e instanceof LauncherError) || e.code !== 'KEY_INVALID') throw new Error(`iteration ${i}: expected KEY_INVALID, got ${e instanceof Error ? e.stack : String(e)}`);
      assertNoSecret(e.message, small);
      refused++;
    }
  }
  assert.ok(refused > total * 0.6, `only ${refused} of ${total} mutations refused`);
});

test('lib/keys.ts stays free of node-forge: the launcher daemon parses its key without loading it', () => {
  // createCsr (lib/csr.ts) is the one key operation that needs forge; the
  // daemon imports lib/keys.ts and would otherwise keep forge in memory.
  const src = readFileSync(new URL('../lib/keys.ts', import.meta.url), 'utf8');
  assert.not.match(src, /from ['"]node-forge['"]|require\(['"]node-forge['"]\)|from ['"]\.\/csr\.ts['"]/);
  assert.match(readFileSync(new URL('../lib/csr.ts', import.meta.url), 'utf8'), /from 'node-forge'/);
});

test.after(() => ssl.cleanup());
test.run();
