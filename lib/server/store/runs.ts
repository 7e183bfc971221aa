// Runs and their phases in the database. A run's queue position is its
// queue_key (lowest first); a run's phases are rows numbered from 0.
import { TERMINAL_STATES, type Outcome, type PhaseSpec, type RunState, type ToolName } from '../../protocol.ts';
import { transaction } from '../db.ts';
import { limitSql, type Params, type Queries } from './queries.ts';

export interface RunRow {
  n: number; id: string; stack_id: string; stack_name: string; stack_kind: string; pool_id: string;
  proposed: number; state: RunState; phase: number; phase_count: number; spec: string; secret_env: Uint8Array | null;
  queue_key: number; worker_id: string | null; cancel_requested: number; has_workspace: number; reason: string | null;
  created_at: string; updated_at: string; ended_at: string | null;
  /** A tracked run of a managed-state stack: it takes the stack's state when it starts. */
  holds_state: number;
  /** JSON PlanSummary (lib/tool/plan.ts): counts and addresses, never values. */
  changes: string | null;
  drifted: number;
  /** What queued it: null (an admin), "push" (a Git webhook), "schedule:ID" */
  trigger: string | null;
  commit_repo: string | null; commit_branch: string | null; commit_sha: string | null;
  commit_author: string | null; commit_message: string | null;
}
export interface PhaseRow {
  run_id: string; idx: number; name: string; confirm: number; worker_id: string | null;
  assigned_at: string | null; started_at: string | null; ended_at: string | null;
  outcome: Outcome | null; exit_code: number | null; error: string | null; log_next_seq: number; log_bytes: number;
  step: string | null;
}
/** What a tool run's worker needs beyond the script (lib/tool/). */
export interface RunToolSpec { name: ToolName; projectRoot: string; manageState: boolean }
/** What a run was made from, frozen at trigger time (a later stack change does not touch it). */
/** Where a run's files come from when it has no uploaded workspace: fetched by the worker. */
export interface SourceSpec { repo: string; branch: string | null; commit: string | null; credential: string | null }
export interface RunSpec { image: string | null; env: Record<string, string>; phases: PhaseSpec[]; tool?: RunToolSpec; source?: SourceSpec }

/**
 * What choosing the next runs of a pool needs to know of a queued run. The
 * scheduler reads these for every dispatch and poll; the whole row (spec,
 * sealed env, commit) is read only for the runs actually assigned.
 */
export interface QueuedRef { id: string; queue_key: number; stack_id: string; holds_state: number }

/** A finished run as retention sees it: when it ended, and what it stores. */
export interface EndedRunRow { id: string; ended_at: string; has_workspace: number; log_bytes: number }

const TERMINAL = `(${TERMINAL_STATES.map((s) => `'${s}'`).join(', ')})`;

/** Of several queued tracked runs of one managed-state stack, only the first may start now. */
function firstPerStack(): (r: QueuedRef) => boolean {
  const seen = new Set<string>();
  return (r) => {
    if (r.holds_state !== 1) return true;
    if (seen.has(r.stack_id)) return false;
    seen.add(r.stack_id);
    return true;
  };
}

/**
 * QUEUED runs of the pool (first parameter) that may start now: a tracked run
 * of a managed-state stack waits while another active run of the stack holds
 * the state (lib/server/state.ts); proposed runs never wait.
 *
 * `CAST(? AS TEXT)` and a LIMIT written into the text (`limitSql`), not bare
 * parameters: SQLite's planner looks at the bound value of a bare `?` here
 * (weighing the partial index runs_queue) and of `LIMIT ?`, and a statement
 * whose plan depended on a bound value is compiled again every time that
 * value is bound, i.e. at every call. That made this, the query of every
 * dispatch and poll, cost 15-20 times the lookup itself.
 */
const STARTABLE = `pool_id = CAST(? AS TEXT) AND state = 'QUEUED' AND (holds_state = 0 OR NOT EXISTS (
    SELECT 1 FROM stacks s JOIN runs h ON h.id = s.state_holder
    WHERE s.id = r.stack_id AND h.id != r.id AND h.state IN ('QUEUED', 'RUNNING', 'UNCONFIRMED')))`;

export class RunStore {
  private readonly q: Queries;
  constructor(q: Queries) { this.q = q; }

