// Load on `launcher server`: simulated launchers on mutual-TLS long-polls,
// next to a bare node:https long-poll server with the same TLS material and
// settings (bench/load/peer-server.ts) measured the same way in the same run.
//
//   node_modules/.bin/node --import tsx bench/server-load.bench.ts
//     [--launchers 5000] [--latency-launchers 1000] [--triggers 300]
//     [--runs 3000] [--log-mib 256] [--log-workers 4] [--only server|peer]
//     [--phases held,logs,latency]
//
// Figures:
//   held        N launchers each with an open long-poll; the process's RSS (VmRSS)
//   latency     admin trigger → a waiting launcher's poll answer, sequential
//               triggers, 1,000 launchers waiting; p50 / p99 (same-process clock)
//   throughput  runs triggered, assigned, acknowledged and finished per second,
//               launchers re-polling at once
//   logs        256 KiB chunks with sequence numbers, appended + fsynced, MB/s
// Everything is on 127.0.0.1. Both servers run in their own processes under a
// raised open-file limit; this process is the launchers and the admin.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Agent, type Dispatcher } from 'undici';
import { decodeToken } from '../lib/token.ts';
import { finishAtOnce, registerWorkers, WorkerApi, type Assignment, type Handler, type SimWorker, type Tls } from './load/fleet.ts';
import { cpuSeconds, freePort, hardFileLimit, memoryOf, NODE, percentile, spawnWithLimit, stop } from './load/proc.ts';
import { createCertificateAuthority, issuePoolCertificate, issueServerCertificate } from '../lib/pki.ts';

const { values } = parseArgs({
  options: {
    launchers: { type: 'string', default: '5000' },
    'latency-launchers': { type: 'string', default: '1000' },
    triggers: { type: 'string', default: '300' },
    runs: { type: 'string', default: '3000' },
    'log-mib': { type: 'string', default: '256' },
    'log-workers': { type: 'string', default: '4' },
    only: { type: 'string' },
    phases: { type: 'string', default: 'held,logs,latency' },
    child: { type: 'boolean' },
  },
});
const HELD = Number(values.launchers);
const LAT_N = Number(values['latency-launchers']);
const TRIGGERS = Number(values.triggers);
const RUNS = Number(values.runs);
const LOG_MIB = Number(values['log-mib']);
const LOG_WORKERS = Number(values['log-workers']);
const CHUNK = 256 * 1024;
const POLL_WAIT_S = 25; // what the server tells real launchers (pollSeconds)

function softFileLimit(): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}


