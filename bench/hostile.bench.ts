// Assignment latency while the server faces hostile connections: 1,000
// launchers wait on long-polls; runs are triggered one at a time and the
// clock runs from the admin request to the moment a launcher has parsed its
// poll answer. Measured without hostile connections, then with 20,000 idle
// TCP connections held open against the server (reopened as it closes them),
// then without again, in one run against one server process. The attackers
// share this machine's cores with the server; --nice-attackers runs them at
// nice 19, closer to attackers on other hosts (the server still handles every
// one of their connections).
//
//   node_modules/.bin/node --import tsx bench/hostile.bench.ts [--launchers 1000] [--hostile 20000] [--triggers 200] [--spacing-ms 75] [--nice-attackers]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { decodeToken } from '../lib/token.ts';
import { finishAtOnce, registerWorkers, WorkerApi, type Assignment } from './load/fleet.ts';
import { cpuSeconds, memoryOf, NODE, percentile, ROOT, spawnWithLimit, stop } from './load/proc.ts';
import { startSoakServer } from './load/soak.ts';

const { values } = parseArgs({ options: {
  launchers: { type: 'string', default: '1000' }, hostile: { type: 'string', default: '20000' }, triggers: { type: 'string', default: '200' },
  'spacing-ms': { type: 'string', default: '75' }, 'nice-attackers': { type: 'boolean', default: false }, child: { type: 'boolean' },
} });
const N = Number(values.launchers);
const H = Number(values.hostile);
const TRIGGERS = Number(values.triggers);
// Triggers are spaced so each phase spans more than the 10 s handshake
// deadline: the hostile phase then includes the server closing and the
// attackers reopening their connections, not just holding them.
const SPACING_MS = Number(values['spacing-ms']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (s: string) => console.log(s);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-bench-hostile-'));
  const children: ChildProcess[] = [];
  try {
    say(`# hostile-connections bench ${new Date().toISOString()}: ${N} launchers, ${H} hostile connections, ${TRIGGERS} triggers per phase; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    const srv = await startSoakServer(dir, join(dir, 'data'));
    children.push(srv.proc);
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'pool.key'), '-out', join(dir, 'pool.csr'), '-subj', '/CN=bench'], { stdio: 'ignore' });
    const created = await srv.admin.ok('POST', '/v1/pools', { name: 'bench', csr: readFileSync(join(dir, 'pool.csr'), 'utf8') });
    const token = decodeToken(created.token);
    const { stack } = await srv.admin.ok('POST', '/v1/stacks', { name: 'bench', pool: created.pool.id, image: 'bench', phases: [{ name: 'p', script: 'true' }] });
    const api = new WorkerApi(srv.origin, { ca: token.caCertificate, cert: token.certificate, key: readFileSync(join(dir, 'pool.key'), 'utf8') });
    let onAssign: (a: Assignment, at: number) => void = () => {};
    let errors = 0;
    const workers = await registerWorkers(api, N, 100, 'hostile', (w) => w.start(finishAtOnce, (a, at) => onAssign(a, at), 25, () => { errors++; }));
    while (!workers.every((w) => w.polling)) await sleep(200);
    await sleep(1000);
    say(`${N} launchers polling`);

    const measure = async (label: string): Promise<{ p50: number; p99: number }> => {
      const lat: number[] = [];
      for (let i = 0; i < TRIGGERS + 20; i++) {
        const got = new Promise<number>((resolve) => { onAssign = (_a, at) => resolve(at); });
        const t0 = performance.now();
        await srv.admin.ok('POST', `/v1/stacks/${stack.id}/runs`, { proposed: false });
        const at = await Promise.race([got, sleep(30_000).then(() => NaN)]);
        if (i >= 20) lat.push(at - t0);
        await sleep(SPACING_MS);
      }
      const ok = lat.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
      const r = { p50: percentile(ok, 50), p99: percentile(ok, 99) };
      say(`${label.padEnd(40)} p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  max ${ok.at(-1)?.toFixed(1)} ms  (${ok.length}/${lat.length} delivered; server RSS ${memoryOf(srv.proc.pid!).rssMiB.toFixed(0)} MiB, CPU ${cpuSeconds(srv.proc.pid!).toFixed(1)} s so far)`);
      return r;
    };

    const before = await measure('without hostile connections');
    let peak = 0;
    const stats: Array<{ open: number }> = [];
    const hostile: ChildProcess[] = [];
    for (let i = 0, left = H; left > 0; i++, left -= 10_000) {
      const c = spawnWithLimit([...(values['nice-attackers'] ? ['nice', '-n', '19'] : []), NODE, '--import', 'tsx', join(ROOT, 'bench/load/hostile.ts'), new URL(srv.origin).port, String(Math.min(10_000, left)), String(i * 100), '100'], {
        log: (l) => { try { stats[i] = JSON.parse(l); peak = Math.max(peak, stats.reduce((s, h) => s + (h?.open ?? 0), 0)); } catch { /* not JSON */ } },
      });
      hostile.push(c);
      children.push(c);
    }
    const t0 = Date.now();
    while (peak < 0.9 * H && Date.now() - t0 < 180_000) await sleep(500);
    // Past the first handshake deadline, so the churn is under way.
    await sleep(12_000);
    const open = stats.reduce((s, h) => s + (h?.open ?? 0), 0);
    const during = await measure(`with ${H} hostile connections (${open} open)`);
    for (const c of hostile) await stop(c);
    await sleep(3000);
    const after = await measure('without again');
    say(`\np99 with / without: ${(during.p99 / before.p99).toFixed(2)}x (before), ${(during.p99 / after.p99).toFixed(2)}x (after); p50 ${(during.p50 / before.p50).toFixed(2)}x; hostile peak open ${peak}; launcher errors ${errors}`);
    const log = readFileSync(srv.logFile, 'utf8');
    const warns = new Map<string, number>();
    for (const m of log.matchAll(/"level":"(warn|error)","msg":"([^"]*)"/g)) warns.set(`${m[1]}: ${m[2]}`, (warns.get(`${m[1]}: ${m[2]}`) ?? 0) + 1);
    for (const [k, n] of warns) say(`  server log: ${n} × ${k}`);
    await Promise.all(workers.map((w) => w.stop()));
    await api.close();
    await srv.admin.agent.close();
  } finally {
    for (const c of children.reverse()) await stop(c).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

const soft = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
if (!values.child && soft < N + 1000) {
  const c = spawnWithLimit([NODE, '--import', 'tsx', ...process.argv.slice(1), '--child'], { log: (l) => console.log(l) });
  c.on('exit', (code) => { process.exitCode = code ?? 1; });
} else {
  await main();
  process.exit(0);
}