  get(id: string): RunRow | undefined { return this.q.get<RunRow>('SELECT * FROM runs WHERE id = ?', [id]); }
  /** A new run at the end of the queue, with its phase rows. */
  insert(r: Omit<RunRow, 'n' | 'queue_key' | 'holds_state' | 'changes' | 'drifted' | 'trigger' | 'commit_repo' | 'commit_branch' | 'commit_sha' | 'commit_author' | 'commit_message'>
    & Partial<Pick<RunRow, 'holds_state' | 'trigger' | 'commit_repo' | 'commit_branch' | 'commit_sha' | 'commit_author' | 'commit_message'>>, phases: PhaseSpec[]): void {
    this.q.run(`INSERT INTO runs (id, stack_id, stack_name, stack_kind, pool_id, proposed, state, phase, phase_count, spec, secret_env, queue_key, worker_id, cancel_requested, has_workspace, reason, created_at, updated_at, ended_at, holds_state, trigger,
        commit_repo, commit_branch, commit_sha, commit_author, commit_message)
      VALUES ($id, $stack_id, $stack_name, $stack_kind, $pool_id, $proposed, $state, $phase, $phase_count, $spec, $secret_env,
        (SELECT coalesce(max(n), 0) + 1 FROM runs), $worker_id, $cancel_requested, $has_workspace, $reason, $created_at, $updated_at, $ended_at, $holds_state, $trigger,
        $commit_repo, $commit_branch, $commit_sha, $commit_author, $commit_message)`,
    { holds_state: 0, trigger: null, commit_repo: null, commit_branch: null, commit_sha: null, commit_author: null, commit_message: null, ...r });
    phases.forEach((p, i) => this.q.run('INSERT INTO phases (run_id, idx, name, confirm, step) VALUES (?, ?, ?, ?, ?)', [r.id, i, p.name, p.confirm ? 1 : 0, p.step ?? null]));
  }
  update(id: string, fields: Partial<RunRow>): void {
    this.q.update('runs', fields, 'id = $id', { id });
  }
  /** Newest first, optionally of one stack, pool or state. */
  list(filter: { stack?: string; pool?: string; state?: string; limit: number }): RunRow[] {
    const where: string[] = [];
    const p: Params = { limit: filter.limit };
    if (filter.stack) { where.push('stack_id = $stack'); p.stack = filter.stack; }
    if (filter.pool) { where.push('pool_id = $pool'); p.pool = filter.pool; }
    if (filter.state) { where.push('state = $state'); p.state = filter.state; }
    return this.q.all<RunRow>(`SELECT * FROM runs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY n DESC LIMIT $limit`, p);
  }
  /** QUEUED runs of a pool that may start now, in assignment order. */
  queued(poolId: string, limit: number): RunRow[] {
    return this.q.all<RunRow>(`SELECT * FROM runs r WHERE ${STARTABLE} ORDER BY queue_key LIMIT ${limitSql(limit)}`, [poolId]).filter(firstPerStack());
  }
  /** The same runs as `queued`, only what picking them needs (a third of the cost per call). */
  queuedRefs(poolId: string, limit: number): QueuedRef[] {
    return this.q.all<QueuedRef>(`SELECT id, queue_key, stack_id, holds_state FROM runs r WHERE ${STARTABLE} ORDER BY queue_key LIMIT ${limitSql(limit)}`, [poolId]).filter(firstPerStack());
  }
  unconfirmed(poolId: string): RunRow[] {
    // CAST: see STARTABLE.
    return this.q.all<RunRow>("SELECT * FROM runs WHERE pool_id = CAST(? AS TEXT) AND state = 'UNCONFIRMED' ORDER BY queue_key", [poolId]);
  }
  activeQueueKeys(poolId: string): number[] {
    return this.q.all<{ k: number }>("SELECT queue_key AS k FROM runs WHERE pool_id = ? AND state IN ('QUEUED', 'UNCONFIRMED')", [poolId]).map((r) => r.k);
  }
  /** A run a push already queued for this stack, commit and kind (webhook dedupe). */
  pushRun(stackId: string, sha: string, proposed: boolean): RunRow | undefined {
    return this.q.get<RunRow>("SELECT * FROM runs WHERE stack_id = ? AND commit_sha = ? AND proposed = ? AND trigger = 'push' LIMIT 1", [stackId, sha, proposed ? 1 : 0]);
  }
  /** Records a webhook delivery id; false when it was seen before. */
  addDelivery(id: string, now: string): boolean {
    return this.q.run('INSERT INTO hook_deliveries (id, received_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING', [id, now]) === 1;
  }
  /** The stack's newest run that has a sealed workspace (the source for runs the server starts itself). */
  latestWithWorkspace(stackId: string): RunRow | undefined {
    return this.q.get<RunRow>('SELECT * FROM runs WHERE stack_id = ? AND has_workspace = 1 ORDER BY n DESC LIMIT 1', [stackId]);
  }
  running(): RunRow[] { return this.q.all<RunRow>("SELECT * FROM runs WHERE state = 'RUNNING'"); }
  /** Runs that still hold a pool or a stack (deleting either is refused while there are any). */
  activeCount(of: 'pool' | 'stack', id: string): number {
    const col = of === 'pool' ? 'pool_id' : 'stack_id';
    return this.q.get<{ c: number }>(`SELECT count(*) AS c FROM runs WHERE ${col} = ? AND state IN ('QUEUED', 'RUNNING', 'UNCONFIRMED')`, [id])!.c;
  }

