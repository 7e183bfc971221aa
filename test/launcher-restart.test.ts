// Restart safety, end to end: the launcher killed with -9 (or leaving at once
// on SIGQUIT) in the middle of a phase and started again on the same state
// directory finishes the run with complete logs; the server killed with -9
// and restarted mid-run loses no log line and stores none twice.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerClient } from '../lib/docker/client.ts';
import { removeContainer } from '../lib/docker/containers.ts';
import { listManagedContainers } from '../lib/executor.ts';
import { ensureTestImage, removeWorkerContainers } from './helpers/docker.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  createPool, createStack, runLogs, seedPoolKey, startLauncher, tempDir, trigger, waitRun, ended,
  type LauncherProcess, type PoolKey,
} from './helpers/launcher.ts';

const docker = new DockerClient();
let srv: TestServer;
let key: PoolKey;
let pool: { poolId: string; token: string };
let counter: string;
const launchers: LauncherProcess[] = [];
const dirs: Array<{ remove(): void }> = [];
const workerIds = new Set<string>();
const N = 100;

function stateDir(): string {
  const d = tempDir('launcher-restart-state-');
  dirs.push(d);
  return d.path;
}
/** One launcher at a time, so the test knows which one takes the run. */
async function stopAll(): Promise<void> {
  for (const x of launchers.splice(0)) { x.kill('SIGTERM'); await x.exitCode(60_000); }
}
function launch(dir: string): LauncherProcess {
  const l = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: dir });
  launchers.push(l);
  return l;
}
async function registered(l: LauncherProcess): Promise<string> {
  const id = (JSON.parse(await l.waitFor(/Registered with the server/)) as { workerId: string }).workerId;
  workerIds.add(id);
  return id;
}
async function waitLogs(runId: string, re: RegExp): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!re.test(await runLogs(srv, runId).catch(() => ''))) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${re} in the logs of ${runId}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
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
  await ensureTestImage(docker);
  key = seedPoolKey(4096);
  srv = await startTestServer();
  pool = await createPool(srv, 'restart', key.csrPem);
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
  const l = launch(stateDir());
  await registered(l);
  const runId = await trigger(srv, counter);
  await waitLogs(runId, /^line 10$/m);
  await srv.kill9();
  await l.waitFor(/Log upload failed|Lost the server/);
  await new Promise((r) => setTimeout(r, 1500));
  await srv.start();
  const run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assertEveryLineOnce(await runLogs(srv, runId));
});

test.after(async () => {
  for (const l of launchers) { l.kill('SIGTERM'); await l.exitCode(30_000); }
  for (const id of workerIds) await removeWorkerContainers(docker, id).catch(() => {});
  await srv?.stop();
  key?.dir.cleanup();
  for (const d of dirs) d.remove();
  await docker.close();
});
test.run();