const say = (s: string) => console.log(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Target {
  name: string;
  origin: string;
  pid: number;
  /** Queue one run; resolves when the trigger request has been answered. */
  trigger(): Promise<void>;
  /** Workers the target itself counts as waiting (server only). */
  idleWorkers?(tag: string): Promise<number>;
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try { if (await check()) return; } catch { /* not up yet */ }
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function jsonCall(agent: Dispatcher, origin: string, method: Dispatcher.HttpMethod, path: string, token: string | undefined, body?: unknown): Promise<any> {
  const res = await agent.request({
    origin, path, method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : {};
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-bench-load-'));
  const data = join(dir, 'data');
  const children: ReturnType<typeof spawnWithLimit>[] = [];
  try {
    say(`# server load bench, ${new Date().toISOString()}; open-file limit ${hardFileLimit()}; node ${process.version}`);
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'pool.key'), '-out', join(dir, 'pool.csr'), '-subj', '/CN=bench'], { stdio: 'ignore' });
    let tls: Tls;
    let serverTarget: Target | undefined;
    let admin: Agent;
    let serverLogFile: string | undefined;
    if (values.only === 'peer') {
      // No server: make the same kind of TLS material the server would.
      const ca = createCertificateAuthority({ bits: 2048 });
      const sc = issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
      mkdirSync(data);
      writeFileSync(join(data, 'ca.crt'), ca.certPem);
      writeFileSync(join(data, 'server.crt'), sc.certPem);
      writeFileSync(join(data, 'server.key'), sc.keyPem);
      const pc = issuePoolCertificate(ca, readFileSync(join(dir, 'pool.csr'), 'utf8'), { poolId: 'pool_bench' });
      tls = { ca: ca.certPem, cert: pc.certPem, key: readFileSync(join(dir, 'pool.key'), 'utf8') };
      admin = new Agent({ connect: { ca: ca.certPem }, connections: 64 });
    } else {
      const s = await startServer(dir, data, children);
      tls = s.tls;
      serverTarget = s.target;
      admin = s.admin;
      serverLogFile = s.logFile;
    }
    // ---- the peer: bare node:https long-poll server, same key, certificate and CA ----
    const peerPort = await freePort();
    const peer = spawnWithLimit([NODE, '--import', 'tsx', 'bench/load/peer-server.ts', data, String(peerPort)], { logFile: join(dir, 'peer.log') });
    children.push(peer);
    const peerOrigin = `https://127.0.0.1:${peerPort}`;
    await waitFor('the peer', async () => { await jsonCall(admin, peerOrigin, 'GET', '/health', undefined); return true; }, 30_000);
    const peerTarget: Target = {
      name: 'peer: bare node:https long-poll', origin: peerOrigin, pid: peer.pid!,
      trigger: () => jsonCall(admin, peerOrigin, 'POST', '/trigger', undefined, {}),
    };
    const targets = [peerTarget, serverTarget].filter((t): t is Target => t !== undefined && (!values.only || (values.only === 'peer' ? t === peerTarget : t === serverTarget)));

    const results: string[] = [];
    // Held first, so "before" is the RSS of a freshly started process.
    const phases = new Set(String(values.phases).split(','));
    if (phases.has('held')) for (const t of targets) results.push(...await held(t, tls));
    if (phases.has('logs')) for (const t of targets) results.push(...await logIngestion(t, tls));
    if (phases.has('latency')) for (const t of targets) results.push(...await latencyAndThroughput(t, tls));

    if (serverLogFile) {
      // What the server warned about during the run, counted by message.
      const counts = new Map<string, number>();
      for (const l of readFileSync(serverLogFile, 'utf8').split('\n')) {
        const m = /"level":"(warn|error)","msg":"([^"]*)"/.exec(l);
        if (m) counts.set(`${m[1]}: ${m[2]}`, (counts.get(`${m[1]}: ${m[2]}`) ?? 0) + 1);
      }
      say('\n## server warnings and errors');
      for (const [k, n] of counts) say(`  ${n} × ${k}`);
    }
    say('\n## results');
    for (const r of results) say(r);
    say(`\nCPU seconds used in total: ${serverTarget ? `server ${cpuSeconds(serverTarget.pid).toFixed(1)}, ` : ''}peer ${cpuSeconds(peer.pid!).toFixed(1)}, this process (the launchers and the admin) ${(process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6).toFixed(1)}`);
    await admin.close();
  } catch (e) {
    say(`Bench failed: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  } finally {
    for (const c of children) await stop(c);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startServer(dir: string, data: string, children: ReturnType<typeof spawnWithLimit>[]): Promise<{ tls: Tls; target: Target; admin: Agent; logFile: string }> {
  const port = await freePort();
  const origin = `https://127.0.0.1:${port}`;
  const logFile = join(dir, 'server.log');
  // BENCH_SERVER_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") reaches the server only.
  const serverEnv = process.env.BENCH_SERVER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS } : undefined;
  const server = spawnWithLimit([NODE, '--import', 'tsx', 'launcher.ts', 'server', '--data', data, '--listen', `127.0.0.1:${port}`], { logFile, env: serverEnv });
  const tail = () => readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
  server.on('exit', (code, sig) => say(`  [server] exited: ${code ?? sig}`));
  children.push(server);
  await waitFor('the server data directory', () => existsSync(join(data, 'admin.token')) && existsSync(join(data, 'ca.crt')), 60_000)
    .catch((e) => { throw new Error(`${(e as Error).message}\n${tail()}`); });
  const adminToken = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  const ca = readFileSync(join(data, 'ca.crt'), 'utf8');
  const admin = new Agent({ connect: { ca }, connections: 64 });
  await waitFor('the server to answer', async () => { await jsonCall(admin, origin, 'GET', '/v1/pools', adminToken); return true; }, 60_000)
    .catch((e) => { throw new Error(`${(e as Error).message}\n${tail()}`); });

  // The pool: a CSR from openssl (RSA 2048: the handshakes are the simulated
  // launchers' cost, and real launchers sign on their own hosts).
  const created = await jsonCall(admin, origin, 'POST', '/v1/pools', adminToken, { name: 'bench', csr: readFileSync(join(dir, 'pool.csr'), 'utf8') });
  const token = decodeToken(created.token);
  const tls: Tls = { ca: token.caCertificate, cert: token.certificate, key: readFileSync(join(dir, 'pool.key'), 'utf8') };
  const { stack } = await jsonCall(admin, origin, 'POST', '/v1/stacks', adminToken, { name: 'bench', pool: created.pool.id, image: 'bench', phases: [{ name: 'p', script: 'true' }] });
  const target: Target = {
    name: 'launcher server', origin, pid: server.pid!,
    trigger: () => jsonCall(admin, origin, 'POST', `/v1/stacks/${stack.id}/runs`, adminToken, { proposed: false, workspace: null }),
    idleWorkers: async (tag: string) => {
      const { workers } = await jsonCall(admin, origin, 'GET', `/v1/workers?pool=${created.pool.id}&status=IDLE&metadata=bench=${tag}`, adminToken);
      return (workers as unknown[]).length;
    },
  };

  return { tls, target, admin, logFile };
}

