// Refusals on the worker API with real clients (curl, openssl s_client): no
// client certificate, a certificate from another CA, a reset pool's old
// certificate, a retired key, a deleted pool; and the TLS 1.2 floor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opensslCsr, startTestServer, tokenCertificate, type TestServer } from './helpers/server.ts';

let srv: TestServer;
let dir: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'server-tls-test-'));
  srv = await startTestServer();
});

test.after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** curl a worker endpoint; returns [status, body]. */
function curl(path: string, cert?: { cert: string; key: string }, data = '{}'): [number, any] {
  const args = ['-sS', '--cacert', srv.caPath, '-o', '-', '-w', '\n%{http_code}', '-H', 'content-type: application/json', '-d', data];
  if (cert) args.push('--cert', cert.cert, '--key', cert.key);
  const out = execFileSync('curl', [...args, `${srv.url}${path}`], { encoding: 'utf8' });
  const i = out.lastIndexOf('\n');
  const text = out.slice(0, i);
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return [Number(out.slice(i + 1)), body];
}

/** A raw HTTP/1.1 request through `openssl s_client`; returns everything it printed. */
function sClient(extra: string[], request: string): string {
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${srv.port}`, '-CAfile', srv.caPath, '-quiet', '-ign_eof', ...extra], {
    input: request, encoding: 'utf8', timeout: 20_000,
  });
  return `${r.stdout}\n${r.stderr}`;
}

const rawRegister = 'POST /v1/worker/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}';

async function newPool(name: string): Promise<{ id: string; key: string; cert: string; token: string }> {
  const k = opensslCsr(dir, name);
  const r = await srv.admin('POST', '/v1/pools', { name, csr: k.csrPem });
  assert.is(r.status, 201, r.text);
  const cert = join(dir, `${name}.crt`);
  writeFileSync(cert, tokenCertificate(r.body.token));
  return { id: r.body.pool.id, key: k.keyPath, cert, token: r.body.token };
}

test('no client certificate: 401 CLIENT_CERT_REQUIRED (curl and s_client)', () => {
  const [status, body] = curl('/v1/worker/register');
  assert.is(status, 401);
  assert.is(body.error.code, 'CLIENT_CERT_REQUIRED');
  const out = sClient([], rawRegister);
  assert.match(out, /HTTP\/1\.1 401/);
  assert.match(out, /CLIENT_CERT_REQUIRED/);
});

test('a certificate from another CA is refused: 401 CLIENT_CERT_UNTRUSTED', () => {
  const k = opensslCsr(dir, 'stranger');
  const caKey = join(dir, 'other-ca.key');
  const caCrt = join(dir, 'other-ca.crt');
  const crt = join(dir, 'stranger.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caCrt, '-subj', '/CN=other CA', '-days', '2'], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', k.csrPath, '-CA', caCrt, '-CAkey', caKey, '-CAcreateserial', '-out', crt, '-days', '1'], { stdio: 'ignore' });
  const [status, body] = curl('/v1/worker/register', { cert: crt, key: k.keyPath });
  assert.is(status, 401);
  assert.is(body.error.code, 'CLIENT_CERT_UNTRUSTED');
  const out = sClient(['-cert', crt, '-key', k.keyPath], rawRegister);
  assert.match(out, /HTTP\/1\.1 401/);
});

test('a reset pool\'s old certificate is 403; the new token\'s certificate works', async () => {
  const p = await newPool('resetme');
  const [ok, reg] = curl('/v1/worker/register', { cert: p.cert, key: p.key });
  assert.is(ok, 200);
  assert.match(reg.workerId, /^wrk_/);
  const k2 = opensslCsr(dir, 'resetme2');
  const r = await srv.admin('POST', `/v1/pools/${p.id}/reset`, { csr: k2.csrPem });
  assert.is(r.status, 200, r.text);
  assert.not.equal(r.body.token, p.token);
  assert.equal(r.body.pool.keys.map((k: { state: string }) => k.state), ['revoked', 'active']);
  const [old, body] = curl('/v1/worker/register', { cert: p.cert, key: p.key });
  assert.is(old, 403);
  assert.is(body.error.code, 'CERT_REVOKED');
  assert.match(sClient(['-cert', p.cert, '-key', p.key], rawRegister), /HTTP\/1\.1 403/);
  const newCert = join(dir, 'resetme2.crt');
  writeFileSync(newCert, tokenCertificate(r.body.token));
  assert.is(curl('/v1/worker/register', { cert: newCert, key: k2.keyPath })[0], 200);
});

test('another pool\'s certificate asking for a run it was not given is 404 (curl)', async () => {
  const a = await newPool('owner');
  const b = await newPool('other');
  const [, regA] = curl('/v1/worker/register', { cert: a.cert, key: a.key });
  await srv.admin('POST', '/v1/stacks', { name: 'owned', pool: a.id, phases: [{ name: 'p', script: 'true' }] });
  const runId = (await srv.admin('POST', '/v1/stacks/owned/runs', {})).body.run.id;
  const [, polled] = curl('/v1/worker/poll?wait=5', { cert: a.cert, key: a.key }, JSON.stringify({ workerId: regA.workerId, accept: true, runId: null }));
  assert.is(polled.assignment.runId, runId);
  const [, regB] = curl('/v1/worker/register', { cert: b.cert, key: b.key });
  const [status, body] = curl(`/v1/worker/runs/${runId}/phases/0/start`, { cert: b.cert, key: b.key }, JSON.stringify({ workerId: regB.workerId }));
  assert.is(status, 404);
  assert.is(body.error.code, 'RUN_NOT_FOUND');
  const out = execFileSync('curl', ['-sS', '--cacert', srv.caPath, '--cert', b.cert, '--key', b.key, '-o', '/dev/null', '-w', '%{http_code}', `${srv.url}/v1/worker/runs/${runId}/workspace`], { encoding: 'utf8' });
  assert.is(out, '404');
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
});

test('key rotation: an added key works, a retired key is 403, the last key cannot be retired', async () => {
  const p = await newPool('rotate');
  const k2 = opensslCsr(dir, 'rotate2');
  const add = await srv.admin('POST', `/v1/pools/${p.id}/keys`, { csr: k2.csrPem });
  assert.is(add.status, 201, add.text);
  const cert2 = join(dir, 'rotate2.crt');
  writeFileSync(cert2, tokenCertificate(add.body.token));
  assert.is(curl('/v1/worker/register', { cert: cert2, key: k2.keyPath })[0], 200);
  const pool = (await srv.admin('GET', `/v1/pools/${p.id}`)).body.pool;
  assert.is(pool.keys.length, 2);
  const retire = await srv.admin('POST', `/v1/pools/${p.id}/keys/${pool.keys[0].id}/retire`);
  assert.is(retire.status, 200);
  assert.is(retire.body.key.state, 'retired');
  assert.is(curl('/v1/worker/register', { cert: p.cert, key: p.key })[0], 403);
  assert.is(curl('/v1/worker/register', { cert: cert2, key: k2.keyPath })[0], 200);
  const last = await srv.admin('POST', `/v1/pools/${p.id}/keys/${add.body.key.id}/retire`);
  assert.is(last.status, 409);
  assert.is(last.body.error.code, 'LAST_KEY');
});

test('a deleted pool\'s certificate is 403 POOL_DELETED', async () => {
  const p = await newPool('deleteme');
  assert.is(curl('/v1/worker/register', { cert: p.cert, key: p.key })[0], 200);
  const d = await srv.admin('DELETE', `/v1/pools/${p.id}`);
  assert.is(d.status, 200, d.text);
  const [status, body] = curl('/v1/worker/register', { cert: p.cert, key: p.key });
  assert.is(status, 403);
  assert.is(body.error.code, 'POOL_DELETED');
  assert.is((await srv.admin('GET', `/v1/pools/${p.id}`)).status, 404);
});

test('TLS below 1.2 is refused; TLS 1.2 and 1.3 work', () => {
  const old = sClient(['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], rawRegister);
  assert.not.match(old, /HTTP\/1\.1/);
  assert.match(old, /alert protocol version/);
  assert.match(sClient(['-tls1_2'], rawRegister), /HTTP\/1\.1 401/);
  assert.match(sClient(['-tls1_3'], rawRegister), /HTTP\/1\.1 401/);
});

test('the server certificate names localhost and 127.0.0.1 and chains to ca.crt', () => {
  const out = execFileSync('openssl', ['x509', '-in', join(srv.dataDir, 'server.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
  assert.match(out, /DNS:localhost/);
  assert.match(out, /IP Address:127\.0\.0\.1/);
  const v = spawnSync('openssl', ['verify', '-CAfile', srv.caPath, join(srv.dataDir, 'server.crt')], { encoding: 'utf8' });
  assert.is(v.status, 0, v.stderr);
});

test('distribution files from DATA/dist are public: no token, no certificate', () => {
  const dist = join(srv.dataDir, 'dist');
  mkdirSync(dist, { recursive: true });
  writeFileSync(join(dist, 'install.sh'), '#!/bin/sh\nBASE=__LAUNCHER_BASE_URL__\n');
  writeFileSync(join(dist, 'launcher-linux-x64'), 'binary');
  writeFileSync(join(dist, 'SHA256SUMS'), `${createHash('sha256').update('binary').digest('hex')}  launcher-linux-x64\n`);
  const script = execFileSync('curl', ['-sS', '--fail', '--cacert', srv.caPath, `${srv.url}/install.sh`], { encoding: 'utf8' });
  assert.match(script, /BASE=https:\/\/127\.0\.0\.1:\d+/);
  assert.is(execFileSync('curl', ['-sS', '--fail', '--cacert', srv.caPath, `${srv.url}/launcher-linux-x64`], { encoding: 'utf8' }), 'binary');
  // Everything else still needs credentials.
  assert.match(execFileSync('curl', ['-sS', '--cacert', srv.caPath, `${srv.url}/v1/pools`], { encoding: 'utf8' }), /ADMIN_TOKEN_MISSING/);
});

test.run();
