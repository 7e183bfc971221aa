// Online backup of a large data directory: how long `launcher admin backup`
// takes, and the server's request latency (p50/p99) while it runs, side by
// side with the same load and no backup, and with GNU tar reading the same
// directory (the peer: what an offline copy costs in I/O; it is not a
// consistent backup of a running server).
//
//   node_modules/.bin/node --import tsx bench/backup.bench.ts
//     [--runs 100000] [--data DIR (reuse a generated one)] [--rounds 3] [--baseline-s 15]
//
// The data directory is made with the server's own schema (lib/server/db.ts):
// a pool and a stack through the API, then RUNS finished runs of two phases,
// each phase with a 1 KiB log file and each run with a 4 KiB sealed workspace.
// The load is four clients in a closed loop, each doing trigger (a write
// transaction), GET of a random old run (a read) and cancel (a write); every
// request's latency is recorded and attributed to the window it started in.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { openDatabase } from '../lib/server/db.ts';
import { freePort, median, NODE, percentile, ROOT, spawnWithLimit, stop, waitFor } from './load/proc.ts';

const { values } = parseArgs({
  allowPositionals: false,
  options: {
    runs: { type: 'string', default: '100000' },
    data: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'baseline-s': { type: 'string', default: '15' },
    clients: { type: 'string', default: '4' },
    'pause-ms': { type: 'string', default: '50' },
  },
});
const RUNS = Number(values.runs);
const ROUNDS = Number(values.rounds);
const BASELINE_MS = Number(values['baseline-s']) * 1000;
const CLIENTS = Number(values.clients);
const PAUSE_MS = Number(values['pause-ms']);
const say = (s: string) => console.log(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Server { origin: string; token: string; agent: Agent; child: ReturnType<typeof spawnWithLimit>; logFile: string }

async function startServer(data: string, logFile: string): Promise<Server> {
  const port = await freePort();
  const child = spawnWithLimit([NODE, '--import', 'tsx', 'launcher.ts', 'server', '--data', data, '--listen', `127.0.0.1:${port}`], { logFile });
  await waitFor('the server', () => existsSync(join(data, 'server.url')) && readFileSync(join(data, 'server.url'), 'utf8').includes(`:${port}`), 120_000);
  const token = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  const agent = new Agent({ connect: { ca: readFileSync(join(data, 'ca.crt'), 'utf8') }, connections: 16 });
  const s = { origin: `https://127.0.0.1:${port}`, token, agent, child, logFile };
  await waitFor('the server to answer', async () => { await call(s, 'GET', '/v1/pools'); return true; }, 60_000);
  return s;
}

async function call(s: Server, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
  const res = await s.agent.request({
    origin: s.origin, path, method,
    headers: { authorization: `Bearer ${s.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : {};
}

/** A data directory with RUNS finished runs, made with the server's own schema. */
async function generate(data: string, work: string): Promise<void> {
  say(`# generating ${RUNS} runs in ${data}`);
  const t0 = performance.now();
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(work, 'pool.key'), '-out', join(work, 'pool.csr'), '-subj', '/CN=bench'], { stdio: 'ignore' });
  const s = await startServer(data, join(work, 'gen.log'));
  const { pool } = await call(s, 'POST', '/v1/pools', { name: 'bench', csr: readFileSync(join(work, 'pool.csr'), 'utf8') });
  const { stack } = await call(s, 'POST', '/v1/stacks', { name: 'bench', pool: pool.id, phases: [{ name: 'plan', script: 'terraform plan' }, { name: 'apply', script: 'terraform apply' }] });
  await s.agent.close();
  await stop(s.child);

  const db = openDatabase(join(data, 'launcher.db'));
  const insRun = db.prepare(`INSERT INTO runs (id, stack_id, stack_name, stack_kind, pool_id, proposed, state, phase, phase_count, spec, secret_env, queue_key, worker_id, cancel_requested, has_workspace, reason, created_at, updated_at, ended_at)
    VALUES (?, ?, 'bench', 'stack', ?, 0, 'FINISHED', 1, 2, ?, NULL, ?, NULL, 0, 1, NULL, ?, ?, ?)`);
  const insPhase = db.prepare(`INSERT INTO phases (run_id, idx, name, confirm, worker_id, assigned_at, started_at, ended_at, outcome, exit_code, error, log_next_seq, log_bytes)
    VALUES (?, ?, ?, 0, 'wrk_bench', ?, ?, ?, 'succeeded', 0, NULL, 1, ?)`);
  const spec = JSON.stringify({ image: null, env: { TF_IN_AUTOMATION: '1' }, phases: [{ name: 'plan', script: 'terraform plan', confirm: false }, { name: 'apply', script: 'terraform apply', confirm: false }] });
  const line = (i: number) => `module.net.aws_subnet.private[${i % 7}]: Refreshing state... [id=subnet-${(i * 2654435761 % 4294967296).toString(16)}]\n`;
  const logOf = (i: number): Buffer => { let t = ''; for (let k = 0; t.length < 1024; k++) t += line(i + k); return Buffer.from(t.slice(0, 1024)); };
  const sealed = Buffer.concat([Buffer.from('age-encryption.org/v1\n-> ssh-rsa bench\n'), randomBytes(4096 - 40)]);
  const start = Date.parse('2026-01-01T00:00:00Z');
  const BATCH = 2000;
  for (let b = 0; b < RUNS; b += BATCH) {
    const ids: string[] = [];
    db.exec('BEGIN');
    for (let i = b; i < Math.min(RUNS, b + BATCH); i++) {
      const id = `run_${i.toString(16).padStart(16, '0')}`;
      ids.push(id);
      const t = (ms: number) => new Date(start + i * 60_000 + ms).toISOString();
      insRun.run(id, stack.id, pool.id, spec, i + 1, t(0), t(40_000), t(40_000));
      insPhase.run(id, 0, 'plan', t(1000), t(2000), t(20_000), 1024);
      insPhase.run(id, 1, 'apply', t(21_000), t(22_000), t(40_000), 1024);
    }
    db.exec('COMMIT');
    await Promise.all(ids.map(async (id, k) => {
      await mkdir(join(data, 'logs', id), { recursive: true, mode: 0o700 });
      await writeFile(join(data, 'logs', id, '0.log'), logOf(b + k));
      await writeFile(join(data, 'logs', id, '1.log'), logOf(b + k + 3));
      await writeFile(join(data, 'workspaces', `${id}.age`), sealed);
    }));
  }
  db.close();
  say(`# generated in ${((performance.now() - t0) / 1000).toFixed(1)} s; database ${(statSync(join(data, 'launcher.db')).size / 1e6).toFixed(1)} MB`);
}

/** Four clients in a closed loop until `until()`; returns each request's latency in ms. */
async function load(s: Server, stackId: string, oldIds: string[], until: () => boolean): Promise<number[]> {
  const lat: number[] = [];
  const timed = async <T>(fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const v = await fn();
    lat.push(performance.now() - t);
    return v;
  };
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (!until()) {
      const { run } = await timed(() => call(s, 'POST', `/v1/stacks/${stackId}/runs`, {}));
      await timed(() => call(s, 'GET', `/v1/runs/${oldIds[Math.floor(Math.random() * oldIds.length)]}`));
      await timed(() => call(s, 'POST', `/v1/runs/${run.id}/cancel`));
      // A steady load, not a saturating one: about 3 requests per client every 50 ms.
      await sleep(PAUSE_MS);
    }
  }));
  return lat;
}

