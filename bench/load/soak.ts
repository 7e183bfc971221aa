// The soak: a real `launcher server` process facing, all at once,
//   - N simulated launchers on mutual-TLS long-polls (bench/load/fleet.ts),
//   - H hostile idle TCP connections, reopened as the server closes them
//     (bench/load/hostile.ts, in child processes with their own fd limits),
//   - a stream of runs: each is assigned, started, ships numbered log lines
//     with sequence numbers, and reports success;
// while the server's memory is sampled. Afterwards every run must have
// succeeded and every log line must be stored, in order, exactly once; the
// server must still be running with no error in its log. Optionally a backup
// is taken mid-stream and restored into a new data directory that must start
// and list every pool and every run the backup saw.
//
// Used by bench/soak.bench.ts (the full size) and test/soak.test.ts (small).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Agent } from 'undici';
import { decodeToken } from '../../lib/token.ts';
import { registerWorkers, WorkerApi, type Assignment, type Handler, type SimWorker } from './fleet.ts';
import { freePort, memoryOf, NODE, percentile, ROOT, spawnWithLimit, stop, waitFor } from './proc.ts';

export interface SoakOptions {
  launchers: number;
  hostile: number;
  /** Runs triggered, one every `intervalMs`. */
  runs: number;
  intervalMs: number;
  /** Log lines each run ships (in chunks of 50 lines). */
  linesPerRun: number;
  /** Extra `launcher server` flags (limits for a small soak). */
  serverArgs?: string[];
  /** Take a backup after this many runs were triggered, and restore it at the end. */
  backupAfterRuns?: number;
  /**
   * How many hostile connections must be open at once before the runs start
   * (default 90 % of `hostile`). With `--max-connections` below `hostile`, a
   * quick server evicts as fast as the attackers reconnect and no more than
   * the cap is ever open: name a figure under the cap there.
   */
  hostileOpenTarget?: number;
  say?: (line: string) => void;
}

