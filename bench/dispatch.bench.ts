// Dispatch latency: from the admin API's `run trigger` call to the engine's
// container `create` event, with an idle launcher on loopback holding its
// long-poll. Peer in the same run: a simulated launcher that polls every 3 s
// (wait=0) through the same worker API with its own pool certificate; its
// figure is trigger → assignment received, a lower bound for a 3 s poller
// (it still has to create the container after that).
//
//   node_modules/.bin/node --import tsx bench/dispatch.bench.ts [RUNS]
import { randomInt } from 'node:crypto';
import { createInterface } from 'node:readline';
import { DockerClient } from '../lib/docker/client.ts';
import { LABELS } from '../lib/executor.ts';
import { parsePoolPrivateKey } from '../lib/keys.ts';
import { decodeToken } from '../lib/token.ts';
import { WorkerApi } from '../lib/launcher/api.ts';
import { ensureTestImage } from '../test/helpers/docker.ts';
import { startTestServer, opensslCsr } from '../test/helpers/server.ts';
import { createPool, createStack, seedPoolKey, startLauncher, tempDir, trigger, waitRun, ended } from '../test/helpers/launcher.ts';

const RUNS = Number(process.argv[2] ?? 30);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;

const docker = new DockerClient();
await ensureTestImage(docker);
const srv = await startTestServer();
const key = seedPoolKey(4096);
const state = tempDir('dispatch-bench-');
const pool = await createPool(srv, 'bench', key.csrPem);
const stack = await createStack(srv, { name: 'noop', pool: pool.poolId, phases: [{ name: 'p', script: 'true' }] });
const launcher = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: state.path, env: { SPACELIFT_DEBUG: 'true' } });
await launcher.waitFor(/Registered with the server/);

// Container create events, by run id, timed by the engine (nanoseconds since the epoch).
const creates = new Map<string, number>();
const waiters = new Map<string, (t: number) => void>();
const events = await docker.request('watch events', { path: '/events', query: { filters: JSON.stringify({ type: ['container'], event: ['create'], label: [`${LABELS.managed}=true`] }) } });
events.body.on('error', () => {}); // destroyed at the end
const lines = createInterface({ input: events.body });
lines.on('error', () => {});
lines.on('line', (line) => {
  const e = JSON.parse(line) as { timeNano: number; Actor: { Attributes: Record<string, string> } };
  const runId = e.Actor.Attributes[LABELS.runId];
  if (!runId) return;
  const t = e.timeNano / 1e6;
  creates.set(runId, t);
  waiters.get(runId)?.(t);
});
const createdAt = (runId: string) => new Promise<number>((resolve) => {
  const t = creates.get(runId);
  if (t !== undefined) resolve(t);
  else waiters.set(runId, resolve);
});

// Warm-up: image lookup, first container, connection pools.
for (let i = 0; i < 3; i++) await waitRun(srv, await trigger(srv, stack), ended);

const longPoll: number[] = [];
const serverPart: number[] = [];
const launcherPart: number[] = [];
const toRequest: number[] = [];
const engineCreate: number[] = [];
for (let i = 0; i < RUNS; i++) {
  await new Promise((r) => setTimeout(r, randomInt(50, 400)));
  const t0 = Date.now();
  const runId = await trigger(srv, stack);
  const created = await createdAt(runId);
  longPoll.push(created - t0);
  await waitRun(srv, runId, ended);
  // The launcher's debug line timestamps the moment the assignment arrived.
  const received = launcher.json().find((j) => j.runId === runId && j.msg === 'Assignment received');
  // "Starting phase" is logged just before the executor asks for the image and the create.
  const starting = launcher.json().find((j) => j.runId === runId && j.msg === 'Starting phase');
  if (received && starting) {
    const rt = Date.parse(received.time as string);
    const st = Date.parse(starting.time as string);
    serverPart.push(rt - t0);
    launcherPart.push(st - rt);
    toRequest.push(st - t0);
    engineCreate.push(created - st);
  }
}
launcher.kill('SIGTERM');
await launcher.exitCode();

// The peer: a worker that asks every 3 s (wait=0) and reports success at once.
const d = tempDir('dispatch-bench-poller-');
const k2 = opensslCsr(d.path, 'poller', 2048);
const pool2 = await createPool(srv, 'poller', k2.csrPem);
const stack2 = await createStack(srv, { name: 'noop3s', pool: pool2.poolId, phases: [{ name: 'p', script: 'true' }] });
const tok = decodeToken(pool2.token);
const api = new WorkerApi({ serverUrl: tok.serverUrl, certificate: tok.certificate, caCertificate: tok.caCertificate, privateKey: parsePoolPrivateKey(k2.keyPem) });
const reg = await api.register({ workerId: null, metadata: {}, version: 'bench', host: { hostname: 'bench', os: 'linux', arch: 'x64', docker: '' } });
const got = new Map<string, number>();
let stop = false;
const poller = (async () => {
  while (!stop) {
    const a = await api.poll({ workerId: reg.workerId, accept: true, runId: null }, 0);
    if (a.assignment) {
      got.set(a.assignment.runId, Date.now());
      await api.start(a.assignment.runId, a.assignment.phase, reg.workerId);
      await api.result(a.assignment.runId, a.assignment.phase, { workerId: reg.workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 0, workspaceUploaded: false });
    }
    await new Promise((r) => setTimeout(r, 3000));
  }
})();
const poll3s: number[] = [];
const PEER_RUNS = Math.min(RUNS, 15);
for (let i = 0; i < PEER_RUNS; i++) {
  await new Promise((r) => setTimeout(r, randomInt(50, 3000)));
  const t0 = Date.now();
  const runId = await trigger(srv, stack2);
  await waitRun(srv, runId, ended);
  poll3s.push(got.get(runId)! - t0);
}
stop = true;
await poller;
await api.close();

console.log(`launcher long-poll, trigger → create request (launcher log): ${fmt(toRequest)}`);
console.log(`  trigger → assignment received: ${fmt(serverPart)}`);
console.log(`  assignment received → create request (ack, in-flight record, secrets): ${fmt(launcherPart)}`);
console.log(`  create request → engine 'create' event (image inspect + engine create): ${fmt(engineCreate)}`);
console.log(`launcher long-poll, trigger → engine 'create' event: ${fmt(longPoll)}`);
console.log(`simulated 3 s poller, trigger → assignment:     ${fmt(poll3s)}`);
console.log(`ratio of medians, trigger → assignment (3 s poller / launcher): ${(pct(poll3s, 50) / pct(serverPart, 50)).toFixed(1)}x`);
events.body.destroy();
process.exitCode = 0;
await srv.stop();
key.dir.cleanup();
state.remove();
d.remove();
await docker.close();
