// Workers in the database: one row per registered launcher process (one slot).
import type { Queries } from './queries.ts';

export interface WorkerRow {
  id: string; pool_id: string; metadata: string; version: string | null; host: string;
  registered_at: string; last_seen: string; idle_since: string | null; current_run: string | null;
  drained: number; offline: number; offline_since: string | null; cycle_gen: number; deregistered_at: string | null;
}

export class WorkerStore {
  private readonly q: Queries;
  constructor(q: Queries) { this.q = q; }

  get(id: string): WorkerRow | undefined { return this.q.get<WorkerRow>('SELECT * FROM workers WHERE id = ?', [id]); }
  /** Registered workers (of one pool, or all), oldest first. */
  list(poolId?: string): WorkerRow[] {
    return poolId
      ? this.q.all<WorkerRow>('SELECT * FROM workers WHERE deregistered_at IS NULL AND pool_id = ? ORDER BY registered_at, id', [poolId])
      : this.q.all<WorkerRow>('SELECT * FROM workers WHERE deregistered_at IS NULL ORDER BY registered_at, id');
  }
  insert(w: WorkerRow): void {
    this.q.run(`INSERT INTO workers (id, pool_id, metadata, version, host, registered_at, last_seen, idle_since, current_run, drained, offline, offline_since, cycle_gen, deregistered_at)
      VALUES ($id, $pool_id, $metadata, $version, $host, $registered_at, $last_seen, $idle_since, $current_run, $drained, $offline, $offline_since, $cycle_gen, $deregistered_at)`, { ...w });
  }
  /** Frees a worker from `runId` (and only from it): one statement, no read first. */
  release(id: string, runId: string, now: string): void {
    this.q.run('UPDATE workers SET current_run = NULL, idle_since = ? WHERE id = ? AND current_run = ?', [now, id, runId]);
  }
  update(id: string, fields: Partial<WorkerRow>): void {
    this.q.update('workers', fields, 'id = $id', { id });
  }
  /** Registered workers of every pool, counted by pool and status (OFFLINE, BUSY, DRAINED, IDLE, first that applies). */
  statusCounts(): { pool_id: string; status: string; c: number }[] {
    return this.q.all(`
      SELECT pool_id, CASE WHEN offline = 1 THEN 'OFFLINE' WHEN current_run IS NOT NULL THEN 'BUSY' WHEN drained = 1 THEN 'DRAINED' ELSE 'IDLE' END AS status, count(*) AS c
      FROM workers WHERE deregistered_at IS NULL GROUP BY 1, 2`);
  }
  count(): number { return this.q.get<{ c: number }>('SELECT count(*) AS c FROM workers WHERE deregistered_at IS NULL')!.c; }
  /** Workers OFFLINE or deregistered: the ones retention may remove. */
  gone(): Pick<WorkerRow, 'id' | 'offline' | 'offline_since' | 'last_seen' | 'current_run' | 'deregistered_at'>[] {
    return this.q.all('SELECT id, offline, offline_since, last_seen, current_run, deregistered_at FROM workers WHERE offline = 1 OR deregistered_at IS NOT NULL');
  }
  /** Removes the rows of these workers that hold no run. */
  deleteIdle(ids: string[]): void {
    this.q.run('DELETE FROM workers WHERE id IN (SELECT value FROM json_each(?)) AND current_run IS NULL', [JSON.stringify(ids)]);
  }
  /** A deleted pool's workers leave the list. */
  deregisterPool(poolId: string, now: string): void {
    this.q.run('UPDATE workers SET deregistered_at = ? WHERE pool_id = ? AND deregistered_at IS NULL', [now, poolId]);
  }
}
