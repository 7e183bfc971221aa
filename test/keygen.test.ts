import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { OpensslDir } from './helpers/openssl.ts';
import { run } from '../lib/cli/keygen.ts';
import { LauncherError } from '../lib/errors.ts';
import { assertKeyMatchesCertificate, parsePoolPrivateKey } from '../lib/keys.ts';
import { createCertificateAuthority, issuePoolCertificate } from '../lib/pki.ts';

const ssl = new OpensslDir();
const root = new URL('..', import.meta.url).pathname;

async function keygen(argv: string[], cwd = ssl.dir): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => { out += d; });
  stderr.on('data', (d) => { err += d; });
  const code = await run({ argv, env: {}, stdin: Readable.from([]), stdout, stderr, cwd });
  return { code, out, err };
}

async function expectFailure(argv: string[], code: string, pattern: RegExp): Promise<LauncherError> {
  try {
    await keygen(argv);
  } catch (e) {
    assert.ok(e instanceof LauncherError, String(e));
    const err = e as LauncherError;
    assert.is(err.code, code, err.message);
    assert.match(err.message, pattern);
    return err;
  }
  assert.unreachable('expected keygen to fail');
  throw new Error('unreachable');
}

test('keygen writes a 0600 PKCS#8 key and a CSR openssl verifies, and prints next steps without the key', async () => {
  const r = await keygen(['--bits', '2048', '--out', 'k2048']);
  assert.is(r.code, 0);
  const key = ssl.read('k2048.key');
  assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.is(statSync(ssl.path('k2048.key')).mode & 0o777, 0o600);
  const v = ssl.run(['req', '-verify', '-noout', '-in', 'k2048.csr']);
  assert.is(v.status, 0, v.stderr);
  assert.match(v.stdout + v.stderr, /verify OK/);
  assert.match(ssl.ok(['pkey', '-in', 'k2048.key', '-check', '-noout']), /valid/i);
  assert.match(ssl.ok(['pkey', '-in', 'k2048.key', '-text', '-noout']), /2048 bit/);
  assert.is(ssl.ok(['req', '-in', 'k2048.csr', '-pubkey', '-noout']), ssl.ok(['pkey', '-in', 'k2048.key', '-pubout']));
  assert.match(r.out, /launcher admin pool create NAME --csr k2048\.csr/);
  assert.match(r.out, /SPACELIFT_POOL_PRIVATE_KEY="\$\(base64 -w 0 k2048\.key\)"/);
  const body = key.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  for (let i = 0; i + 16 <= body.length; i += 16) assert.not.ok(r.out.includes(body.slice(i, i + 16)), 'stdout leaks the key');
  assert.is(r.err, '');
  // The key works as the launcher will read it, with the certificate issued from the CSR.
  const ca = createCertificateAuthority({ bits: 2048 });
  const cert = issuePoolCertificate(ca, ssl.read('k2048.csr'), { poolId: 'p' }).certPem;
  const env = execFileSync('base64', ['-w', '0', ssl.path('k2048.key')], { encoding: 'utf8' });
  assertKeyMatchesCertificate(parsePoolPrivateKey(env), cert);
});

test('keygen refuses to overwrite either file without --force, and replaces both with it', async () => {
  await keygen(['--bits', '2048', '--out', 'again']);
  const before = ssl.read('again.key');
  await expectFailure(['--bits', '2048', '--out', 'again'], 'FILE_EXISTS', /^Refusing to overwrite again\.key: it already exists; pass --force to replace it$/);
  writeFileSync(ssl.path('csronly.csr'), 'x');
  await expectFailure(['--bits', '2048', '--out', 'csronly'], 'FILE_EXISTS', /Refusing to overwrite csronly\.csr/);
  assert.not.ok(existsSync(ssl.path('csronly.key')), 'nothing written when refusing');
  assert.is(ssl.read('again.key'), before);
  writeFileSync(ssl.path('again.key'), before, { mode: 0o644 });
  const r = await keygen(['--bits', '2048', '--out', 'again', '--force']);
  assert.is(r.code, 0);
  assert.is.not(ssl.read('again.key'), before);
  assert.is(statSync(ssl.path('again.key')).mode & 0o777, 0o600);
  assert.is(ssl.run(['req', '-verify', '-noout', '-in', 'again.csr']).status, 0);
});

test('keygen --out may name a directory; bad flags are usage errors (exit 2)', async () => {
  mkdirSync(ssl.path('pool'));
  assert.is((await keygen(['--bits', '2048', '--out', 'pool/prod', '--cn', 'prod pool'])).code, 0);
  assert.match(ssl.ok(['req', '-in', 'pool/prod.csr', '-noout', '-subject']), /CN ?= ?prod pool/);
  for (const bits of ['1024', '3000', '32768', 'abc', '4096.0', '']) {
    const e = await expectFailure(['--bits', bits], 'CONFIG_INVALID', /^Cannot use --bits .*: expected 2048 to 16384 in steps of 1024 \(e\.g\. --bits 4096\)$/);
    assert.is(e.exitCode, 2);
  }
  await expectFailure(['--frobnicate'], 'USAGE', /Unknown option --frobnicate for launcher keygen: expected one of --out, --bits, --cn, --force, --help \(see launcher keygen --help\)/);
  await expectFailure(['--out', 'missing/dir/k', '--bits', '2048'], 'CONFIG_INVALID', /directory missing\/dir does not exist/);
  const help = await keygen(['--help']);
  assert.is(help.code, 0);
  assert.match(help.out, /Usage: launcher keygen/);
});

test('launcher keygen through the entry, with defaults: spacelift.key (RSA 4096) and spacelift.csr in the cwd', () => {
  const dir = ssl.path('entry');
  mkdirSync(dir);
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(root, 'launcher.ts'), 'keygen'], { cwd: dir, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(readFileSync(join(dir, 'spacelift.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.match(ssl.ok(['req', '-in', 'entry/spacelift.csr', '-noout', '-text']), /Public-Key: \(4096 bit\)/);
  assert.is(ssl.run(['req', '-verify', '-noout', '-in', 'entry/spacelift.csr']).status, 0);
  const again = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(root, 'launcher.ts'), 'keygen'], { cwd: dir, encoding: 'utf8' });
  assert.is(again.status, 1);
  assert.match(again.stderr, /launcher keygen: Refusing to overwrite spacelift\.key/);
});

test.after(() => ssl.cleanup());
test.run();
