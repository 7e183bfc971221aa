// Restart safety, end to end: the launcher killed with -9 (or leaving at once
// on SIGQUIT) in the middle of a phase and started again on the same state
// directory finishes the run with complete logs; the server killed with -9
// and restarted mid-run loses no log line and stores none twice.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeContainer } from '../lib/docker/containers.ts';
import { listManagedContainers } from '../lib/executor.ts';
import { LauncherFleet } from './helpers/fleet.ts';
import type { TestServer } from './helpers/server.ts';
import { createStack, runLogs, trigger, waitRun, ended, type LauncherProcess } from './helpers/launcher.ts';

const fleet = new LauncherFleet('restart');
const docker = fleet.docker;
let srv: TestServer;
let pool: { poolId: string; token: string };
let counter: string;
const N = 100;

const stateDir = (): string => fleet.stateDir();
/** One launcher at a time, so the test knows which one takes the run. */
const stopAll = (): Promise<void> => fleet.stopAll();
const launch = (dir: string, env: Record<string, string> = {}): LauncherProcess => fleet.launch({ stateDir: dir, env });
const registered = (l: LauncherProcess): Promise<string> => fleet.registered(l);
const waitLogs = (runId: string, re: RegExp): Promise<void> => fleet.waitLogs(runId, re);
/** The stored log must be exactly "line 1" … "line N", each once, in order. */
function assertEveryLineOnce(logs: string): void {
  const got = logs.split('\n').filter(Boolean);
  const want = Array.from({ length: N }, (_, i) => `line ${i + 1}`);
  const dupes = got.filter((l, i) => got.indexOf(l) !== i);
  const missing = want.filter((l) => !got.includes(l));
  assert.equal({ dupes, missing }, { dupes: [], missing: [] });
  assert.equal(got, want);
}

test.before(async () => {
  await fleet.start();
  ({ srv, pool } = fleet);
  counter = await createStack(srv, { name: 'counter', pool: pool.poolId, phases: [{ name: 'count', script: `i=1; while [ $i -le ${N} ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done` }] });
});

test('kill -9 of the launcher mid-run, then a restart: the run completes with complete logs', async () => {
  const dir = stateDir();
  const l = launch(dir);
  const id = await registered(l);
  const runId = await trigger(srv, counter);
  await waitLogs(runId, /^line 10$/m);
  l.kill('SIGKILL');
  await l.exited;
  const again = launch(dir);
  assert.is(await registered(again), id, 'the worker identity survives in the state directory');
  await again.waitFor(/resuming it/);
  const run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assertEveryLineOnce(await runLogs(srv, runId));
  assert.equal(await listManagedContainers(docker, { workerId: id }), []);
});

test('SIGQUIT leaves at once (exit 131) and the next start finishes the phase', async () => {
  await stopAll();
  const dir = stateDir();
  const l = launch(dir);
  await registered(l);
  const runId = await trigger(srv, counter);
  await waitLogs(runId, /^line 5$/m);
  l.kill('SIGQUIT');
  assert.is(await l.exitCode(), 131, l.out);
  const again = launch(dir);
  await registered(again);
  const run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'FINISHED');
  assertEveryLineOnce(await runLogs(srv, runId));
});

test('a phase whose container vanished while the launcher was down is reported, not re-run', async () => {
  await stopAll();
  const dir = stateDir();
  const l = launch(dir);
  const id = await registered(l);
  const runId = await trigger(srv, counter);
  await waitLogs(runId, /^line 3$/m);
  l.kill('SIGKILL');
  await l.exited;
  for (const c of await listManagedContainers(docker, { workerId: id })) await removeContainer(docker, c.id);
  const again = launch(dir);
  await registered(again);
  const run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'FAILED');
  assert.is(run.phases[0].outcome, 'system-error');
  assert.match(run.phases[0].error, /LAUNCHER_RESTARTED/);
});

test('server kill -9 and restart mid-run: no lost and no duplicated log line', async () => {
  await stopAll();
  // Run output on the launcher's stdout too: it shows the run going on while the server is down.
  const l = launch(stateDir(), { SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED: 'true' });
  await registered(l);
  const runId = await trigger(srv, counter);
  await waitLogs(runId, /^line 10$/m);
  await srv.kill9();
  await l.waitFor(/Log upload failed|Lost the server/);
  // Keep the server down until the run has printed five more lines, which must
  // reach the server once it is back.
  const printed = Math.max(0, ...[...l.out.matchAll(/"msg":"line (\d+)"/g)].map((m) => Number(m[1])));
  await l.waitFor(new RegExp(`"msg":"line ${Math.min(N, printed + 5)}"`));
  await srv.start();
  const run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assertEveryLineOnce(await runLogs(srv, runId));
});

test.after(() => fleet.close());
test.run();
