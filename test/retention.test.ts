// Retention and `launcher admin gc`, end to end: a real server subprocess,
// the admin CLI as a subprocess, runs with logs and sealed workspaces played
// through the worker API. Old finished runs go with their files, active runs
// never do, OFFLINE workers past the limit are removed (and register afresh
// when they come back), orphaned files are found, a dry run removes nothing
// and reports the same figures, and the server's own sweep (--retain-runs)
// runs without being asked.
//
// Timing: ages are compared with the server's own timestamps, and waits are
// for conditions (a run old enough, a dry run that lists a worker). The worker
// lease (5 s) only has to outlast the gap between two calls of one test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';
import { parseRetention, workersToRemove } from '../lib/retention/policy.ts';
import { parseDuration } from '../lib/duration.ts';
import { runLauncher, type CliResult } from './helpers/cli.ts';
import { waitFor } from './helpers/wait.ts';

const SEALED = (n: number): Buffer => Buffer.concat([Buffer.from('age-encryption.org/v1\n-> stand-in\n'), Buffer.alloc(n, 9)]);

let srv: TestServer;
let tmp: string;
let pool: { id: string; cert: ClientCert };

const admin = (args: string[]): Promise<CliResult> => runLauncher(['admin', '--data', srv.dataDir, ...args]);

async function register(s: TestServer, meta: Record<string, string>): Promise<string> {
  const r = await s.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: null, metadata: meta, version: '0.1.0', host: {} });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

/** A finished run with `chunks` log chunks and a sealed workspace of `ws` bytes (0: none). */
async function finishedRun(s: TestServer, workerId: string, chunks: string[], ws: number): Promise<string> {
  const t = await s.admin('POST', '/v1/stacks/gc/runs', ws ? { workspace: SEALED(ws).toString('base64') } : {});
  assert.is(t.status, 201, t.text);
  const id = t.body.run.id;
  const a = await s.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId, accept: true, runId: null });
  assert.is(a.body.assignment?.runId, id, a.text);
  assert.is((await s.worker(pool.cert, 'POST', `/v1/worker/runs/${id}/phases/0/start`, { workerId })).status, 200);
  for (let i = 0; i < chunks.length; i++) {
    assert.is((await s.worker(pool.cert, 'POST', `/v1/worker/runs/${id}/phases/0/logs?seq=${i}`, Buffer.from(chunks[i]!))).status, 200);
  }
  const r = await s.worker(pool.cert, 'POST', `/v1/worker/runs/${id}/phases/0/result`, { workerId, outcome: 'succeeded', exitCode: 0, logSeq: chunks.length });
  assert.is(r.status, 200, r.text);
  return id;
}

/** Waits until run `id` ended more than `ms` ago (by its endedAt, the server's clock, which is this machine's). */
async function olderThan(id: string, ms: number): Promise<void> {
  const endedAt = Date.parse((await srv.admin('GET', `/v1/runs/${id}`)).body.run.endedAt);
  assert.ok(Number.isFinite(endedAt), `run ${id} has ended`);
  await waitFor(() => Date.now() - endedAt > ms, `run ${id} to be older than ${ms} ms`, 120_000, 100);
}

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'retention-test-'));
  srv = await startTestServer({ args: ['--worker-lease', '5s', '--worker-grace', '1h'] });
  const k = opensslCsr(tmp, 'gc');
  const r = await srv.admin('POST', '/v1/pools', { name: 'gc', csr: k.csrPem });
  pool = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem } };
  assert.is((await srv.admin('POST', '/v1/stacks', { name: 'gc', pool: pool.id, phases: [{ name: 'plan', script: 'true' }] })).status, 201);
});

