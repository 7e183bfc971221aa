// The shipped executable against its peers on this machine, in one run:
//   size        raw, gzip -9 and xz -6 of dist/launcher-linux-x64 (target <= 45 MB compressed)
//   start-up    `launcher version`: the binary (code cache on), the binary
//               without code cache (--reproducible), `node dist/launcher.cjs`,
//               `node --import tsx launcher.ts`, `deno run -A launcher.ts`
//               (target <= 80 ms for the binary), and an empty Node program
//               as the floor; runs interleaved, medians
//   memory      peak RSS of `launcher version`; idle RSS of `launcher server`
//               and of `launcher` (run) registered with that server, binary
//               vs `node dist/launcher.cjs`
//
//   node_modules/.bin/node --import tsx bench/binary.bench.ts   (BENCH_RUNS=30 by default, BENCH_SKIP_XZ=1)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, root, runBuild } from '../test/helpers/build.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const binary = ensureBuilt();
const node = process.execPath;
const deno = join(root, 'node_modules/.bin/deno');
const work = mkdtempSync(join(tmpdir(), 'launcher-bench-binary-'));
const MB = 1e6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function p90(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.9))]!;
}

function compressedSize(cmd: string): { bytes: number; seconds: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', `${cmd} < "$1" | wc -c`, 'sh', binary], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return { bytes: Number(r.stdout.trim()), seconds: Number(process.hrtime.bigint() - t) / 1e9 };
}

interface Peer { name: string; cmd: string; args: string[] }

function timeOnce(p: Peer): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(p.cmd, [...p.args, 'version'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' } });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${p.name} version failed: ${r.stderr}`);
  return ms;
}

/**
 * CPU time (user + sys) per start, over RUNS starts in one shell loop. Less
 * sensitive than wall time to other work queueing for the same two cores.
 */
function cpuMsPerRun(p: Peer): number {
  const quoted = [p.cmd, ...p.args, 'version'].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', 'sh', '-c', `i=0; while [ $i -lt ${RUNS} ]; do ${quoted} >/dev/null; i=$((i+1)); done`], { cwd: root, encoding: 'utf8', env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' } });
  const [user, sys] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return ((user! + sys!) * 1000) / RUNS;
}

function peakRssKb(p: Peer): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', p.cmd, ...p.args, 'version'], { cwd: root, encoding: 'utf8', env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' } });
  return Number(r.stderr.trim().split('\n').pop());
}

function rssKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function waitFor(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${seen}`)), 120_000);
    child.stderr!.on('data', (d) => {
      seen += d;
      const m = pattern.exec(seen);
      if (m) { clearTimeout(timer); resolve(m); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited ${code}: ${seen}`)); });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  await closed;
}

const IDLE_MS = 5000;

