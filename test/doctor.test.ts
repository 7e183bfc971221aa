// `launcher doctor` as a subprocess against a real server and the real
// dockerd: every check passes for a good configuration; a missing Docker
// socket, a key that does not match and a refused certificate each fail
// with a fix, and the exit code says so.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, opensslCsr, type TestServer } from './helpers/server.ts';
import { createPool, runLauncher, seedPoolKey, tempDir, type PoolKey } from './helpers/launcher.ts';
import { formatChecks, allPassed } from '../lib/launcher/doctor.ts';

let srv: TestServer;
let key: PoolKey;
let other: PoolKey;
let pool: { poolId: string; token: string };
const dirs: Array<{ remove(): void }> = [];
function dir(): string {
  const d = tempDir('launcher-doctor-');
  dirs.push(d);
  return d.path;
}
const doctor = (token: string, keyB64: string, env: Record<string, string> = {}, args: string[] = []) =>
  runLauncher({ token, keyB64, stateDir: dir(), env, args: ['doctor', ...args] });

test.before(async () => {
  key = seedPoolKey(4096);
  other = seedPoolKey(2048, 'other');
  srv = await startTestServer();
  pool = await createPool(srv, 'doctor', key.csrPem);
});

test('a good configuration passes every check (exit 0)', async () => {
  const r = await doctor(pool.token, key.keyB64);
  assert.is(r.code, 0, r.out);
  for (const name of ['configuration', 'token', 'private key', 'key matches certificate', 'certificate validity', 'docker', 'server', 'clock skew']) {
    assert.match(r.out, new RegExp(`^PASS  ${name}:`, 'm'));
  }
  assert.match(r.out, /All checks passed/);
});

test('--json gives every check with its status', async () => {
  const r = await doctor(pool.token, key.keyB64, {}, ['--json']);
  assert.is(r.code, 0, r.out);
  const j = JSON.parse(r.out);
  assert.is(j.ok, true);
  assert.ok(j.checks.every((c: { status: string }) => c.status === 'pass'));
});

test('an unreachable Docker socket fails the docker check with a fix (exit 1)', async () => {
  const r = await doctor(pool.token, key.keyB64, { DOCKER_HOST: 'unix:///nonexistent' });
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /^FAIL  docker: Cannot reach the Docker Engine at unix:\/\/\/nonexistent/m);
  assert.match(r.out, /fix: start dockerd/);
  assert.match(r.out, /^PASS  server:/m, 'other checks still run');
});

test('a key that does not match fails and skips the server check', async () => {
  const r = await doctor(pool.token, other.keyB64);
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /^FAIL  key matches certificate:/m);
  assert.match(r.out, /^SKIP  server:/m);
  assert.not.ok(r.out.includes(other.keyB64.slice(100, 140)));
});

test('a refused certificate (pool reset) fails the server check saying what to do', async () => {
  const d = dir();
  const k = opensslCsr(d, 'reset-me', 2048);
  const p = await createPool(srv, 'doctor-reset', k.csrPem);
  const keyB64 = Buffer.from(k.keyPem).toString('base64');
  assert.is((await doctor(p.token, keyB64)).code, 0);
  const fresh = opensslCsr(d, 'fresh', 2048);
  assert.is((await srv.admin('POST', `/v1/pools/${p.poolId}/reset`, { csr: fresh.csrPem })).status, 200);
  const r = await doctor(p.token, keyB64);
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /^FAIL  server: .* refused the pool certificate \(403\)/m);
  assert.match(r.out, /get a new token/);
});

test('a token that does not decode fails with a fix; the rest is skipped, not failed', async () => {
  const r = await doctor('bm90IGEgdG9rZW4=', key.keyB64);
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /^FAIL  token:/m);
  assert.match(r.out, /^SKIP  certificate validity:/m);
});

test('formatChecks and allPassed: warnings pass, skips do not', () => {
  const text = formatChecks([{ name: 'a', status: 'warn', detail: 'soon', fix: 'rotate' }, { name: 'b', status: 'pass', detail: 'ok' }]);
  assert.is(text, 'WARN  a: soon\n      fix: rotate\nPASS  b: ok\n');
  assert.ok(allPassed([{ name: 'a', status: 'warn', detail: '' }]));
  assert.not.ok(allPassed([{ name: 'a', status: 'skip', detail: '' }]));
});

test.after(async () => {
  await srv?.stop();
  key?.dir.cleanup();
  other?.dir.cleanup();
  for (const d of dirs) d.remove();
});
test.run();