test.after(async () => {
  await srv?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('retention periods: Go durations or whole days, more than zero; workers holding a run stay', () => {
  assert.is(parseRetention('30d', '--retain-runs', parseDuration), 30 * 86_400_000);
  assert.is(parseRetention('1h30m', '--retain-runs', parseDuration), 5_400_000);
  assert.throws(() => parseRetention('0', '--retain-runs', parseDuration), /Invalid --retain-runs: "0" must be more than zero \(try 30d\)/);
  assert.throws(() => parseRetention('soon', '--retain-runs', parseDuration), /Invalid --retain-runs: "soon" is not a duration \(try 30d, 720h or 90m\)/);
  const now = Date.parse('2026-12-02T12:00:00Z');
  const w = (id: string, o: Partial<Parameters<typeof workersToRemove>[0][0]>) => ({ id, offline: 0, offline_since: null, last_seen: '2026-12-01T00:00:00Z', current_run: null, deregistered_at: null, ...o });
  const ids = workersToRemove([
    w('old-offline', { offline: 1, offline_since: '2026-12-01T00:00:00Z' }),
    w('old-offline-busy', { offline: 1, offline_since: '2026-12-01T00:00:00Z', current_run: 'run_x' }),
    w('new-offline', { offline: 1, offline_since: '2026-12-02T11:30:00Z' }),
    w('online', {}),
    w('left', { deregistered_at: '2026-12-01T00:00:00Z' }),
  ], now, { retainOfflineWorkersMs: 3600_000 });
  assert.equal(ids, ['old-offline', 'left']);
  assert.equal(workersToRemove([w('x', { offline: 1, offline_since: '2020-01-01T00:00:00Z' })], now, {}), [], 'no policy: nothing');
});

test('gc --dry-run reports, gc removes: old finished runs with their logs and workspaces, never an active run', async () => {
  const wid = await register(srv, { instance_id: 'i-gc' });
  const chunks = ['alpha\n', 'beta beta\n', 'x'.repeat(1000)];
  const old1 = await finishedRun(srv, wid, chunks, 2000);
  const old2 = await finishedRun(srv, wid, ['one line\n'], 0);
  // The cut-off below is 5 s: a 5 s margin for the gc to follow `recent` on a loaded machine.
  await olderThan(old2, 5000);
  // Newer than the cut-off below, and active ones (queued; unconfirmed is covered by state).
  const recent = await finishedRun(srv, wid, ['recent\n'], 100);
  const queued = (await srv.admin('POST', '/v1/stacks/gc/runs', {})).body.run.id;
  const logBytes = chunks.reduce((n, c) => n + c.length, 0) + 'one line\n'.length;
  const wsBytes = SEALED(2000).length;

  // Over the API first (moments after `recent` ended, so it is inside the 5 s).
  const dry = await srv.admin('POST', '/v1/gc', { dryRun: true, retainRuns: '5s' });
  assert.is(dry.status, 200, dry.text);
  const d = dry.body;
  assert.is(d.runs.count, 2, dry.text);
  assert.is(d.runs.logBytes, logBytes);
  assert.is(d.runs.workspaceBytes, wsBytes);
  assert.is(d.bytes, logBytes + wsBytes + d.orphans.bytes);
  assert.is(d.dryRun, true);
  for (const id of [old1, old2, recent, queued]) assert.is((await srv.admin('GET', `/v1/runs/${id}`)).status, 200, 'a dry run removes nothing');
  assert.ok(existsSync(join(srv.dataDir, 'logs', old1)));
  assert.ok(existsSync(join(srv.dataDir, 'workspaces', `${old1}.age`)));
  const text = await admin(['gc', '--dry-run', '--retain-runs', '1s']);
  assert.match(text.out, /^Would remove [23] runs that ended before \S+: .* of logs, .* of sealed workspaces/m);
  assert.match(text.out, /^Would free .* in all$/m);

  const real = await admin(['gc', '--retain-runs', '1s', '--json']);
  assert.is(real.code, 0, real.err);
  const r = JSON.parse(real.out);
  assert.is(r.dryRun, false);
  assert.ok(r.runs.count >= 2);
  assert.ok(r.bytes >= logBytes + wsBytes);
  for (const id of [old1, old2]) {
    assert.is((await srv.admin('GET', `/v1/runs/${id}`)).status, 404, `${id} removed`);
    assert.not.ok(existsSync(join(srv.dataDir, 'logs', id)), 'its logs removed');
    assert.not.ok(existsSync(join(srv.dataDir, 'workspaces', `${id}.age`)), 'its workspace removed');
  }
  assert.is((await srv.admin('GET', `/v1/runs/${queued}`)).body.run.state, 'QUEUED', 'an active run stays');
  // Nothing that ended over an hour ago is left.
  const again = JSON.parse((await admin(['gc', '--retain-runs', '1h', '--json'])).out);
  assert.is(again.runs.count, 0);
  // Cancel the queued run so later tests start clean.
  assert.is((await srv.admin('POST', `/v1/runs/${queued}/cancel`)).status, 200);
});

test('gc refuses a bad period naming the flag; without a retention it keeps runs and says so', async () => {
  const bad = await admin(['gc', '--retain-runs=-5m']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /Invalid --retain-runs: "-5m" must be more than zero/);
  const api = await srv.admin('POST', '/v1/gc', { retainRuns: 'forever' });
  assert.is(api.status, 400);
  assert.is(api.body.error.code, 'INVALID_FIELD');
  const keep = await admin(['gc', '--dry-run']);
  assert.is(keep.code, 0, keep.err);
  assert.match(keep.out, /^Runs: kept \(no --retain-runs on the server or on this command\)$/m);
});

test('workers OFFLINE past the limit are removed (not one holding a run); one that comes back registers afresh', async () => {
  for (const q of (await srv.admin('GET', '/v1/runs?state=QUEUED')).body.runs) await srv.admin('POST', `/v1/runs/${q.id}/cancel`);
  const gone = await register(srv, { instance_id: 'i-gone' });
  const holding = await register(srv, { instance_id: 'i-holding' });
  const runId = (await srv.admin('POST', '/v1/stacks/gc/runs', {})).body.run.id;
  const a = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: holding, accept: true, runId: null });
  assert.is(a.body.assignment?.runId, runId, a.text);
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: holding })).status, 200);
  // Both go silent: their 5 s leases expire (OFFLINE); the grace of the holder is an hour.
  const status = async (id: string) => (await srv.admin('GET', '/v1/workers')).body.workers.find((w: { id: string }) => w.id === id)?.status;
  await waitFor(async () => (await status(gone)) === 'OFFLINE' && (await status(holding)) === 'OFFLINE', 'both workers to go OFFLINE', 120_000, 100);
  // Once `gone` has been OFFLINE for over a second, a dry run lists it.
  await waitFor(async () => {
    const dry = await admin(['gc', '--dry-run', '--retain-offline-workers', '1s', '--json']);
    assert.is(dry.code, 0, dry.err);
    return (JSON.parse(dry.out).workers.ids as string[]).includes(gone);
  }, 'a dry run to list the OFFLINE worker', 120_000, 200);
  const r = await admin(['gc', '--retain-offline-workers', '1s', '--json']);
  assert.is(r.code, 0, r.err);
  const rep = JSON.parse(r.out);
  assert.ok(rep.workers.ids.includes(gone), r.out);
  assert.not.ok(rep.workers.ids.includes(holding), 'a worker holding a started phase stays');
  const listed = (await srv.admin('GET', '/v1/workers')).body.workers.map((w: { id: string }) => w.id);
  assert.not.ok(listed.includes(gone));
  assert.ok(listed.includes(holding));
  // The removed worker's launcher comes back: WORKER_NOT_FOUND, then it registers again.
  const poll = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: gone, accept: true, runId: null });
  assert.is(poll.status, 404);
  assert.is(poll.body.error.code, 'WORKER_NOT_FOUND');
  const back = await srv.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: gone, metadata: { instance_id: 'i-gone' }, version: '0.1.0', host: {} });
  assert.is(back.status, 200);
  assert.is.not(back.body.workerId, gone);
  // Clean up: the holder reports, so its run ends.
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: holding, outcome: 'succeeded', exitCode: 0, logSeq: 0 })).status, 200);
});