/** Idle RSS of `launcher server`, then of `launcher` registered with it, for one way of running the code. */
async function idleRoles(label: string, cmd: string, prefixArgs: string[]): Promise<{ server: { rss: number; hwm: number }; launcher: { rss: number; hwm: number } }> {
  const data = join(work, `data-${label}`);
  const server = spawn(cmd, [...prefixArgs, 'server', '--data', data, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const m = await waitFor(server, /"msg":"Server listening","url":"(https:[^"]+)"/, `${label} server`);
    const url = m[1]!;
    await sleep(IDLE_MS);
    const serverRss = rssKb(server.pid!);
    const keyDir = join(work, `key-${label}`);
    mkdirSync(keyDir);
    spawnSync(binary, ['keygen', '--out', join(keyDir, 'pool'), '--bits', '2048'], { stdio: 'ignore' });
    const created = spawnSync(binary, ['admin', 'pool', 'create', `bench-${label}`, '--csr', join(keyDir, 'pool.csr'), '--data', data, '--server', url, '--json'], { encoding: 'utf8' });
    if (created.status !== 0) throw new Error(`pool create failed: ${created.stderr}`);
    const token = (JSON.parse(created.stdout) as { token: string }).token;
    const stateDir = join(work, `state-${label}`);
    const launcher = spawn(cmd, prefixArgs, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        PATH: process.env.PATH,
        SPACELIFT_TOKEN: token,
        SPACELIFT_POOL_PRIVATE_KEY: readFileSync(join(keyDir, 'pool.key')).toString('base64'),
        SPACELIFT_LAUNCHER_STATE_DIR: stateDir,
      },
    });
    try {
      await waitFor(launcher, /Registered with the server/, `${label} launcher`);
      await sleep(IDLE_MS);
      return { server: serverRss, launcher: rssKb(launcher.pid!) };
    } finally {
      await stop(launcher);
    }
  } finally {
    await stop(server);
  }
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = { date: new Date().toISOString(), runs: RUNS, node: process.versions.node };

  // Size
  const raw = statSync(binary).size;
  const gz = compressedSize('gzip -9 -c');
  // xz is slow on a loaded 2-core machine; BENCH_SKIP_XZ=1 skips it.
  const xz = process.env.BENCH_SKIP_XZ ? { bytes: NaN, seconds: NaN } : compressedSize('xz -6 -T2 -c');
  results.size = { raw, gzip9: gz.bytes, xz6: xz.bytes, gzipSeconds: gz.seconds, xzSeconds: xz.seconds };
  console.log(`size: raw ${(raw / MB).toFixed(1)} MB, gzip -9 ${(gz.bytes / MB).toFixed(1)} MB (${gz.seconds.toFixed(1)} s), xz -6 ${(xz.bytes / MB).toFixed(1)} MB (${xz.seconds.toFixed(1)} s)`);

  // A binary without code cache, to show what the cache buys.
  const noCache = join(work, 'nocache');
  runBuild(['--reproducible', '--out-dir', noCache]);

  const peers: Peer[] = [
    { name: 'binary (SEA, code cache)', cmd: binary, args: [] },
    // The floor: Node starting an empty program, to read the others against under load.
    { name: 'node -e "" (empty program, floor)', cmd: node, args: ['-e', ''] },
    { name: 'binary (SEA, no code cache)', cmd: join(noCache, 'launcher-linux-x64'), args: [] },
    { name: 'node dist/launcher.cjs', cmd: node, args: [join(root, 'dist/launcher.cjs')] },
    { name: 'node --import tsx launcher.ts', cmd: node, args: ['--import', 'tsx', join(root, 'launcher.ts')] },
    { name: 'deno run -A launcher.ts', cmd: deno, args: ['run', '-A', '--cached-only', join(root, 'launcher.ts')] },
  ];
  for (const p of peers) { timeOnce(p); timeOnce(p); } // warm the page cache
  const times = new Map<string, number[]>(peers.map((p) => [p.name, []]));
  for (let i = 0; i < RUNS; i++) for (const p of peers) times.get(p.name)!.push(timeOnce(p));
  const base = median(times.get(peers[0]!.name)!);
  const startup = peers.map((p) => {
    const xs = times.get(p.name)!;
    const peak = median([peakRssKb(p), peakRssKb(p), peakRssKb(p)]);
    return { peer: p.name, medianMs: median(xs), p90Ms: p90(xs), ratio: median(xs) / base, cpuMs: cpuMsPerRun(p), peakRssMb: peak / 1024 };
  });
  results.startup = startup;
  console.log('\n`launcher version`, ' + RUNS + ' interleaved runs each');
  console.log('| peer | median ms | p90 ms | vs binary | CPU ms/start | peak RSS MB |\n| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const s of startup) console.log(`| ${s.peer} | ${s.medianMs.toFixed(1)} | ${s.p90Ms.toFixed(1)} | ${s.ratio.toFixed(2)}x | ${s.cpuMs.toFixed(1)} | ${s.peakRssMb.toFixed(1)} |`);
  // Issue 13's target: the binary at most 1.15x an empty program of the same Node.
  const [bin, empty] = [startup[0]!, startup[1]!];
  console.log(`binary vs empty program: CPU ${(bin.cpuMs / empty.cpuMs).toFixed(2)}x, wall ${(bin.medianMs / empty.medianMs).toFixed(2)}x (target <= 1.15x); load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);

  // Idle RSS as server and as launcher
  const roles = [
    { label: 'binary', cmd: binary, args: [] as string[] },
    { label: 'bundle', cmd: node, args: [join(root, 'dist/launcher.cjs')] },
  ];
  const idle: Record<string, unknown> = {};
  console.log(`\nidle RSS after ${IDLE_MS / 1000} s (MB)\n| role | binary RSS | binary peak | node bundle RSS | node bundle peak |\n| --- | ---: | ---: | ---: | ---: |`);
  const got: Record<string, Awaited<ReturnType<typeof idleRoles>>> = {};
  for (const r of roles) got[r.label] = await idleRoles(r.label, r.cmd, r.args);
  for (const role of ['server', 'launcher'] as const) {
    const b = got.binary![role];
    const n = got.bundle![role];
    idle[role] = { binary: b, bundle: n };
    console.log(`| ${role} | ${(b.rss / 1024).toFixed(1)} | ${(b.hwm / 1024).toFixed(1)} | ${(n.rss / 1024).toFixed(1)} | ${(n.hwm / 1024).toFixed(1)} |`);
  }
  results.idle = idle;

  mkdirSync(join(root, '.tmp'), { recursive: true });
  writeFileSync(join(root, '.tmp/bench-binary.json'), JSON.stringify(results, null, 2) + '\n');
}

main().finally(() => rmSync(work, { recursive: true, force: true })).catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