function summary(lat: number[]): { n: number; p50: number; p99: number } {
  const sorted = [...lat].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

function runChild(cmd: string, args: string[]): Promise<{ ms: number; code: number | null; out: string }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const p = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => resolve({ ms: performance.now() - t, code, out }));
  });
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'launcher-bench-backup-'));
  const data = values.data ?? join(work, 'data');
  try {
    say(`# backup bench, ${new Date().toISOString()}; node ${process.version}; ${RUNS} runs; ${CLIENTS} clients; machine shared and loaded`);
    if (!existsSync(join(data, 'launcher.db'))) {
      mkdirSync(data, { recursive: true, mode: 0o700 });
      await generate(data, work);
    }
    const du = execFileSync('du', ['-sb', data], { encoding: 'utf8' }).split('\t')[0];
    say(`# data directory ${(Number(du) / 1e6).toFixed(0)} MB`);
    const s = await startServer(data, join(work, 'server.log'));
    const { stacks } = await call(s, 'GET', '/v1/stacks');
    const stackId = stacks[0].id;
    const oldIds = (await call(s, 'GET', '/v1/runs?limit=1000')).runs.map((r: { id: string }) => r.id);
    await load(s, stackId, oldIds, (() => { const end = performance.now() + 3000; return () => performance.now() > end; })()); // warm-up

    const rows: string[] = [];
    const base: number[] = [];
    const during: number[] = [];
    const tarDuring: number[] = [];
    const times: number[] = [];
    const tarTimes: number[] = [];
    let size = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const end = performance.now() + BASELINE_MS;
      const b = summary(await load(s, stackId, oldIds, () => performance.now() > end));
      base.push(b.p99);
      const file = join(work, `backup-${r}.tar`);
      let done = false;
      const backup = runChild(NODE, ['--import', 'tsx', 'launcher.ts', 'admin', '--data', data, 'backup', '-o', file]).then((x) => { done = true; return x; });
      const d = summary(await load(s, stackId, oldIds, () => done));
      const res = await backup;
      if (res.code !== 0) throw new Error(`backup failed: ${res.out}`);
      during.push(d.p99);
      times.push(res.ms);
      size = statSync(file).size;
      rmSync(file);
      let tarDone = false;
      const tarFile = join(work, `tar-${r}.tar`);
      const tar = runChild('tar', ['-cf', tarFile, '-C', data, '.']).then((x) => { tarDone = true; return x; });
      const t = summary(await load(s, stackId, oldIds, () => tarDone));
      const tr = await tar;
      tarTimes.push(tr.ms);
      tarDuring.push(t.p99);
      rmSync(tarFile, { force: true });
      rows.push(`| ${r + 1} | ${b.p50.toFixed(1)} / ${b.p99.toFixed(1)} (${b.n}) | ${(res.ms / 1000).toFixed(1)} s | ${d.p50.toFixed(1)} / ${d.p99.toFixed(1)} (${d.n}) | ${(tr.ms / 1000).toFixed(1)} s | ${t.p50.toFixed(1)} / ${t.p99.toFixed(1)} (${t.n}) |`);
    }
    say('');
    say('| round | no backup: p50 / p99 ms (requests) | `admin backup` time | during backup: p50 / p99 ms | `tar -cf` time (peer) | during tar: p50 / p99 ms |');
    say('| --- | --- | --- | --- | --- | --- |');
    for (const row of rows) say(row);
    say('');
    say(`median backup time ${(median(times) / 1000).toFixed(1)} s for ${(size / 1e6).toFixed(0)} MB (${(size / 1e6 / (median(times) / 1000)).toFixed(0)} MB/s); tar ${(median(tarTimes) / 1000).toFixed(1)} s; backup/tar ${(median(times) / median(tarTimes)).toFixed(2)}x`);
    say(`median p99: no backup ${median(base).toFixed(1)} ms, during backup ${median(during).toFixed(1)} ms (${(median(during) / median(base)).toFixed(2)}x), during tar ${median(tarDuring).toFixed(1)} ms (${(median(tarDuring) / median(base)).toFixed(2)}x)`);
    await s.agent.close();
    await stop(s.child);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