function fleetErrors(name: string): (e: unknown) => void {
  let shown = 0;
  return (e) => { if (shown++ < 5) say(`  [${name}] worker error: ${(e as Error).message}`); };
}

/**
 * Register `n` launchers, each polling as soon as it is registered, and wait
 * until every one has a poll open. Resolves with the workers and the seconds
 * from the first registration to the last open poll.
 */
async function launchers(t: Target, api: WorkerApi, n: number, tag: string, handler: Handler, onAssign: (a: Assignment, at: number, w: SimWorker) => void, timeoutMs: number): Promise<{ workers: SimWorker[]; secs: number }> {
  const t0 = performance.now();
  const err = fleetErrors(t.name);
  const workers = await registerWorkers(api, n, Math.min(100, n), tag, (w) => w.start(handler, onAssign, POLL_WAIT_S, err));
  await waitFor(`${n} open polls`, () => api.connected() >= n && workers.every((w) => w.polling), timeoutMs)
    .catch((e) => say(`  ${(e as Error).message}: ${workers.filter((w) => w.polling).length} polling, ${api.connected()} connected`));
  const secs = (performance.now() - t0) / 1000;
  // Let the last polls reach the server's wait list.
  await sleep(1000);
  return { workers, secs };
}

/** CPU seconds this process (the launchers and the admin) has used. */
function ownCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Stop polling and leave the pool, as launchers do on a graceful exit. */
async function stopAll(workers: SimWorker[], api: WorkerApi): Promise<void> {
  await Promise.all(workers.map((w) => w.stop()));
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(100, workers.length) }, async () => {
    for (let i = next++; i < workers.length; i = next++) {
      await api.call('/v1/worker/deregister', { workerId: workers[i]!.id }).catch(() => undefined);
    }
  }));
  await api.close();
}

