// Typed access to the database: rows in, plain objects out, one module per
// noun (store/pools.ts, workers.ts, stacks.ts, runs.ts, states.ts, schedules.ts) and SQL only there.
// No policy here; service.ts and the API ops decide, the store reads and writes.
import type { DatabaseSync } from 'node:sqlite';
import { PoolStore } from './store/pools.ts';
import { RunStore } from './store/runs.ts';
import { ScheduleStore } from './store/schedules.ts';
import { StackStore } from './store/stacks.ts';
import { StateStore } from './store/states.ts';
import { WorkerStore } from './store/workers.ts';
import { Queries } from './store/queries.ts';

export type { KeyRow, PoolRow } from './store/pools.ts';
export type { PhaseRow, RunRow, RunSpec, RunToolSpec, SourceSpec } from './store/runs.ts';
export type { ScheduleRow } from './store/schedules.ts';
export type { StackRow } from './store/stacks.ts';
export type { StateVersionRow } from './store/states.ts';
export type { WorkerRow } from './store/workers.ts';

export class Store {
  readonly db: DatabaseSync;
  private readonly q: Queries;
  /** Pools and their keys. */
  readonly pools: PoolStore;
  /** Registered launchers (one slot each). */
  readonly workers: WorkerStore;
  /** Stacks and modules. */
  readonly stacks: StackStore;
  /** Runs and their phases. */
  readonly runs: RunStore;
  /** Sealed state versions of managed-state stacks. */
  readonly states: StateStore;
  /** Drift-detection schedules. */
  readonly schedules: ScheduleStore;
  constructor(db: DatabaseSync) {
    this.db = db;
    this.q = new Queries(db);
    this.pools = new PoolStore(this.q);
    this.workers = new WorkerStore(this.q);
    this.stacks = new StackStore(this.q);
    this.runs = new RunStore(this.q);
    this.states = new StateStore(this.q);
    this.schedules = new ScheduleStore(this.q);
  }

  // the server's own settings (admin token hash, …)
  meta(key: string): string | undefined { return this.q.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key])?.value; }
  setMeta(key: string, value: string): void { this.q.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', [key, value]); }
}
