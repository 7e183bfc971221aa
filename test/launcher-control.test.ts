// The launcher under the server's control and the host's signals, end to end:
// cancel, logs timeout, run timeout, cycle (exit 4), a second SIGTERM that
// cancels the current run, and a pool reset that refuses the old certificate
// (exit 3).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { listManagedContainers } from '../lib/executor.ts';
import { LauncherFleet } from './helpers/fleet.ts';
import { opensslCsr, type TestServer } from './helpers/server.ts';
import { createStack, runLogs, trigger, waitRun, ended, type LauncherProcess } from './helpers/launcher.ts';

const fleet = new LauncherFleet('control');
const docker = fleet.docker;
let srv: TestServer;
let pool: { poolId: string; token: string };

const launch = (env: Record<string, string> = {}, token?: string): LauncherProcess => fleet.launch({ env, ...(token ? { token } : {}) });
const registered = (l: LauncherProcess): Promise<string> => fleet.registered(l);
const waitLogs = (runId: string, re: RegExp): Promise<void> => fleet.waitLogs(runId, re);
const stopAll = (): Promise<void> => fleet.stopAll();

test.before(async () => {
  await fleet.start();
  ({ srv, pool } = fleet);
});

test('cancel: the container gets SIGTERM, the phase ends canceled, nothing is left behind', async () => {
  const l = launch();
  const id = await registered(l);
  const st = await createStack(srv, { name: 'cancel-me', pool: pool.poolId, phases: [{ name: 'long', script: 'echo started; sleep 120; echo never' }] });
  const runId = await trigger(srv, st);
  await waitLogs(runId, /started/);
  assert.is((await srv.admin('POST', `/v1/runs/${runId}/cancel`)).status, 200);
  const run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'CANCELED', JSON.stringify(run));
  assert.is(run.phases[0].outcome, 'canceled');
  assert.not.match(await runLogs(srv, runId), /never/);
  assert.equal(await listManagedContainers(docker, { workerId: id }), []);
  await l.waitFor(/Run canceled by the server/);
});

test('logs timeout and run timeout stop the phase with those results', async () => {
  await stopAll();
  const l = launch({ SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '2s', SPACELIFT_LAUNCHER_RUN_TIMEOUT: '4s' });
  await registered(l);
  const quiet = await createStack(srv, { name: 'quiet', pool: pool.poolId, phases: [{ name: 'p', script: 'echo one line; sleep 60' }] });
  const r1 = await trigger(srv, quiet);
  const run1 = await waitRun(srv, r1, ended);
  assert.is(run1.state, 'FAILED');
  assert.is(run1.phases[0].outcome, 'logs-timeout');
  assert.match(run1.phases[0].error ?? '', /LOGS_TIMEOUT/);
  assert.match(await runLogs(srv, r1), /one line/);

  const chatty = await createStack(srv, { name: 'chatty', pool: pool.poolId, phases: [{ name: 'p', script: 'while true; do echo tick; sleep 0.3; done' }] });
  const r2 = await trigger(srv, chatty);
  const run2 = await waitRun(srv, r2, ended);
  assert.is(run2.state, 'FAILED');
  assert.is(run2.phases[0].outcome, 'run-timeout');
  assert.match(await runLogs(srv, r2), /tick/);
});

test('cycle: the launcher finishes its current run, then exits with code 4', async () => {
  await stopAll();
  const l = launch();
  await registered(l);
  const st = await createStack(srv, { name: 'cycled', pool: pool.poolId, phases: [{ name: 'p', script: 'echo begin; sleep 2; echo end' }] });
  const runId = await trigger(srv, st);
  await waitLogs(runId, /begin/);
  assert.is((await srv.admin('POST', `/v1/pools/${pool.poolId}/cycle`)).status, 200);
  assert.is(await l.exitCode(), 4, l.out);
  const run = await getRunEnded(runId);
  assert.is(run.state, 'FINISHED');
  assert.match(await runLogs(srv, runId), /begin\nend\n/);
  assert.match(l.out, /Cycled by the server/);
});

async function getRunEnded(runId: string): Promise<any> {
  return waitRun(srv, runId, ended);
}

test('a second SIGTERM cancels the current run, reports it and exits 0', async () => {
  await stopAll();
  const l = launch();
  await registered(l);
  const st = await createStack(srv, { name: 'interrupted', pool: pool.poolId, phases: [{ name: 'p', script: 'echo started; sleep 120' }] });
  const runId = await trigger(srv, st);
  await waitLogs(runId, /started/);
  l.kill('SIGTERM');
  await l.waitFor(/Stopping after the current run/);
  assert.is((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state, 'RUNNING', 'the first signal lets the run go on');
  l.kill('SIGTERM');
  assert.is(await l.exitCode(), 0, l.out);
  const run = await waitRun(srv, runId, ended);
  assert.is(run.phases[0].outcome, 'canceled');
});

test('a pool reset refuses the old certificate: exit 3 saying to get a new token', async () => {
  await stopAll();
  const l = launch();
  await registered(l);
  const fresh = opensslCsr(fleet.stateDir(), 'fresh', 2048);
  const r = await srv.admin('POST', `/v1/pools/${pool.poolId}/reset`, { csr: fresh.csrPem });
  assert.is(r.status, 200, r.text);
  // The held long-poll answers at its wait at the latest; the next call is refused.
  assert.is(await l.exitCode(120_000), 3, l.out);
  assert.match(l.out, /refused this pool's certificate/);
  assert.match(l.out, /get a new token/);
});

test.after(() => fleet.close());
test.run();
