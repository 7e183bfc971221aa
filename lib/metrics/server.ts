// The server's metrics (GET /metrics): what an autoscaler and an alerting rule
// need. Gauges are read from the database and the live presence at scrape time
// (a few indexed counts over active runs and the workers table, never a scan
// of finished runs); counters and histograms are fed by the service as runs
// and phases end. Pools are labelled by name (`pool`), and every live pool has
// every gauge series, at 0 when empty, so `launcher_pending_runs{pool="x"}`
// exists before the first run.
import { readdirSync } from 'node:fs';
import type { Outcome, RunState } from '../protocol.ts';
import type { Store } from '../server/store.ts';
import { VERSION } from '../version.ts';
import { Registry, type Labels } from './registry.ts';

/** Seconds: 1 s to 6 h, for runs and phases (Terraform plans take seconds, applies hours). */
export const DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600];
/** Seconds a run waits in its pool's queue for a worker: 100 ms to 1 h. */
export const WAIT_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

const LAST_BACKUP_AT = 'last_backup_at';
const LAST_BACKUP_SECONDS = 'last_backup_seconds';
const WORKER_STATUSES = ['IDLE', 'BUSY', 'DRAINED', 'OFFLINE'] as const;
const ACTIVE = ['QUEUED', 'RUNNING', 'UNCONFIRMED'] as const;

export interface MetricsSources {
  store: {
    pools: Pick<Store['pools'], 'names'>;
    runs: Pick<Store['runs'], 'activeCounts'>;
    workers: Pick<Store['workers'], 'statusCounts'>;
  };
  /** Held long-polls, and accepting ones per pool id. */
  presence: { heldCount(): number; acceptingByPool(): Map<string, number> };
  sealed(): { files: number; bytes: number };
  /** Pool id → name (cached by the store). */
  poolName(id: string): string;
  /** The database's meta table: the last backup's time survives a restart there. */
  meta: { get(key: string): string | undefined; set(key: string, value: string): void };
}