test('orphaned files (no run row, older than an hour) are found and removed; young ones are left alone', async () => {
  const oldLog = join(srv.dataDir, 'logs', 'run_0000000000000001');
  mkdirSync(oldLog, { recursive: true });
  writeFileSync(join(oldLog, '0.log'), 'left behind by a crash\n');
  const oldWs = join(srv.dataDir, 'workspaces', 'run_0000000000000002.age');
  writeFileSync(oldWs, SEALED(300));
  const young = join(srv.dataDir, 'workspaces', 'run_0000000000000003.age');
  writeFileSync(young, SEALED(10));
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  for (const p of [oldLog, join(oldLog, '0.log'), oldWs]) utimesSync(p, twoHoursAgo, twoHoursAgo);
  const dry = JSON.parse((await admin(['gc', '--dry-run', '--json'])).out);
  assert.is(dry.orphans.files, 2);
  assert.is(dry.orphans.bytes, 'left behind by a crash\n'.length + SEALED(300).length);
  assert.equal(dry.orphans.paths.sort(), ['logs/run_0000000000000001', 'workspaces/run_0000000000000002.age']);
  const text = await admin(['gc']);
  assert.is(text.code, 0, text.err);
  assert.match(text.out, /^Removed 2 orphaned files \(.*\): /m);
  assert.not.ok(existsSync(oldLog));
  assert.not.ok(existsSync(oldWs));
  assert.ok(existsSync(young), 'a file younger than an hour may belong to a trigger in progress');
  rmSync(young);
});

