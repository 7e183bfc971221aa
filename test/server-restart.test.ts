// Durability and liveness with a real server process: kill -9 and restart keep
// pools, workers, queued runs, logs and workspaces; a second server on the same
// data directory refuses to start; silent workers go OFFLINE after their lease
// and their started phase fails as "worker lost" after the grace period.
//
// Timing: nothing here relies on a call arriving within a short window. The
// lease (5 s) only has to outlast the gap between two consecutive calls of one
// test; the grace period is long (2 min) wherever a test acts on an OFFLINE
// worker, and short (3 s) only in the tests that wait for it to run out, which
// check its length from the server's own timestamps instead of a clock here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

let srv: TestServer;
let dir: string;
let pool: { id: string; cert: ClientCert };
const SEALED = Buffer.from('age-encryption.org/v1\n-> stand-in\nopaque bytes');

/** Re-checks `fn` until it returns a value (state changes driven by the server's own timers). */
const until = <T>(what: string, fn: () => Promise<T | undefined>): Promise<T> => waitFor(fn, what, 120_000, 100);

const GRACE_SHORT_MS = 3000;
/** The short grace period, for the tests that wait for it to run out. */
const SHORT_GRACE = ['--worker-grace', `${GRACE_SHORT_MS}ms`];

async function register(meta: Record<string, string> = {}): Promise<string> {
  const r = await srv.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: null, metadata: meta, version: '0.1.0', host: {} });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

/** Milliseconds from the worker's last call to `at`, both as the server recorded them. */
async function silentFor(workerId: string, at: string): Promise<number> {
  const w = (await srv.admin('GET', '/v1/workers')).body.workers.find((x: { id: string }) => x.id === workerId);
  return Date.parse(at) - Date.parse(w.lastSeen);
}

const workerStatus = async (id: string): Promise<string> =>
  (await srv.admin('GET', '/v1/workers')).body.workers.find((w: { id: string }) => w.id === id)?.status;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'server-restart-test-'));
  srv = await startTestServer({ args: ['--worker-lease', '5s', '--worker-grace', '2m'] });
  const k = opensslCsr(dir, 'durable');
  const r = await srv.admin('POST', '/v1/pools', { name: 'durable', csr: k.csrPem });
  pool = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem } };
});

test.after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('data directory: CA key, server key and admin token file are 0600; the token is stored only hashed', () => {
  for (const f of ['ca.key', 'server.key', 'admin.token']) {
    assert.is(statSync(join(srv.dataDir, f)).mode & 0o777, 0o600, f);
  }
  const db = readFileSync(join(srv.dataDir, 'launcher.db')).toString('latin1') + readFileSync(join(srv.dataDir, 'launcher.db-wal')).toString('latin1');
  assert.not.ok(db.includes(srv.adminToken), 'the admin token is not in the database');
  assert.not.ok(srv.stderr.includes(srv.adminToken), 'the admin token is not in the server log');
});

test('a second server on the same data directory refuses to start, exit code 1', async () => {
  const r = await srv.runAnother();
  assert.is(r.code, 1);
  assert.match(r.stderr, /another server \(pid \d+\) is using the data directory/);
  // The first one still answers.
  assert.is((await srv.admin('GET', '/v1/pools')).status, 200);
});

