// Per-phase overhead of the full path over the bare executor. Full path:
// admin trigger (with a sealed 1 MiB workspace) → server → launcher long-poll
// → ack → download + open + restore the workspace → container → archive +
// seal + upload the workspace → logs flushed → result → run FINISHED, timed
// until the admin's `logs?follow=1` stream ends. Peer in the same run,
// interleaved: the executor's runPhase alone with the same image, script and
// 1 MiB workspace in and out (no server, no sealing, no network).
//
//   node_modules/.bin/node --import tsx bench/launcher-overhead.bench.ts [RUNS]
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { DockerClient } from '../lib/docker/client.ts';
import { runPhase } from '../lib/executor.ts';
import { parsePoolPrivateKey, publicKeyPem } from '../lib/keys.ts';
import { ensureTestImage, TEST_IMAGE } from '../test/helpers/docker.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { createPool, createStack, sealToKey, seedPoolKey, startLauncher, tarOf, tempDir } from '../test/helpers/launcher.ts';

const RUNS = Number(process.argv[2] ?? 10);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const SCRIPT = 'wc -c < input.bin; echo done';

const docker = new DockerClient();
await ensureTestImage(docker);
const srv = await startTestServer();
const key = seedPoolKey(4096);
const pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
const state = tempDir('overhead-bench-');
const pool = await createPool(srv, 'bench', key.csrPem);
const stack = await createStack(srv, { name: 'mib', pool: pool.poolId, phases: [{ name: 'p', script: SCRIPT }] });
const launcher = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: state.path, env: { SPACELIFT_DEBUG: 'false' } });
await launcher.waitFor(/Registered with the server/);

const payload = randomBytes(512 * 1024).toString('hex'); // 1 MiB of ASCII
const tar = await tarOf({ 'input.bin': payload });

async function full(): Promise<number> {
  const sealed = await sealToKey(tar, pub); // the admin seals on their machine: not timed
  const t0 = performance.now();
  const r = await srv.admin('POST', `/v1/stacks/${stack}/runs?proposed=0`, sealed, { headers: { 'content-type': 'application/octet-stream' } });
  if (r.status !== 201) throw new Error(`trigger: ${r.status} ${r.text}`);
  const runId = r.body.run.id;
  const logs = await srv.admin('GET', `/v1/runs/${runId}/logs?follow=1`);
  const ms = performance.now() - t0;
  if (!logs.text.includes('1048576')) throw new Error(`unexpected logs: ${logs.text}`);
  const run = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
  if (run.state !== 'FINISHED') throw new Error(`run ${run.state}`);
  return ms;
}

async function bare(i: number): Promise<number> {
  const t0 = performance.now();
  let out = 0;
  const r = await runPhase({
    runId: `run_bench_${i}`, phase: '0', workerId: 'wrk_bench', image: TEST_IMAGE, script: SCRIPT, env: {}, readOnly: false,
    network: 'none', logsTimeoutMs: 60_000, runTimeoutMs: 60_000,
    onOutput: (c) => { out += c.length; },
    workspaceIn: () => Readable.from([tar]),
    workspaceOut: async (t) => { for await (const _ of t) { /* drain */ } },
  }, { docker });
  if (r.outcome !== 'succeeded' || out === 0) throw new Error(`bare phase: ${r.outcome}`);
  return performance.now() - t0;
}

await full(); await bare(-1); // warm-up
const fulls: number[] = [];
const bares: number[] = [];
for (let i = 0; i < RUNS; i++) {
  bares.push(await bare(i));
  fulls.push(await full());
}
const f = median(fulls);
const b = median(bares);
console.log(`full path (trigger → FINISHED, 1 MiB sealed workspace in and out): median ${f.toFixed(0)} ms (n=${RUNS})`);
console.log(`bare executor runPhase (1 MiB workspace in and out):               median ${b.toFixed(0)} ms (n=${RUNS})`);
console.log(`per-phase overhead (difference of medians): ${(f - b).toFixed(0)} ms; ratio ${(f / b).toFixed(2)}x`);
launcher.kill('SIGTERM');
await launcher.exitCode();
await srv.stop();
key.dir.cleanup();
state.remove();
await docker.close();
