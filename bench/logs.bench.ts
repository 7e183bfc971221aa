// Log path: a container writes 512 MiB to stdout (1 KiB lines); we read it
// through the executor (attach, demultiplex, onOutput) into a null sink, and
// compare with the docker CLI peer: `docker run -d` then `docker logs -f` to
// /dev/null. Both are timed from "start the container" to "last byte read",
// including creation and removal, interleaved round by round.
// Target: executor throughput ≥ 0.8× the peer's.
//
//   node_modules/.bin/node --import tsx bench/logs.bench.ts [rounds=3] [MiB=512]
import { execFileSync, spawn } from 'node:child_process';
import { DockerClient } from '../lib/docker/client.ts';
import { runPhase } from '../lib/executor.ts';
import { TEST_IMAGE, ensureTestImage, removeWorkerContainers } from '../test/helpers/docker.ts';

const rounds = Number(process.argv[2] ?? 3);
const mib = Number(process.argv[3] ?? 512);
const bytes = mib * 1024 * 1024;
const script = `L=$(head -c 1023 /dev/zero | tr "\\0" x); yes "$L" | head -c ${bytes}`;
const docker = new DockerClient();
const workerId = 'bench-logs';
/** The launcher process's own CPU time per executor run: what the log path costs us, apart from the engine. */
const cpuMs: number[] = [];

async function viaExecutor(): Promise<number> {
  let n = 0;
  const cpu = process.cpuUsage();
  const t = performance.now();
  const r = await runPhase({
    runId: 'bench-logs', phase: 'yes', workerId, image: TEST_IMAGE, script, env: {}, readOnly: false, network: 'none',
    logsTimeoutMs: 600_000, runTimeoutMs: 3_600_000, onOutput: (c) => { n += c.length; },
  }, { docker });
  const ms = performance.now() - t;
  const used = process.cpuUsage(cpu);
  cpuMs.push((used.user + used.system) / 1000);
  if (r.outcome !== 'succeeded' || n !== bytes) throw new Error(`executor: ${r.outcome} after ${n} of ${bytes} bytes`);
  return ms;
}

function viaDockerCli(): Promise<number> {
  const t = performance.now();
  const id = execFileSync('docker', ['run', '-d', '--network', 'none', TEST_IMAGE, 'sh', '-c', script], { encoding: 'utf8' }).trim();
  return new Promise((resolve, reject) => {
    // `docker logs -f … > /dev/null` exactly as a shell runs it; the probe
    // below checks separately that the peer sees every byte.
    const child = spawn('sh', ['-c', `docker logs -f ${id} > /dev/null`], { stdio: 'ignore' });
    child.on('exit', (code) => {
      const ms = performance.now() - t;
      execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
      if (code !== 0) reject(new Error(`docker logs exited ${code}`)); else resolve(ms);
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

await ensureTestImage(docker);
// Sanity: the peer really receives every byte.
const probe = execFileSync('docker', ['run', '--rm', '--network', 'none', TEST_IMAGE, 'sh', '-c', `${script.replace(String(bytes), '1048576')} | wc -c`], { encoding: 'utf8' }).trim();
if (probe !== '1048576') throw new Error(`probe produced ${probe} bytes`);

const ex: number[] = [];
const cli: number[] = [];
for (let r = 0; r < rounds; r++) {
  if (r % 2 === 0) { ex.push(await viaExecutor()); cli.push(await viaDockerCli()); }
  else { cli.push(await viaDockerCli()); ex.push(await viaExecutor()); }
  console.log(`round ${r + 1}: executor ${(ex.at(-1)! / 1000).toFixed(2)} s, docker logs ${(cli.at(-1)! / 1000).toFixed(2)} s`);
}
const mbps = (ms: number) => (bytes / 1e6) / (ms / 1000);
const exMed = median(ex);
const cliMed = median(cli);
console.log(`\n${mib} MiB of 1 KiB lines on stdout, ${rounds} rounds (medians)`);
console.log(`executor → null sink:          ${(exMed / 1000).toFixed(2)} s, ${mbps(exMed).toFixed(0)} MB/s`);
console.log(`docker run -d + docker logs -f: ${(cliMed / 1000).toFixed(2)} s, ${mbps(cliMed).toFixed(0)} MB/s`);
console.log(`launcher process CPU per run (user+system): ${(median(cpuMs) / 1000).toFixed(2)} s, ${((bytes / 1e6) / (median(cpuMs) / 1000)).toFixed(0)} MB per CPU-second`);
console.log(`throughput ratio executor/docker logs: ${(cliMed / exMed).toFixed(3)}x (target >= 0.8x)`);
await removeWorkerContainers(docker, workerId);
await docker.close();