async function logIngestion(t: Target, tls: Tls): Promise<string[]> {
  say(`\n## log ingestion: ${t.name}: ${LOG_WORKERS} launchers, ${LOG_MIB} MiB in ${CHUNK / 1024} KiB chunks`);
  const api = new WorkerApi(t.origin, tls);
  const chunk = Buffer.alloc(CHUNK, 'log line from a simulated launcher, masked already\n');
  const perWorker = Math.ceil((LOG_MIB * 1024 * 1024) / CHUNK / LOG_WORKERS);
  let bytes = 0;
  let first = 0;
  let last = 0;
  let done = 0;
  const handler: Handler = async (w, a) => {
    const base = `/v1/worker/runs/${a.runId}/phases/${a.phase}`;
    await w.api.call(`${base}/start`, { workerId: w.id });
    if (first === 0) first = performance.now();
    for (let seq = 0; seq < perWorker; seq++) {
      await w.api.call(`${base}/logs?seq=${seq}`, null, { raw: chunk });
      bytes += chunk.length;
    }
    last = performance.now();
    await w.api.call(`${base}/result`, { workerId: w.id, outcome: 'succeeded', exitCode: 0, error: null, logSeq: perWorker, workspaceUploaded: false });
    done++;
    w.halt();
  };
  const { workers } = await launchers(t, api, LOG_WORKERS, 'logs', handler, () => {}, 60_000);
  const cpu0 = cpuSeconds(t.pid);
  const own0 = ownCpu();
  for (let i = 0; i < LOG_WORKERS; i++) await t.trigger();
  await waitFor('log uploads', () => done >= LOG_WORKERS, 600_000);
  const cpu = cpuSeconds(t.pid) - cpu0;
  const own = ownCpu() - own0;
  await stopAll(workers, api);
  const mbs = bytes / 1e6 / ((last - first) / 1000);
  const line = `logs        ${t.name.padEnd(34)} ${mbs.toFixed(1)} MB/s, ${(bytes / 1e6 / cpu).toFixed(0)} MB per target CPU-second (${(bytes / 1048576).toFixed(0)} MiB in ${((last - first) / 1000).toFixed(2)} s, target process CPU ${cpu.toFixed(1)} s, launchers' process CPU ${own.toFixed(1)} s)`;
  say(line);
  return [line];
}