  // whole-table reads and removals (retention, metrics, backups)
  exists(id: string): boolean { return this.q.get('SELECT 1 AS x FROM runs WHERE id = ?', [id]) !== undefined; }
  count(): number { return this.q.get<{ c: number }>('SELECT count(*) AS c FROM runs')!.c; }
  /**
   * One page of finished runs that ended before `cutoff`, oldest first, after
   * the cursor `after` (ended_at, then id), with the log bytes of their phases.
   */
  endedBefore(cutoff: string, after: { ended: string; id: string }, limit: number): EndedRunRow[] {
    return this.q.all<EndedRunRow>(`
      SELECT r.id, r.ended_at, r.has_workspace, (SELECT coalesce(sum(p.log_bytes), 0) FROM phases p WHERE p.run_id = r.id) AS log_bytes
      FROM runs r WHERE r.state IN ${TERMINAL} AND r.ended_at < ? AND (r.ended_at > ? OR (r.ended_at = ? AND r.id > ?))
      ORDER BY r.ended_at, r.id LIMIT ?`, [cutoff, after.ended, after.ended, after.id, limit]);
  }
  /** Removes finished runs and their phases in one transaction (a run not finished stays). */
  deleteFinished(ids: string[]): void {
    const list = JSON.stringify(ids);
    transaction(this.q.db, () => {
      this.q.run('DELETE FROM phases WHERE run_id IN (SELECT value FROM json_each(?))', [list]);
      this.q.run(`DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?)) AND state IN ${TERMINAL}`, [list]);
    });
  }
  /** Runs not yet ended, counted by pool and state. */
  activeCounts(): { pool_id: string; state: RunState; c: number }[] {
    return this.q.all("SELECT pool_id, state, count(*) AS c FROM runs WHERE state IN ('QUEUED', 'RUNNING', 'UNCONFIRMED') GROUP BY pool_id, state");
  }
  /** Ids of runs with a sealed workspace, finished ones apart (their file never changes again). */
  withWorkspace(): { unfinished: string[]; finished: string[] } {
    const ids = (sql: string): string[] => this.q.all<{ id: string }>(sql).map((r) => r.id);
    return {
      unfinished: ids(`SELECT id FROM runs WHERE has_workspace = 1 AND state NOT IN ${TERMINAL} ORDER BY id`),
      finished: ids(`SELECT id FROM runs WHERE has_workspace = 1 AND state IN ${TERMINAL} ORDER BY id`),
    };
  }
  /** Every phase that stored log bytes, with how many. */
  phaseLogs(): { run_id: string; idx: number; log_bytes: number }[] {
    return this.q.all('SELECT run_id, idx, log_bytes FROM phases WHERE log_bytes > 0 ORDER BY run_id, idx');
  }

  // phases
  phase(runId: string, idx: number): PhaseRow | undefined { return this.q.get<PhaseRow>('SELECT * FROM phases WHERE run_id = ? AND idx = ?', [runId, idx]); }
  phases(runId: string): PhaseRow[] { return this.q.all<PhaseRow>('SELECT * FROM phases WHERE run_id = ?', [runId]).sort((a, b) => a.idx - b.idx); }
  updatePhase(runId: string, idx: number, fields: Partial<PhaseRow>): void {
    this.q.update('phases', fields, 'run_id = $run_id AND idx = $idx', { run_id: runId, idx });
  }
}
