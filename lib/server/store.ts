// Typed access to the database: rows in, plain objects out. No policy here;
// service.ts decides, this file only reads and writes.
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { Outcome, PhaseSpec, RunState } from '../protocol.ts';
import { PoolStore } from './store/pools.ts';
import { StackStore } from './store/stacks.ts';
import { WorkerStore } from './store/workers.ts';
import { Queries, type Params } from './store/queries.ts';

export type { KeyRow, PoolRow } from './store/pools.ts';
export type { StackRow } from './store/stacks.ts';
export type { WorkerRow } from './store/workers.ts';

export interface RunRow {
  n: number; id: string; stack_id: string; stack_name: string; stack_kind: string; pool_id: string;
  proposed: number; state: RunState; phase: number; phase_count: number; spec: string; secret_env: Uint8Array | null;
  queue_key: number; worker_id: string | null; cancel_requested: number; has_workspace: number; reason: string | null;
  created_at: string; updated_at: string; ended_at: string | null;
}
export interface PhaseRow {
  run_id: string; idx: number; name: string; confirm: number; worker_id: string | null;
  assigned_at: string | null; started_at: string | null; ended_at: string | null;
  outcome: Outcome | null; exit_code: number | null; error: string | null; log_next_seq: number; log_bytes: number;
}
export interface RunSpec { image: string | null; env: Record<string, string>; phases: PhaseSpec[] }

export class Store {
  readonly db: DatabaseSync;
  private readonly q: Queries;
  /** Pools and their keys. */
  readonly pools: PoolStore;
  /** Registered launchers (one slot each). */
  readonly workers: WorkerStore;
  /** Stacks and modules. */
  readonly stacks: StackStore;
  constructor(db: DatabaseSync) {
    this.db = db;
    this.q = new Queries(db);
    this.pools = new PoolStore(this.q);
    this.workers = new WorkerStore(this.q);
    this.stacks = new StackStore(this.q);
  }

  private get<T>(sql: string, p: Params | SQLInputValue[] = []): T | undefined { return this.q.get<T>(sql, p); }
  private all<T>(sql: string, p: Params | SQLInputValue[] = []): T[] { return this.q.all<T>(sql, p); }
  private run(sql: string, p: Params | SQLInputValue[] = []): number { return this.q.run(sql, p); }

  // meta
  meta(key: string): string | undefined { return this.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key])?.value; }
  setMeta(key: string, value: string): void { this.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', [key, value]); }

  // runs holding a pool or stack
  activeRunCount(col: 'pool_id' | 'stack_id', id: string): number {
    return this.get<{ c: number }>(`SELECT count(*) AS c FROM runs WHERE ${col} = ? AND state IN ('QUEUED', 'RUNNING', 'UNCONFIRMED')`, [id])!.c;
  }

  // runs and phases
  runById(id: string): RunRow | undefined { return this.get<RunRow>('SELECT * FROM runs WHERE id = ?', [id]); }
  insertRun(r: Omit<RunRow, 'n' | 'queue_key'>, phases: PhaseSpec[]): void {
    this.run(`INSERT INTO runs (id, stack_id, stack_name, stack_kind, pool_id, proposed, state, phase, phase_count, spec, secret_env, queue_key, worker_id, cancel_requested, has_workspace, reason, created_at, updated_at, ended_at)
      VALUES ($id, $stack_id, $stack_name, $stack_kind, $pool_id, $proposed, $state, $phase, $phase_count, $spec, $secret_env,
        (SELECT coalesce(max(n), 0) + 1 FROM runs), $worker_id, $cancel_requested, $has_workspace, $reason, $created_at, $updated_at, $ended_at)`, { ...r });
    phases.forEach((p, i) => this.run('INSERT INTO phases (run_id, idx, name, confirm) VALUES (?, ?, ?, ?)', [r.id, i, p.name, p.confirm ? 1 : 0]));
  }
  updateRun(id: string, fields: Partial<RunRow>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    this.run(`UPDATE runs SET ${keys.map((k) => `${k} = $${k}`).join(', ')} WHERE id = $id`, { ...(fields as Params), id });
  }
  runs(filter: { stack?: string; pool?: string; state?: string; limit: number }): RunRow[] {
    const where: string[] = [];
    const p: Params = { limit: filter.limit };
    if (filter.stack) { where.push('stack_id = $stack'); p.stack = filter.stack; }
    if (filter.pool) { where.push('pool_id = $pool'); p.pool = filter.pool; }
    if (filter.state) { where.push('state = $state'); p.state = filter.state; }
    return this.all<RunRow>(`SELECT * FROM runs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY n DESC LIMIT $limit`, p);
  }
  /** QUEUED runs of a pool in assignment order. */
  queued(poolId: string, limit: number): RunRow[] {
    return this.all<RunRow>("SELECT * FROM runs WHERE pool_id = ? AND state = 'QUEUED' ORDER BY queue_key LIMIT ?", [poolId, limit]);
  }
  unconfirmed(poolId: string): RunRow[] {
    return this.all<RunRow>("SELECT * FROM runs WHERE pool_id = ? AND state = 'UNCONFIRMED' ORDER BY queue_key", [poolId]);
  }
  activeQueueKeys(poolId: string): number[] {
    return this.all<{ k: number }>("SELECT queue_key AS k FROM runs WHERE pool_id = ? AND state IN ('QUEUED', 'UNCONFIRMED')", [poolId]).map((r) => r.k);
  }
  runningRuns(): RunRow[] { return this.all<RunRow>("SELECT * FROM runs WHERE state = 'RUNNING'"); }
  phase(runId: string, idx: number): PhaseRow | undefined { return this.get<PhaseRow>('SELECT * FROM phases WHERE run_id = ? AND idx = ?', [runId, idx]); }
  phases(runId: string): PhaseRow[] { return this.all<PhaseRow>('SELECT * FROM phases WHERE run_id = ?', [runId]).sort((a, b) => a.idx - b.idx); }
  updatePhase(runId: string, idx: number, fields: Partial<PhaseRow>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    this.run(`UPDATE phases SET ${keys.map((k) => `${k} = $${k}`).join(', ')} WHERE run_id = $run_id AND idx = $idx`, { ...(fields as Params), run_id: runId, idx });
  }
}
