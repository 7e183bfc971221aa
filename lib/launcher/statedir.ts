// The launcher's state directory: one running launcher per directory, the
// worker identity it registered with, the phase it is working on, and log
// spill files. Several launchers share a host by each having its own
// directory (SPACELIFT_LAUNCHER_STATE_DIR).
//
// The lock is a pid file created with O_EXCL. A crashed launcher leaves its
// file behind, so a lock whose process is gone (or whose pid now belongs to a
// different process: the start time recorded beside the pid differs) is stale
// and is broken; breaking happens under a short-lived guard directory so two
// launchers started by the same cron minute cannot both win.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file.ts';
import { LauncherError } from '../errors.ts';

export const LOCK_FILE = 'launcher.pid';
const CHECKPOINT_FILE = 'checkpoint.json';
const WORKER_FILE = 'worker.json';
const RUN_FILE = 'run.json';

interface LockRecord {
  pid: number;
  /** Process start time from /proc (clock ticks since boot), to tell pid reuse apart. */
  start: string | null;
}

/** Start time of a process from /proc/PID/stat, or null where /proc is missing. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) may hold spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

function alive(rec: LockRecord): boolean {
  if (!Number.isInteger(rec.pid) || rec.pid <= 0) return false;
  if (rec.pid === process.pid) return false; // a previous life of ours (pid 1 in a container)
  try {
    process.kill(rec.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists but belongs to someone else; fall through to start time.
  }
  const start = processStartTime(rec.pid);
  if (rec.start !== null && start !== null && start !== rec.start) return false; // pid reused
  return true;
}

function readLock(path: string): LockRecord | null {
  try {
    const text = readFileSync(path, 'utf8');
    if (/^\s*\d+\s*$/.test(text)) return { pid: Number(text.trim()), start: null }; // a plain pid file
    try {
      const j = JSON.parse(text) as Partial<LockRecord>;
      return { pid: Number(j.pid), start: typeof j.start === 'string' ? j.start : null };
    } catch {
      return { pid: NaN, start: null };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export type LockOutcome = { acquired: true } | { acquired: false; pid: number };

export interface WorkerIdentity {
  workerId: string;
  poolId: string;
  serverUrl: string;
}

export class StateDir {
  readonly path: string;
  #locked = false;

  constructor(path: string) {
    this.path = path;
  }

  /** Creates the directory (0700: it holds run details). */
  ensure(): void {
    try {
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
      const st = statSync(this.path);
      if (!st.isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new LauncherError('STATE_DIR_UNUSABLE',
        `Cannot use the state directory ${this.path}: ${(e as Error).message} (set SPACELIFT_LAUNCHER_STATE_DIR to a writable directory)`,
        { exitCode: 2, cause: e });
    }
  }

  /** Takes the one-launcher-per-directory lock, breaking a stale one. */
  lock(): LockOutcome {
    this.ensure();
    const path = join(this.path, LOCK_FILE);
    const me: LockRecord = { pid: process.pid, start: processStartTime(process.pid) };
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o644);
        writeSync(fd, JSON.stringify(me) + '\n');
        fsyncSync(fd);
        closeSync(fd);
        this.#locked = true;
        return { acquired: true };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = readLock(path);
      if (holder === null) continue; // released between our two calls
      if (alive(holder)) return { acquired: false, pid: holder.pid };
      this.#breakStale(path, holder);
    }
    throw new LauncherError('STATE_DIR_LOCK', `Cannot lock the state directory ${this.path}: another launcher keeps taking it`);
  }

  #breakStale(path: string, seen: LockRecord): void {
    const guard = `${path}.break`;
    try {
      mkdirSync(guard);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // Someone else is breaking it; a guard left by a crash expires.
      try {
        if (Date.now() - statSync(guard).mtimeMs > 10_000) rmdirSync(guard);
      } catch { /* gone already */ }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      return;
    }
    try {
      const now = readLock(path);
      // Only remove the very lock we judged stale, never a fresh one.
      if (now !== null && Object.is(now.pid, seen.pid) && now.start === seen.start) rmSync(path, { force: true });
    } finally {
      rmdirSync(guard);
    }
  }

  unlock(): void {
    if (!this.#locked) return;
    this.#locked = false;
    const path = join(this.path, LOCK_FILE);
    const holder = readLock(path);
    if (holder?.pid === process.pid) rmSync(path, { force: true });
  }

  #readJson<T>(name: string): T | null {
    try {
      return JSON.parse(readFileSync(join(this.path, name), 'utf8')) as T;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      if (e instanceof SyntaxError) return null; // torn by an old crash: start over
      throw e;
    }
  }

  readWorker(): WorkerIdentity | null {
    return this.#readJson<WorkerIdentity>(WORKER_FILE);
  }
  writeWorker(w: WorkerIdentity): void {
    writeFileAtomicSync(join(this.path, WORKER_FILE), JSON.stringify(w, null, 2) + '\n');
  }

  /** The in-flight phase (see worker.ts for its shape). */
  readRun<T>(): T | null {
    return this.#readJson<T>(RUN_FILE);
  }
  writeRun(run: unknown): void {
    writeFileAtomicSync(join(this.path, RUN_FILE), JSON.stringify(run, null, 2) + '\n');
  }
  clearRun(): void {
    rmSync(join(this.path, RUN_FILE), { force: true });
    rmSync(join(this.path, CHECKPOINT_FILE), { force: true });
  }

  /** Where the in-flight phase's output can be picked up after a restart (lib/launcher/logcheckpoint.ts). */
  readCheckpoint<T>(): T | null {
    return this.#readJson<T>(CHECKPOINT_FILE);
  }
  writeCheckpoint(cp: unknown): void {
    writeFileAtomicSync(join(this.path, CHECKPOINT_FILE), JSON.stringify(cp) + '\n');
  }

  /** Where one phase's log chunks spill while the server is unreachable. */
  spillDir(runId: string, phase: number): string {
    return join(this.path, 'spill', `${runId.replace(/[^A-Za-z0-9_-]/g, '_')}-${phase}`);
  }
  /** Removes spill directories of phases that are over. */
  clearSpill(): void {
    rmSync(join(this.path, 'spill'), { recursive: true, force: true });
  }
}