const secondsBetween = (from: string | null | undefined, to: string): number | undefined => {
  if (!from) return undefined;
  const d = (Date.parse(to) - Date.parse(from)) / 1000;
  return Number.isFinite(d) && d >= 0 ? d : undefined;
};

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly src: MetricsSources;
  private readonly runOutcomes;
  private readonly phaseOutcomes;
  private readonly runDuration;
  private readonly phaseDuration;
  private readonly queueWait;
  private readonly logBytes;
  private readonly backups;

  constructor(src: MetricsSources) {
    this.src = src;
    const r = this.registry;
    r.gauge('launcher_pending_runs', 'Runs QUEUED in a pool, waiting for a worker (scale out on this)', ['pool'], () => this.active().pending);
    r.gauge('launcher_active_runs', 'Runs not yet ended, by pool and state (UNCONFIRMED waits for a person, not for a worker)', ['pool', 'state'], () => this.active().active);
    r.gauge('launcher_workers', 'Registered workers by pool and status', ['pool', 'status'], () => this.workers());
    r.gauge('launcher_long_polls_held', 'Worker long-polls the server is holding open', [], () => [{ labels: {}, value: src.presence.heldCount() }]);
    r.gauge('launcher_waiting_workers', 'Workers holding a long-poll ready to take a run at once, by pool', ['pool'], () => this.waiting());
    r.gauge('launcher_sealed_bytes_stored', 'Bytes of sealed workspaces stored by the server', [], () => [{ labels: {}, value: src.sealed().bytes }]);
    r.gauge('launcher_sealed_files_stored', 'Sealed workspace files stored by the server', [], () => [{ labels: {}, value: src.sealed().files }]);
    this.runOutcomes = r.counter('launcher_run_outcomes_total', 'Runs that ended, by pool and end state', ['pool', 'state']);
    this.phaseOutcomes = r.counter('launcher_phase_outcomes_total', 'Phases that ended, by pool and outcome', ['pool', 'outcome']);
    this.runDuration = r.histogram('launcher_run_duration_seconds', 'Runs from trigger to end, by pool and end state', ['pool', 'state'], DURATION_BUCKETS);
    this.phaseDuration = r.histogram('launcher_phase_duration_seconds', 'Phases from start (or assignment, if never started) to end, by pool and outcome', ['pool', 'outcome'], DURATION_BUCKETS);
    this.queueWait = r.histogram('launcher_run_queue_wait_seconds', 'Time a run spent QUEUED before a worker took it, by pool', ['pool'], WAIT_BUCKETS);
    this.logBytes = r.counter('launcher_log_bytes_ingested_total', 'Log bytes (masked) received from workers and stored, by pool', ['pool']);
    this.backups = r.counter('launcher_backups_total', 'Online backups, by result (ok, failed)', ['result']);
    r.gauge('launcher_last_backup_timestamp_seconds', 'When the last complete online backup finished, Unix seconds (0: never)', [], () => [{ labels: {}, value: Number(src.meta.get(LAST_BACKUP_AT) ?? 0) }]);
    r.gauge('launcher_last_backup_duration_seconds', 'How long the last complete online backup took', [], () => [{ labels: {}, value: Number(src.meta.get(LAST_BACKUP_SECONDS) ?? 0) }]);
    r.gauge('launcher_build_info', 'The server\'s version (value 1)', ['version'], () => [{ labels: { version: VERSION }, value: 1 }]);
    r.counterFrom('process_cpu_seconds_total', 'User and system CPU time of the server process', [], () => {
      const u = process.cpuUsage();
      return [{ labels: {}, value: (u.user + u.system) / 1e6 }];
    });
    r.gauge('process_resident_memory_bytes', 'Resident memory of the server process', [], () => [{ labels: {}, value: process.memoryUsage.rss() }]);
    r.gauge('process_open_fds', 'Open file descriptors of the server process', [], () => {
      try { return [{ labels: {}, value: readdirSync('/proc/self/fd').length }]; } catch { return []; }
    });
    const started = Date.now() / 1000 - process.uptime();
    r.gauge('process_start_time_seconds', 'Start time of the server process, Unix seconds', [], () => [{ labels: {}, value: Math.floor(started) }]);
    for (const result of ['ok', 'failed']) this.backups.touch({ result });
  }

  private livePools(): { id: string; name: string }[] {
    return this.src.store.pools.names();
  }

  private active(): { pending: { labels: Labels; value: number }[]; active: { labels: Labels; value: number }[] } {
    const counts = new Map<string, number>();
    for (const r of this.src.store.runs.activeCounts()) counts.set(`${r.pool_id}\0${r.state}`, r.c);
    const pending: { labels: Labels; value: number }[] = [];
    const active: { labels: Labels; value: number }[] = [];
    for (const p of this.livePools()) {
      pending.push({ labels: { pool: p.name }, value: counts.get(`${p.id}\0QUEUED`) ?? 0 });
      for (const s of ACTIVE) active.push({ labels: { pool: p.name, state: s }, value: counts.get(`${p.id}\0${s}`) ?? 0 });
    }
    return { pending, active };
  }

  private workers(): { labels: Labels; value: number }[] {
    const counts = new Map(this.src.store.workers.statusCounts().map((r) => [`${r.pool_id}\0${r.status}`, r.c]));
    return this.livePools().flatMap((p) => WORKER_STATUSES.map((s) => ({ labels: { pool: p.name, status: s }, value: counts.get(`${p.id}\0${s}`) ?? 0 })));
  }

  private waiting(): { labels: Labels; value: number }[] {
    const by = this.src.presence.acceptingByPool();
    return this.livePools().map((p) => ({ labels: { pool: p.name }, value: by.get(p.id) ?? 0 }));
  }

  // ------------------------------------------------------------ events

  runEnded(run: { pool_id: string; created_at: string }, state: RunState, endedAt: string): void {
    const pool = this.src.poolName(run.pool_id);
    this.runOutcomes.inc({ pool, state });
    const d = secondsBetween(run.created_at, endedAt);
    if (d !== undefined) this.runDuration.observe({ pool, state }, d);
  }

  phaseEnded(poolId: string, ph: { started_at: string | null; assigned_at: string | null }, outcome: Outcome, endedAt: string): void {
    const pool = this.src.poolName(poolId);
    this.phaseOutcomes.inc({ pool, outcome });
    const d = secondsBetween(ph.started_at ?? ph.assigned_at, endedAt);
    if (d !== undefined) this.phaseDuration.observe({ pool, outcome }, d);
  }

  /** A worker took a run that has been QUEUED since `queuedAt`. */
  runAssigned(poolId: string, queuedAt: string, now: string): void {
    const d = secondsBetween(queuedAt, now);
    if (d !== undefined) this.queueWait.observe({ pool: this.src.poolName(poolId) }, d);
  }

  logIngested(poolId: string, bytes: number): void {
    this.logBytes.inc({ pool: this.src.poolName(poolId) }, bytes);
  }

  backupFinished(ok: boolean, seconds: number, now = Date.now()): void {
    this.backups.inc({ result: ok ? 'ok' : 'failed' });
    if (!ok) return;
    this.src.meta.set(LAST_BACKUP_AT, String(Math.floor(now / 1000)));
    this.src.meta.set(LAST_BACKUP_SECONDS, String(Math.round(seconds * 1000) / 1000));
  }

  render(): string { return this.registry.render(); }
}
