// Phase overhead: 50 sequential `echo hi` phases through the executor versus
// the same Engine API calls made directly (create, attach, start, wait,
// remove), in the same process and run, interleaved round by round so both
// see the same machine load. Target: executor ≤ 1.10× raw.
//
//   node_modules/.bin/node --import tsx bench/phase.bench.ts [rounds=3] [phases=50]
import { Buffer } from 'node:buffer';
import { DockerClient } from '../lib/docker/client.ts';
import { attachContainer, createContainer, removeContainer, startContainer, waitContainer } from '../lib/docker/containers.ts';
import { Demuxer } from '../lib/docker/stream.ts';
import { containerName, containerSpec, runPhase, type PhaseSpec } from '../lib/executor.ts';
import { TEST_IMAGE, ensureTestImage, removeWorkerContainers } from '../test/helpers/docker.ts';

const rounds = Number(process.argv[2] ?? 3);
const phases = Number(process.argv[3] ?? 50);
const docker = new DockerClient();
const workerId = 'bench-phase';

function phaseSpec(i: number, onOutput: PhaseSpec['onOutput']): PhaseSpec {
  return {
    runId: `bench-${i}`, phase: 'echo', workerId, image: TEST_IMAGE, script: 'echo hi', env: {}, readOnly: false,
    network: 'none', logsTimeoutMs: 60_000, runTimeoutMs: 60_000, onOutput,
  };
}

async function viaExecutor(i: number): Promise<string> {
  let out = '';
  const r = await runPhase(phaseSpec(i, (c) => { out += Buffer.from(c).toString(); }), { docker });
  if (r.outcome !== 'succeeded') throw new Error(`phase ${i}: ${r.outcome} ${r.error?.message ?? ''}`);
  return out;
}

/** The same create body the executor sends, driven by hand with no executor logic around it. */
async function viaRawApi(i: number): Promise<string> {
  let out = '';
  const id = await createContainer(docker, containerName(`raw-${i}`, 'echo'), containerSpec(phaseSpec(i, () => {})));
  const sock = await attachContainer(docker, id);
  const demux = new Demuxer((c) => { out += Buffer.from(c).toString(); });
  const ended = new Promise<void>((resolve) => { sock.on('data', (c: Uint8Array) => demux.push(c)); sock.once('end', resolve); sock.once('close', resolve); });
  await startContainer(docker, id);
  const [, code] = await Promise.all([ended, waitContainer(docker, id)]);
  sock.destroy();
  await removeContainer(docker, id);
  if (code !== 0) throw new Error(`raw ${i}: exit ${code}`);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timed(kind: (i: number) => Promise<string>, i: number): Promise<number> {
  const t = performance.now();
  const out = await kind(i);
  if (out !== 'hi\n') throw new Error(`lost output: ${JSON.stringify(out)}`);
  return performance.now() - t;
}

await ensureTestImage(docker);
await viaExecutor(-1); // warm the connection pool and the image cache for both
await viaRawApi(-1);
// The machine is shared, so load drifts by the second: pair each executor
// phase with a raw one, alternating which goes first, and compare sums and
// per-phase medians over the same stretch of time.
const ex: number[][] = [];
const raw: number[][] = [];
for (let r = 0; r < rounds; r++) {
  const e: number[] = [];
  const w: number[] = [];
  for (let i = 0; i < phases; i++) {
    if ((i + r) % 2 === 0) { e.push(await timed(viaExecutor, i)); w.push(await timed(viaRawApi, i)); }
    else { w.push(await timed(viaRawApi, i)); e.push(await timed(viaExecutor, i)); }
  }
  ex.push(e);
  raw.push(w);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  console.log(`round ${r + 1}: ${phases} phases: executor ${sum(e).toFixed(0)} ms, raw ${sum(w).toFixed(0)} ms (ratio ${(sum(e) / sum(w)).toFixed(3)})`);
}
const sums = (xs: number[][]) => xs.map((x) => x.reduce((a, b) => a + b, 0));
const exMed = median(sums(ex));
const rawMed = median(sums(raw));
const exPer = median(ex.flat());
const rawPer = median(raw.flat());
console.log(`\n${phases} sequential 'echo hi' phases, ${rounds} rounds, executor and raw interleaved phase by phase (medians)`);
console.log(`executor: ${exMed.toFixed(0)} ms per ${phases} phases, ${exPer.toFixed(1)} ms per phase`);
console.log(`raw API:  ${rawMed.toFixed(0)} ms per ${phases} phases, ${rawPer.toFixed(1)} ms per phase`);
console.log(`ratio executor/raw: ${(exMed / rawMed).toFixed(3)}x per sequence, ${(exPer / rawPer).toFixed(3)}x per phase (target <= 1.10x)`);
await removeWorkerContainers(docker, workerId);
await docker.close();
