// Child processes for the load bench: the server and the peer run in their own
// processes (so their memory is theirs alone) under a raised open-file limit,
// and their resident memory is read from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const NODE = `${ROOT}node_modules/.bin/node`;

/** The hard limit is the most an unprivileged (or container) process may raise to. */
export function hardFileLimit(): number {
  const out = readFileSync('/proc/self/limits', 'utf8');
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(out);
  if (!m || m[2] === 'unlimited') return 65536;
  return Math.min(65536, Number(m[2]));
}

/**
 * `sh -c 'ulimit -n N; exec "$@"'`: exec keeps the child's pid the node
 * process's pid. With `logFile`, stdout and stderr go straight to that file:
 * a server writing its log synchronously to a pipe would stall whenever this
 * (busy) process is slow to drain it, and the bench would measure that.
 */
export function spawnWithLimit(args: string[], opts: { env?: Record<string, string>; fileLimit?: number; log?: (line: string) => void; logFile?: string } = {}): ChildProcess {
  const limit = opts.fileLimit ?? hardFileLimit();
  const fd = opts.logFile === undefined ? undefined : openSync(opts.logFile, 'a');
  const child = spawn('sh', ['-c', `ulimit -n ${limit} && exec "$@"`, 'sh', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: fd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd],
  });
  if (fd !== undefined) {
    closeSync(fd);
    return child;
  }
  const log = opts.log;
  const forward = (d: Buffer) => { if (log) for (const l of d.toString().split('\n')) if (l.trim()) log(l); };
  child.stdout!.on('data', forward);
  child.stderr!.on('data', forward);
  return child;
}

export interface Memory { rssMiB: number; hwmMiB: number }

export function memoryOf(pid: number): Memory {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

/** Re-checks `check` every 200 ms until it is true; a check that throws (a server not answering yet) counts as not yet. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try { if (await check()) return; } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