test('kill -9 and restart: pools, workers, queued runs, logs and workspaces are all still there', async () => {
  const wid = await register({ instance_id: 'i-durable' });
  await srv.admin('POST', '/v1/stacks', { name: 'dur', pool: pool.id, phases: [{ name: 'plan', script: 'true' }, { name: 'apply', script: 'true' }] });
  const r1 = (await srv.admin('POST', '/v1/stacks/dur/runs', { workspace: SEALED.toString('base64') })).body.run.id;
  const a = (await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, r1);
  await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${r1}/phases/0/start`, { workerId: wid });
  await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${r1}/phases/0/logs?seq=0`, Buffer.from('before the crash\n'));
  const r2 = (await srv.admin('POST', '/v1/stacks/dur/runs', {})).body.run.id;
  const r3 = (await srv.admin('POST', '/v1/stacks/dur/runs', {})).body.run.id;
  const token = srv.adminToken;

  await srv.kill9();
  // A long lease while this test inspects things at leisure (the flag given last wins).
  await srv.start(['--worker-lease', '5m']);

  assert.is(srv.adminToken, token);
  const pools = (await srv.admin('GET', '/v1/pools')).body.pools;
  assert.equal(pools.map((p: { id: string }) => p.id), [pool.id]);
  const workers = (await srv.admin('GET', '/v1/workers?metadata=instance_id=i-durable')).body.workers;
  assert.equal(workers.map((w: { id: string }) => w.id), [wid]);
  assert.equal((await srv.admin('GET', `/v1/pools/${pool.id}/queue`)).body.runs.map((r: { id: string }) => r.id), [r2, r3]);
  const run = (await srv.admin('GET', `/v1/runs/${r1}`)).body.run;
  assert.is(run.state, 'RUNNING');
  assert.is(run.phases[0].state, 'RUNNING');
  assert.is((await srv.admin('GET', `/v1/runs/${r1}/logs`)).text, 'before the crash\n');
  assert.ok((await srv.admin('GET', `/v1/runs/${r1}/workspace`)).raw.equals(SEALED));

  // The same certificate and worker id carry on where they stopped.
  const st = await srv.worker(pool.cert, 'GET', `/v1/worker/runs/${r1}/phases/0`);
  assert.equal(st.body.logs, { nextSeq: 1, bytes: 17 });
  await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${r1}/phases/0/logs?seq=1`, Buffer.from('after\n'));
  const res = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${r1}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 2 });
  assert.is(res.status, 200, res.text);
  assert.is((await srv.admin('GET', `/v1/runs/${r1}/logs?phase=0`)).text, 'before the crash\nafter\n');
  for (const id of [r1, r2, r3]) await srv.admin('POST', `/v1/runs/${id}/cancel`);
  await srv.worker(pool.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
  await srv.restart();
});

test('a worker that comes back within the grace period reports normally', async () => {
  const wid = await register();
  await srv.admin('POST', '/v1/stacks', { name: 'lost', pool: pool.id, phases: [{ name: 'apply', script: 'true' }] });
  const runId = (await srv.admin('POST', '/v1/stacks/lost/runs', {})).body.run.id;
  await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null });
  await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid });
  await until('OFFLINE', async () => (await workerStatus(wid)) === 'OFFLINE' ? true : undefined);
  assert.is((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state, 'RUNNING', 'an OFFLINE worker\'s run waits out the grace period');
  const res = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 0 });
  assert.is(res.status, 200, res.text);
  assert.is((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state, 'FINISHED');
  assert.not.equal(await workerStatus(wid), 'OFFLINE');
  await srv.worker(pool.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('an assignment never acknowledged goes back to the queue when its worker goes silent', async () => {
  const wid = await register();
  const runId = (await srv.admin('POST', '/v1/stacks/lost/runs', {})).body.run.id;
  const a = (await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, runId);
  await until('requeued', async () => ((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state === 'QUEUED' ? true : undefined));
  // Another worker picks it up.
  const other = await register();
  const b = (await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: other, accept: true, runId: null })).body.assignment;
  assert.is(b.runId, runId);
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
});

test('an unacknowledged assignment is sent again when the launcher polls without it', async () => {
  const wid = await register();
  const runId = (await srv.admin('POST', '/v1/stacks/lost/runs', {})).body.run.id;
  const a = (await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, runId);
  // The reply was "lost": the launcher polls again knowing nothing.
  const again = (await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(again?.runId, runId);
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
  await srv.worker(pool.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('the grace countdown of an OFFLINE worker survives a kill -9 of the server', async () => {
  const wid = await register();
  const runId = (await srv.admin('POST', '/v1/stacks/lost/runs', {})).body.run.id;
  await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null });
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid })).status, 200);
  // OFFLINE under the long grace period; the server that comes back has the
  // short one, counted from when the worker went OFFLINE (kept in the database).
  await until('OFFLINE', async () => (await workerStatus(wid)) === 'OFFLINE' ? true : undefined);
  assert.is((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state, 'RUNNING');
  await srv.kill9();
  await srv.start(SHORT_GRACE);
  const run = await until('FAILED after restart', async () => {
    const r = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
    return r.state === 'FAILED' ? r : undefined;
  });
  assert.is(run.reason, 'worker lost');
  assert.ok(await silentFor(wid, run.endedAt) >= GRACE_SHORT_MS, 'the run failed only after the grace period (server timestamps)');
});

test('a silent worker goes OFFLINE after its lease; its started phase fails as worker lost after the grace period', async () => {
  // The server runs with the short grace period since the test before.
  const wid = await register();
  const runId = (await srv.admin('POST', '/v1/stacks/lost/runs', {})).body.run.id;
  const a = (await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, runId);
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid })).status, 200);
  // Silence: no poll, no call.
  await until('OFFLINE', async () => (await workerStatus(wid)) === 'OFFLINE' ? true : undefined);
  const run = await until('FAILED', async () => {
    const r = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
    return r.state === 'FAILED' ? r : undefined;
  });
  assert.is(run.reason, 'worker lost');
  assert.ok(await silentFor(wid, run.endedAt) >= GRACE_SHORT_MS, 'the run failed only after the grace period (server timestamps)');
  assert.is(run.phases[0].outcome, 'worker-lost');
  // The lost worker's late result is refused; the write phase is not re-run.
  const late = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 0 });
  assert.is(late.status, 409);
  assert.is(late.body.error.code, 'RESULT_CONFLICT');
  assert.equal((await srv.admin('GET', `/v1/pools/${pool.id}/queue`)).body.runs, []);
});

test('--rotate-admin-token (server stopped) replaces the token: the old one is 401, the new one works', async () => {
  const old = srv.adminToken;
  await srv.terminate();
  const rotated = await srv.runAnother(['--rotate-admin-token']);
  assert.is(rotated.code, 0, rotated.stderr);
  await srv.start();
  assert.is.not(srv.adminToken, old);
  assert.is((await srv.admin('GET', '/v1/pools', undefined, { token: old })).status, 401);
  assert.is((await srv.admin('GET', '/v1/pools')).status, 200);
});

test('SIGTERM: held polls are answered, the server exits 0 and leaves no pid file', async () => {
  const wid = await register();
  const held = srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=60', { workerId: wid, accept: true, runId: null });
  await srv.waitHeldPolls(1);
  const code = await srv.terminate();
  const answer = await held;
  assert.is(code, 0);
  assert.is(answer.status, 200);
  assert.is(answer.body.assignment, null);
  assert.not.ok(existsSync(join(srv.dataDir, 'server.pid')));
  await srv.start();
  await srv.worker(pool.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('a new --url host is added to the server certificate on restart; the CA and tokens stay valid', async () => {
  const caBefore = readFileSync(srv.caPath, 'utf8');
  await srv.restart(['--url', `https://ci.example.test:${srv.port}`]);
  const san = execFileSync('openssl', ['x509', '-in', join(srv.dataDir, 'server.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
  assert.match(san, /DNS:ci\.example\.test/);
  assert.match(san, /IP Address:127\.0\.0\.1/);
  assert.is(readFileSync(srv.caPath, 'utf8'), caBefore);
  // The pool's existing certificate is still accepted.
  assert.is((await srv.worker(pool.cert, 'POST', '/v1/worker/register', { metadata: {}, host: {} })).status, 200);
  // New tokens carry the --url.
  const k = opensslCsr(dir, 'urlpool');
  const r = await srv.admin('POST', '/v1/pools', { name: 'urlpool', csr: k.csrPem });
  assert.is(JSON.parse(Buffer.from(r.body.token, 'base64').toString()).serverUrl, `https://ci.example.test:${srv.port}`);
  await srv.restart();
});

test.run();