async function latencyAndThroughput(t: Target, tls: Tls): Promise<string[]> {
  say(`\n## assignment latency and throughput: ${t.name}: ${LAT_N} launchers`);
  const api = new WorkerApi(t.origin, tls);
  let onAssign: (a: Assignment, at: number) => void = () => {};
  const { workers, secs: ramp } = await launchers(t, api, LAT_N, 'latency', finishAtOnce, (a, at) => onAssign(a, at), 180_000);
  say(`  ${LAT_N} registered and polling after ${ramp.toFixed(1)} s; ${api.connected()} connections${t.idleWorkers ? `; server counts ${await t.idleWorkers('latency')} IDLE` : ''}`);

  // Latency: one trigger at a time; the clock runs from just before the admin
  // request to the moment a launcher's poll answer is parsed.
  const lat: number[] = [];
  const answered: number[] = [];
  for (let i = 0; i < TRIGGERS + 20; i++) {
    const got = new Promise<number>((resolve) => { onAssign = (_a, at) => resolve(at); });
    const t0 = performance.now();
    await t.trigger();
    const t1 = performance.now();
    const at = await Promise.race([got, sleep(10_000).then(() => NaN)]);
    if (i >= 20) { lat.push(at - t0); answered.push(t1 - t0); } // the first 20 warm up
    await sleep(5); // let the launcher finish and re-poll
  }
  const ok = lat.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const lost = lat.length - ok.length;
  const latLine = `latency     ${t.name.padEnd(34)} p50 ${percentile(ok, 50).toFixed(2)} ms  p99 ${percentile(ok, 99).toFixed(2)} ms  max ${ok.at(-1)?.toFixed(2)} ms; the trigger request alone p50 ${percentile(answered.sort((a, b) => a - b), 50).toFixed(2)} ms (${ok.length} triggers, ${LAT_N} launchers waiting${lost ? `, ${lost} not delivered within 10 s` : ''})`;
  say(latLine);

  // Throughput: 32 admin clients trigger RUNS runs (or for at most 60 s) as
  // fast as answered; the launchers acknowledge, report success, re-poll at once.
  // Unique run ids: a re-sent assignment (same run) counts once.
  const seen = new Set<string>();
  let resent = 0;
  let lastAt = 0;
  onAssign = (a, at) => { if (seen.has(a.runId)) resent++; else seen.add(a.runId); lastAt = at; };
  const cpu0 = cpuSeconds(t.pid);
  const own0 = ownCpu();
  const t0 = performance.now();
  let issued = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (issued < RUNS && performance.now() - t0 < 60_000) {
      issued++;
      try { await t.trigger(); } catch (e) { if (failed++ < 3) say(`  trigger failed: ${(e as Error).message}`); }
    }
  }));
  const triggeredAt = performance.now();
  await waitFor('every run assigned', () => seen.size >= issued - failed, 120_000).catch((e) => say(`  ${(e as Error).message}: ${seen.size}/${issued}`));
  const assigned = seen.size;
  const cpu = cpuSeconds(t.pid) - cpu0;
  const own = ownCpu() - own0;
  const secs = (Math.max(lastAt, triggeredAt) - t0) / 1000;
  const tpLine = `throughput  ${t.name.padEnd(34)} ${(assigned / secs).toFixed(0)} runs/s, ${(assigned / cpu).toFixed(0)} runs per target CPU-second (${assigned}/${issued} runs in ${secs.toFixed(2)} s; triggers answered at ${(issued / ((triggeredAt - t0) / 1000)).toFixed(0)}/s${failed ? `, ${failed} triggers failed` : ''}${resent ? `, ${resent} assignments re-sent` : ''}; target process CPU ${cpu.toFixed(1)} s, launchers' process CPU ${own.toFixed(1)} s)`;
  say(tpLine);
  await sleep(500);
  await stopAll(workers, api);
  return [latLine, tpLine];
}

async function held(t: Target, tls: Tls): Promise<string[]> {
  say(`\n## connected launchers held: ${t.name}: ${HELD}`);
  const before = memoryOf(t.pid);
  const api = new WorkerApi(t.origin, tls);
  const { workers, secs: ramp } = await launchers(t, api, HELD, 'held', finishAtOnce, () => {}, 300_000);
  const open = workers.filter((w) => w.polling).length;
  // Hold for a while (bounded), then read the memory of the target process.
  await sleep(5000);
  const mem = memoryOf(t.pid);
  const idle = t.idleWorkers ? await t.idleWorkers('held') : undefined;
  const line = `held        ${t.name.padEnd(34)} ${open} polls open on ${api.connected()} connections, RSS ${mem.rssMiB.toFixed(0)} MiB (${before.rssMiB.toFixed(0)} MiB before; peak ${mem.hwmMiB.toFixed(0)} MiB; ${((mem.rssMiB - before.rssMiB) * 1024 / HELD).toFixed(1)} KiB per launcher)${idle === undefined ? '' : `, server counts ${idle} IDLE`}; all registered and polling after ${ramp.toFixed(1)} s`;
  say(line);
  await stopAll(workers, api);
  return [line];
}

// This process holds one socket per simulated launcher: re-run under the
// raised limit if the inherited one is too small.
if (!values.child && softFileLimit() < HELD + 1000) {
  const child = spawnWithLimit([NODE, '--import', 'tsx', ...process.argv.slice(1), '--child'], { log: (l) => console.log(l) });
  child.on('exit', (code) => { process.exitCode = code ?? 1; });
} else {
  await main();
  // Poll loops and sockets left by a failed phase must not keep us alive.
  process.exit(process.exitCode ?? 0);
}