test('gc never removes a state version --state-history keeps; a state file with no row (an interrupted removal) is an orphan', async () => {
  const c = await admin(['stack', 'create', 'tf', '--pool', pool.id, '--tool', 'terraform', '--image', 'launcher-test/terraform:1.11', '--state-history', '2']);
  assert.is(c.code, 0, c.err);
  for (let v = 1; v <= 3; v++) {
    const r = await srv.admin('PUT', `/v1/stacks/tf/state?base=${v === 1 ? 'none' : v - 1}&serial=${v}&lineage=l`, SEALED(100 * v));
    assert.is(r.status, 201, r.text);
  }
  const stack = (await srv.admin('GET', '/v1/stacks/tf/state')).body.stack;
  const dir = join(srv.dataDir, 'state', stack);
  await waitFor(() => !existsSync(join(dir, '1.age')), 'version 1 to be removed (--state-history 2)').catch(() => false);
  assert.not.ok(existsSync(join(dir, '1.age')), '--state-history 2 dropped version 1');
  // A version file whose row is gone (as after a crash mid-removal), two hours old.
  writeFileSync(join(dir, '7.age'), SEALED(10));
  const old = new Date(Date.now() - 2 * 3600_000);
  utimesSync(join(dir, '7.age'), old, old);
  for (const f of ['2.age', '3.age']) utimesSync(join(dir, f), old, old);
  const r = JSON.parse((await admin(['gc', '--retain-runs', '1s', '--json'])).out);
  assert.ok(r.orphans.paths.includes(`state/${stack}/7.age`), JSON.stringify(r.orphans));
  assert.not.ok(existsSync(join(dir, '7.age')));
  assert.ok(existsSync(join(dir, '2.age')) && existsSync(join(dir, '3.age')), 'kept versions stay, however old');
  const list = (await srv.admin('GET', '/v1/stacks/tf/state')).body;
  assert.equal(list.versions.map((v: { version: number }) => v.version), [3, 2]);
  assert.ok((await srv.admin('GET', '/v1/stacks/tf/state/2')).raw.equals(SEALED(200)));
});

test('the server sweeps on its own with --retain-runs; its data directory shrinks', async () => {
  const own = await startTestServer({ args: ['--retain-runs', '2s'] });
  try {
    const k = opensslCsr(tmp, 'sweep');
    const r = await own.admin('POST', '/v1/pools', { name: 'gc', csr: k.csrPem });
    const savedPool = pool;
    pool = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem } };
    try {
      assert.is((await own.admin('POST', '/v1/stacks', { name: 'gc', pool: pool.id, phases: [{ name: 'plan', script: 'true' }] })).status, 201);
      const wid = await register(own, {});
      const id = await finishedRun(own, wid, ['to be swept\n'], 500);
      assert.ok(statSync(join(own.dataDir, 'workspaces', `${id}.age`)).size > 0);
      // The first sweep runs a few seconds after start, then every minute (if
      // the run was not 2 s old at the first, the next one takes it): wait for the log line.
      await waitFor(() => own.stderr.includes('"msg":"Retention removed old data"'), 'the server\'s own sweep to remove the run', 180_000, 100);
      assert.match(own.stderr, /"msg":"Retention removed old data".*"runs":1/);
      assert.is((await own.admin('GET', `/v1/runs/${id}`)).status, 404);
      assert.not.ok(existsSync(join(own.dataDir, 'workspaces', `${id}.age`)));
    } finally {
      pool = savedPool;
    }
  } finally {
    await own.stop();
  }
});

test.run();
