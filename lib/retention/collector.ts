// Retention applied: finds (and unless it is a dry run, removes) finished runs
// past --retain-runs with their logs and sealed workspaces, workers OFFLINE
// past --retain-offline-workers, and orphaned blob files; reports how many and
// how many bytes. Rows go first, in batches of one transaction each (the event
// loop breathes between batches), then their files; a crash in between leaves
// files without rows, which the next sweep finds as orphans. While a backup
// holds removals nothing is removed (a dry run still reports).
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as breathe } from 'node:timers/promises';
import type { GcReport } from '../protocol.ts';
import type { Logger } from '../server/log.ts';
import type { Store } from '../server/store.ts';
import { isOrphan, runCutoff, sweepIntervalMs, workersToRemove, type RetentionPolicy } from './policy.ts';

export interface CollectorDeps {
  store: {
    runs: Pick<Store['runs'], 'endedBefore' | 'deleteFinished' | 'exists'>;
    workers: Pick<Store['workers'], 'gone' | 'deleteIdle'>;
    states: Pick<Store['states'], 'version'>;
  };
  dataDir: string;
  logsDir: string;
  workspacesDir: string;
  /** Sealed state versions (state/STACK/VERSION.age); only orphans there are removed, never a version with a row. */
  stateDir?: string;
  blobs: { remove(path: string): Promise<void>; removalsHeld(): boolean };
  /** A removed worker is forgotten by the live presence too. */
  onWorkerRemoved(id: string): void;
  log: Logger;
  now?: () => number;
}

const BATCH = 500;
const MAX_LISTED = 100;

export class BackupInProgress extends Error {
  constructor() { super('A backup is being written: nothing is removed until it ends'); }
}

async function sizeOf(path: string): Promise<number> {
  try {
    const s = await stat(path);
    if (s.isFile()) return s.size;
    if (!s.isDirectory()) return 0;
    let n = 0;
    for (const d of await readdir(path, { withFileTypes: true })) n += await sizeOf(join(path, d.name));
    return n;
  } catch {
    return 0;
  }
}

export class Collector {
  private readonly d: CollectorDeps;
  private readonly policy: RetentionPolicy;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(deps: CollectorDeps, policy: RetentionPolicy) {
    this.d = deps;
    this.policy = policy;
  }

  private now(): number { return this.d.now?.() ?? Date.now(); }

  /** One collection at a time: a request made during a sweep waits for it. */
  collect(opts: { dryRun: boolean; policy?: RetentionPolicy }): Promise<GcReport> {
    const next = this.chain.then(() => this.run(opts.dryRun, { ...this.policy, ...opts.policy }));
    this.chain = next.catch(() => {});
    return next;
  }

  /** Sweeps on a timer when the server has a retention policy; returns a stop function. */
  start(): () => void {
    const every = sweepIntervalMs(this.policy);
    if (every === undefined) return () => {};
    const sweep = (): void => {
      if (this.d.blobs.removalsHeld()) return;
      this.collect({ dryRun: false }).then((r) => {
        if (r.bytes > 0 || r.runs.count > 0 || r.workers.count > 0) {
          this.d.log.info('Retention removed old data', { runs: r.runs.count, workers: r.workers.count, orphans: r.orphans.files, bytes: r.bytes });
        }
      }, (e: Error) => {
        if (!(e instanceof BackupInProgress)) this.d.log.warn('Retention sweep failed', { error: e.message });
      });
    };
    // A first sweep soon after start, then on the interval.
    const first = setTimeout(sweep, Math.min(every, 5_000));
    first.unref();
    this.timer = setInterval(sweep, every);
    this.timer.unref();
    return () => { clearTimeout(first); clearInterval(this.timer); };
  }

  private async run(dryRun: boolean, policy: RetentionPolicy): Promise<GcReport> {
    if (!dryRun && this.d.blobs.removalsHeld()) throw new BackupInProgress();
    const now = this.now();
    const cutoff = runCutoff(now, policy) ?? null;
    const report: GcReport = {
      dryRun, runsEndedBefore: cutoff,
      runs: { count: 0, logBytes: 0, workspaceBytes: 0, oldestEndedAt: null, newestEndedAt: null },
      workers: { count: 0, ids: [] },
      orphans: { files: 0, bytes: 0, paths: [] },
      bytes: 0,
    };
    if (cutoff !== null) await this.runs(cutoff, dryRun, report);
    await this.workers(now, policy, dryRun, report);
    await this.orphans(now, dryRun, report);
    report.bytes = report.runs.logBytes + report.runs.workspaceBytes + report.orphans.bytes;
    return report;
  }