export interface SoakReport {
  launchersPolling: number;
  hostilePeakOpen: number;
  hostileClosedByServer: number;
  runsTriggered: number;
  runsSucceeded: number;
  runsNotFinished: string[];
  linesSent: number;
  runsWithLogMismatch: string[];
  assignP50Ms: number;
  assignP99Ms: number;
  rssStartMiB: number;
  rssPeakMiB: number;
  rssEndMiB: number;
  serverAlive: boolean;
  serverErrors: string[];
  guardWarnings: Record<string, number>;
  backup?: { pools: number; runs: number; restoredPools: number; restoredRuns: number; missing: string[] };
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class AdminClient {
  readonly agent: Agent;
  readonly origin: string;
  readonly token: string;
  constructor(origin: string, token: string, ca: string) {
    this.origin = origin;
    this.token = token;
    this.agent = new Agent({ connect: { ca }, connections: 16 });
  }
  async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string; json: any }> {
    const res = await this.agent.request({
      origin: this.origin, path, method,
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    let json: unknown;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.statusCode, text, json };
  }
  async ok(method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
    return r.json;
  }
}

export function expectedLog(runId: string, lines: number): string {
  let s = '';
  for (let i = 0; i < lines; i++) s += `${runId} line ${i}\n`;
  return s;
}

/** Starts `launcher server` on `data` under the raised fd limit; resolves once the admin API answers. */
export async function startSoakServer(dir: string, data: string, args: string[] = []): Promise<{ proc: ChildProcess; admin: AdminClient; origin: string; logFile: string }> {
  const port = await freePort();
  const origin = `https://127.0.0.1:${port}`;
  const logFile = join(dir, `server-${port}.log`);
  const proc = spawnWithLimit([NODE, '--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', '--data', data, '--listen', `127.0.0.1:${port}`, ...args], { logFile });
  await waitFor('the data directory', () => existsSync(join(data, 'admin.token')) && existsSync(join(data, 'ca.crt')), 120_000);
  const admin = new AdminClient(origin, readFileSync(join(data, 'admin.token'), 'utf8').trim(), readFileSync(join(data, 'ca.crt'), 'utf8'));
  await waitFor('the server to answer', async () => (await admin.call('GET', '/v1/pools')).status === 200, 120_000);
  return { proc, admin, origin, logFile };
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const say = o.say ?? (() => {});
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'launcher-soak-'));
  const data = join(dir, 'data');
  const children: ChildProcess[] = [];
  try {
    const srv = await startSoakServer(dir, data, o.serverArgs);
    children.push(srv.proc);
    const pid = srv.proc.pid!;
    const rssStart = memoryOf(pid).rssMiB;
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'pool.key'), '-out', join(dir, 'pool.csr'), '-subj', '/CN=soak'], { stdio: 'ignore' });
    const created = await srv.admin.ok('POST', '/v1/pools', { name: 'soak', csr: readFileSync(join(dir, 'pool.csr'), 'utf8') });
    const token = decodeToken(created.token);
    const { stack } = await srv.admin.ok('POST', '/v1/stacks', { name: 'soak', pool: created.pool.id, image: 'soak', phases: [{ name: 'p', script: 'true' }] });

    // Memory, sampled all along.
    let rssPeak = rssStart;
    const sampler = setInterval(() => { try { rssPeak = Math.max(rssPeak, memoryOf(pid).rssMiB); } catch { /* gone */ } }, 500);

    // The launchers: each run ships its lines in chunks of 50, then succeeds.
    const api = new WorkerApi(srv.origin, { ca: token.caCertificate, cert: token.certificate, key: readFileSync(join(dir, 'pool.key'), 'utf8') });
    const assignedAt = new Map<string, number>();
    const finished = new Set<string>();
    let workerErrors = 0;
    const handler: Handler = async (w, a) => {
      const base = `/v1/worker/runs/${a.runId}/phases/${a.phase}`;
      await w.api.call(`${base}/start`, { workerId: w.id });
      const text = expectedLog(a.runId, o.linesPerRun).split(/(?<=\n)/);
      let seq = 0;
      for (let i = 0; i < text.length; i += 50) {
        const chunk = Buffer.from(text.slice(i, i + 50).join(''));
        for (let attempt = 0; ; attempt++) {
          try { await w.api.call(`${base}/logs?seq=${seq}`, null, { raw: chunk }); break; } catch (e) {
            if (attempt >= 5) throw e;
            await sleep(200);
          }
        }
        seq++;
      }
      await w.api.call(`${base}/result`, { workerId: w.id, outcome: 'succeeded', exitCode: 0, error: null, logSeq: seq });
      finished.add(a.runId);
    };
    const onAssign = (a: Assignment, at: number): void => { if (!assignedAt.has(a.runId)) assignedAt.set(a.runId, at); };
    const onError = (e: unknown): void => { if (workerErrors++ < 5) say(`  launcher error: ${(e as Error).message}`); };
    say(`registering ${o.launchers} launchers`);
    const workers: SimWorker[] = await registerWorkers(api, o.launchers, Math.min(100, o.launchers), 'soak', (w) => w.start(handler, onAssign, 25, onError));
    await waitFor(`${o.launchers} polls open`, () => workers.every((w) => w.polling), 900_000);
    say(`${o.launchers} launchers polling after ${((performance.now() - t0) / 1000).toFixed(0)} s`);

    // The hostile connections, 10,000 per child process at most.
    const port = new URL(srv.origin).port;
    const hostileStats: Array<{ open: number; closedByServer: number }> = [];
    let hostilePeak = 0;
    for (let i = 0, left = o.hostile; left > 0; i++, left -= 10_000) {
      const n = Math.min(10_000, left);
      const c = spawnWithLimit([NODE, '--import', 'tsx', join(ROOT, 'bench/load/hostile.ts'), port, String(n), String(i * 100), '100'], {
        log: (line) => {
          try { hostileStats[i] = JSON.parse(line); } catch { return; }
          hostilePeak = Math.max(hostilePeak, hostileStats.reduce((s, h) => s + (h?.open ?? 0), 0));
        },
      });
      children.push(c);
    }
    if (o.hostile > 0) {
      const target = o.hostileOpenTarget ?? 0.9 * o.hostile;
      await waitFor(`${target} hostile connections open at once`, () => hostilePeak >= target, 300_000)
        .catch((e) => say(`  ${(e as Error).message} (peak ${hostilePeak})`));
      say(`hostile connections open: ${hostilePeak}`);
    }

    // The stream of runs.
    const triggered: Array<{ id: string; at: number }> = [];
    let backup: SoakReport['backup'];
    let backupFile: string | undefined;
    let backupSaw: { pools: string[]; runs: string[] } | undefined;
    for (let i = 0; i < o.runs; i++) {
      const at = performance.now();
      const r = await srv.admin.ok('POST', `/v1/stacks/${stack.id}/runs`, { proposed: false });
      triggered.push({ id: r.run.id, at });
      if (o.backupAfterRuns !== undefined && i + 1 === o.backupAfterRuns) {
        backupFile = join(dir, 'soak-backup.tar');
        const pools = (await srv.admin.ok('GET', '/v1/pools')).pools.map((p: { id: string }) => p.id);
        const runs = triggered.map((t) => t.id);
        await takeBackup(srv.origin, srv.admin.token, join(data, 'ca.crt'), backupFile);
        backupSaw = { pools, runs };
        say(`backup taken after ${i + 1} runs`);
      }
      await sleep(o.intervalMs);
    }
    await waitFor('every run to finish', () => triggered.every((t) => finished.has(t.id)), 300_000)
      .catch((e) => say(`  ${(e as Error).message}: ${triggered.filter((t) => !finished.has(t.id)).length} not finished`));

    // Check: states and every log line.
    const notFinished: string[] = [];
    const mismatched: string[] = [];
    let succeeded = 0;
    for (const t of triggered) {
      const run = await srv.admin.ok('GET', `/v1/runs/${t.id}`);
      if (run.run.state === 'FINISHED') succeeded++; else notFinished.push(`${t.id}:${run.run.state}`);
      const logs = await srv.admin.call('GET', `/v1/runs/${t.id}/logs`);
      if (logs.text !== expectedLog(t.id, o.linesPerRun)) mismatched.push(t.id);
    }
    const lat = triggered.filter((t) => assignedAt.has(t.id)).map((t) => assignedAt.get(t.id)! - t.at).sort((a, b) => a - b);
    const polling = workers.filter((w) => w.polling).length;
    clearInterval(sampler);
    const rssEnd = memoryOf(pid).rssMiB;
    const alive = srv.proc.exitCode === null && srv.proc.signalCode === null;

    // Restore the backup into a new data directory and list what it holds.
    if (backupFile && backupSaw) {
      const restored = join(dir, 'restored');
      execFileSync(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', 'restore', backupFile, '--data', restored], { cwd: ROOT, stdio: 'pipe' });
      const r2 = await startSoakServer(dir, restored);
      children.push(r2.proc);
      const pools = (await r2.admin.ok('GET', '/v1/pools')).pools.map((p: { id: string }) => p.id);
      const runs = new Set<string>();
      for (const id of backupSaw.runs) {
        const r = await r2.admin.call('GET', `/v1/runs/${id}`);
        if (r.status === 200) runs.add(id);
      }
      const missing = [...backupSaw.pools.filter((p) => !pools.includes(p)), ...backupSaw.runs.filter((id) => !runs.has(id))];
      backup = { pools: backupSaw.pools.length, runs: backupSaw.runs.length, restoredPools: pools.length, restoredRuns: runs.size, missing };
      await r2.admin.agent.close();
      await stop(r2.proc);
    }

    for (const c of children.slice(1)) await stop(c);
    await Promise.all(workers.map((w) => w.stop()));
    await api.close();
    await srv.admin.agent.close();
    const log = readFileSync(srv.logFile, 'utf8').split('\n');
    const serverErrors = log.filter((l) => l.includes('"level":"error"')).slice(0, 20);
    const guardWarnings: Record<string, number> = {};
    for (const l of log) {
      const m = /"level":"warn","msg":"([^"]*)"/.exec(l);
      if (m) guardWarnings[m[1]!] = (guardWarnings[m[1]!] ?? 0) + 1;
    }
    return {
      launchersPolling: polling,
      hostilePeakOpen: hostilePeak,
      hostileClosedByServer: hostileStats.reduce((s, h) => s + (h?.closedByServer ?? 0), 0),
      runsTriggered: triggered.length,
      runsSucceeded: succeeded,
      runsNotFinished: notFinished,
      linesSent: triggered.length * o.linesPerRun,
      runsWithLogMismatch: mismatched,
      assignP50Ms: percentile(lat, 50),
      assignP99Ms: percentile(lat, 99),
      rssStartMiB: rssStart,
      rssPeakMiB: rssPeak,
      rssEndMiB: rssEnd,
      serverAlive: alive,
      serverErrors,
      guardWarnings,
      ...(backup ? { backup } : {}),
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of children.reverse()) await stop(c).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `launcher admin backup -o FILE` against the running server, as an operator
 * would; asynchronous, so this process's launchers keep polling meanwhile.
 */
function takeBackup(origin: string, token: string, caPath: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'admin', 'backup', '-o', file], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LAUNCHER_SERVER: origin, LAUNCHER_ADMIN_TOKEN: token, LAUNCHER_CA: caPath },
    });
    let err = '';
    p.stderr!.on('data', (d) => { err += d; });
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`launcher admin backup exited with ${code}: ${err}`))));
  });
}