  private async runs(cutoff: string, dryRun: boolean, report: GcReport): Promise<void> {
    const { runs } = this.d.store;
    let after = { ended: '', id: '' };
    for (;;) {
      const rows = runs.endedBefore(cutoff, after, BATCH);
      if (rows.length === 0) break;
      after = { ended: rows.at(-1)!.ended_at, id: rows.at(-1)!.id };
      report.runs.oldestEndedAt ??= rows[0]!.ended_at;
      report.runs.newestEndedAt = after.ended;
      report.runs.count += rows.length;
      for (const r of rows) report.runs.logBytes += r.log_bytes;
      const sizes = await Promise.all(rows.map((r) => (r.has_workspace ? sizeOf(this.workspace(r.id)) : Promise.resolve(0))));
      for (const n of sizes) report.runs.workspaceBytes += n;
      if (!dryRun) {
        runs.deleteFinished(rows.map((r) => r.id));
        for (const r of rows) {
          await this.d.blobs.remove(join(this.d.logsDir, r.id));
          if (r.has_workspace) await this.d.blobs.remove(this.workspace(r.id));
        }
      }
      await breathe();
    }
  }

  private async workers(now: number, policy: RetentionPolicy, dryRun: boolean, report: GcReport): Promise<void> {
    const { workers } = this.d.store;
    const ids = workersToRemove(workers.gone(), now, policy);
    report.workers.count = ids.length;
    report.workers.ids = ids.slice(0, MAX_LISTED);
    if (dryRun || ids.length === 0) return;
    for (let i = 0; i < ids.length; i += BATCH) {
      const part = ids.slice(i, i + BATCH);
      workers.deleteIdle(part);
      for (const id of part) this.d.onWorkerRemoved(id);
    }
  }

  /** Log directories and workspace files whose run has no row (a crash between the two, or an old bug). */
  private async orphans(now: number, dryRun: boolean, report: GcReport): Promise<void> {
    const { runs, states } = this.d.store;
    /** `hasRow`: true/false for files this sweep knows, undefined for anything else (left alone). */
    const scanWith = async (dir: string, hasRow: (d: Dirent) => boolean | undefined): Promise<void> => {
      let entries: Dirent[];
      try { entries = await readdir(dir, { withFileTypes: true }); } catch { return; }
      let n = 0;
      for (const d of entries) {
        if (++n % BATCH === 0) await breathe();
        const known = hasRow(d);
        if (known === undefined || known) continue;
        const path = join(dir, d.name);
        let mtime: number;
        try { mtime = (await stat(path)).mtimeMs; } catch { continue; }
        if (!isOrphan(false, mtime, now)) continue;
        const bytes = await sizeOf(path);
        report.orphans.files++;
        report.orphans.bytes += bytes;
        if (report.orphans.paths.length < MAX_LISTED) report.orphans.paths.push(path.slice(this.d.dataDir.length + 1));
        if (!dryRun) await this.d.blobs.remove(path);
      }
    };
    const scan = (dir: string, idOf: (d: Dirent) => string | undefined): Promise<void> =>
      scanWith(dir, (d) => { const id = idOf(d); return id === undefined ? undefined : runs.exists(id); });
    await scan(this.d.logsDir, (d) => (d.isDirectory() && /^run_[A-Za-z0-9]+$/.test(d.name) ? d.name : undefined));
    await scan(this.d.workspacesDir, (d) => {
      const m = d.isFile() ? /^(run_[A-Za-z0-9]+)\.age$/.exec(d.name) : null;
      return m ? m[1] : undefined;
    });
    // State versions: --state-history decides which versions are kept (their
    // rows); a file with no row is one whose removal a crash interrupted.
    if (this.d.stateDir) {
      let stacks: Dirent[];
      try { stacks = await readdir(this.d.stateDir, { withFileTypes: true }); } catch { stacks = []; }
      for (const st of stacks) {
        if (!st.isDirectory() || !/^stk_[A-Za-z0-9]+$/.test(st.name)) continue;
        const dir = join(this.d.stateDir, st.name);
        await scanWith(dir, (d) => {
          const m = d.isFile() ? /^(\d+)\.age$/.exec(d.name) : null;
          return m ? states.version(st.name, Number(m[1])) !== undefined : undefined;
        });
      }
    }
  }

  private workspace(runId: string): string { return join(this.d.workspacesDir, `${runId}.age`); }
}
