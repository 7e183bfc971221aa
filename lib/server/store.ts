// Typed access to the database: rows in, plain objects out. No policy here;
// service.ts decides, this file only reads and writes.
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { KeyState, Outcome, PhaseSpec, RunState, StackKind, ToolName } from '../protocol.ts';

export interface PoolRow { id: string; name: string; description: string; cycle: number; created_at: string; deleted_at: string | null }
export interface KeyRow {
  id: string; pool_id: string; state: KeyState; serial: string;
  public_key_pem: string; cert_pem: string; not_after: string; created_at: string; retired_at: string | null;
}
export interface WorkerRow {
  id: string; pool_id: string; metadata: string; version: string | null; host: string;
  registered_at: string; last_seen: string; idle_since: string | null; current_run: string | null;
  drained: number; offline: number; offline_since: string | null; cycle_gen: number; deregistered_at: string | null;
}
export interface StackRow {
  id: string; name: string; kind: StackKind; pool_id: string | null; image: string | null;
  env: string; secret_env: Uint8Array | null; phases: string; created_at: string; updated_at: string; deleted_at: string | null;
  /** JSON ToolConfig (lib/tool/config.ts) or null for a phase stack. */
  tool: string | null; project_root: string; state_history: number;
  /** The tracked run that holds the stack's state (meaningful while that run is active). */
  state_holder: string | null;
  /** The scheduled proposed run that last found drift, until a tracked run applies. */
  drifted_run: string | null;
  repo: string | null; repo_key: string | null; branch: string | null; repo_credential: Uint8Array | null;
  trigger_paths: string; propose_branches: number; webhook_secret: string | null;
}
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
/** Where a run's files come from when it has no uploaded workspace: fetched by the worker. */
export interface SourceSpec { repo: string; branch: string | null; commit: string | null; credential: string | null }
export interface RunSpec { image: string | null; env: Record<string, string>; phases: PhaseSpec[]; tool?: RunToolSpec; source?: SourceSpec }
export interface StateVersionRow {
  stack_id: string; version: number; run_id: string | null; source: string;
  serial: number | null; lineage: string | null; size: number; sha256: string; created_at: string;
}

type Params = Record<string, SQLInputValue>;

/** Of several queued tracked runs of one managed-state stack, only the first may start now. */
function firstPerStack(): (r: RunRow) => boolean {
  const seen = new Set<string>();
  return (r) => {
    if (r.holds_state !== 1) return true;
    if (seen.has(r.stack_id)) return false;
    seen.add(r.stack_id);
    return true;
  };
}

export class Store {
  readonly db: DatabaseSync;
  private cache = new Map<string, ReturnType<DatabaseSync['prepare']>>();
  constructor(db: DatabaseSync) { this.db = db; }

  private st(sql: string): ReturnType<DatabaseSync['prepare']> {
    let s = this.cache.get(sql);
    if (!s) { s = this.db.prepare(sql); this.cache.set(sql, s); }
    return s;
  }
  get<T>(sql: string, p: Params | SQLInputValue[] = []): T | undefined {
    return (Array.isArray(p) ? this.st(sql).get(...p) : this.st(sql).get(p)) as T | undefined;
  }
  all<T>(sql: string, p: Params | SQLInputValue[] = []): T[] {
    return (Array.isArray(p) ? this.st(sql).all(...p) : this.st(sql).all(p)) as T[];
  }
  run(sql: string, p: Params | SQLInputValue[] = []): number {
    const r = Array.isArray(p) ? this.st(sql).run(...p) : this.st(sql).run(p);
    return Number(r.changes);
  }

  // meta
  meta(key: string): string | undefined { return this.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key])?.value; }
  setMeta(key: string, value: string): void { this.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', [key, value]); }

  // pools and keys
  // Pools and keys are read on every worker request and change rarely: they
  // are cached here, and every write to them goes through forgetPools().
  private poolCache = new Map<string, PoolRow | undefined>();
  private serialCache = new Map<string, KeyRow | undefined>();
  private recipientsCache = new Map<string, string[]>();
  forgetPools(): void { this.poolCache.clear(); this.serialCache.clear(); this.recipientsCache.clear(); }

  pool(idOrName: string): PoolRow | undefined {
    const byId = this.poolAny(idOrName);
    if (byId && !byId.deleted_at) return byId;
    return this.get<PoolRow>('SELECT * FROM pools WHERE deleted_at IS NULL AND name = ?', [idOrName]);
  }
  poolAny(id: string): PoolRow | undefined {
    if (this.poolCache.has(id)) return this.poolCache.get(id);
    const row = this.get<PoolRow>('SELECT * FROM pools WHERE id = ?', [id]);
    if (this.poolCache.size > 10_000) this.poolCache.clear();
    this.poolCache.set(id, row);
    return row;
  }
  pools(): PoolRow[] { return this.all<PoolRow>('SELECT * FROM pools WHERE deleted_at IS NULL ORDER BY created_at, id'); }
  keys(poolId: string): KeyRow[] { return this.all<KeyRow>('SELECT * FROM pool_keys WHERE pool_id = ? ORDER BY created_at, id', [poolId]); }
  activeKeys(poolId: string): KeyRow[] { return this.all<KeyRow>("SELECT * FROM pool_keys WHERE pool_id = ? AND state = 'active' ORDER BY created_at, id", [poolId]); }
  /** Public keys of a pool's active keys (what new sealed state is sealed to), cached like pools. */
  recipients(poolId: string): string[] {
    let r = this.recipientsCache.get(poolId);
    if (!r) {
      r = this.activeKeys(poolId).map((k) => k.public_key_pem);
      if (this.recipientsCache.size > 10_000) this.recipientsCache.clear();
      this.recipientsCache.set(poolId, r);
    }
    return r;
  }
  keyBySerial(serial: string): KeyRow | undefined {
    if (this.serialCache.has(serial)) return this.serialCache.get(serial);
    const row = this.get<KeyRow>('SELECT * FROM pool_keys WHERE serial = ?', [serial]);
    if (this.serialCache.size > 10_000) this.serialCache.clear();
    this.serialCache.set(serial, row);
    return row;
  }
  key(poolId: string, id: string): KeyRow | undefined { return this.get<KeyRow>('SELECT * FROM pool_keys WHERE pool_id = ? AND id = ?', [poolId, id]); }
  insertKey(k: KeyRow): void {
    this.forgetPools();
    this.run('INSERT INTO pool_keys (id, pool_id, state, serial, public_key_pem, cert_pem, not_after, created_at, retired_at) VALUES ($id, $pool_id, $state, $serial, $public_key_pem, $cert_pem, $not_after, $created_at, $retired_at)', { ...k });
  }
  poolCounts(poolId: string): { workers: number; busy: number; pending: number } {
    const w = this.get<{ workers: number; busy: number }>('SELECT count(*) AS workers, count(current_run) AS busy FROM workers WHERE pool_id = ? AND deregistered_at IS NULL AND offline = 0', [poolId])!;
    const r = this.get<{ pending: number }>("SELECT count(*) AS pending FROM runs WHERE pool_id = ? AND state IN ('QUEUED', 'UNCONFIRMED')", [poolId])!;
    return { workers: w.workers, busy: w.busy, pending: r.pending };
  }
  activeRunCount(col: 'pool_id' | 'stack_id', id: string): number {
    return this.get<{ c: number }>(`SELECT count(*) AS c FROM runs WHERE ${col} = ? AND state IN ('QUEUED', 'RUNNING', 'UNCONFIRMED')`, [id])!.c;
  }

  // workers
  worker(id: string): WorkerRow | undefined { return this.get<WorkerRow>('SELECT * FROM workers WHERE id = ?', [id]); }
  workers(poolId?: string): WorkerRow[] {
    return poolId
      ? this.all<WorkerRow>('SELECT * FROM workers WHERE deregistered_at IS NULL AND pool_id = ? ORDER BY registered_at, id', [poolId])
      : this.all<WorkerRow>('SELECT * FROM workers WHERE deregistered_at IS NULL ORDER BY registered_at, id');
  }
  insertWorker(w: WorkerRow): void {
    this.run(`INSERT INTO workers (id, pool_id, metadata, version, host, registered_at, last_seen, idle_since, current_run, drained, offline, offline_since, cycle_gen, deregistered_at)
      VALUES ($id, $pool_id, $metadata, $version, $host, $registered_at, $last_seen, $idle_since, $current_run, $drained, $offline, $offline_since, $cycle_gen, $deregistered_at)`, { ...w });
  }
  /** Frees a worker from `runId` (and only from it): one statement, no read first. */
  releaseWorker(id: string, runId: string, now: string): void {
    this.run('UPDATE workers SET current_run = NULL, idle_since = ? WHERE id = ? AND current_run = ?', [now, id, runId]);
  }
  updateWorker(id: string, fields: Partial<WorkerRow>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    this.run(`UPDATE workers SET ${keys.map((k) => `${k} = $${k}`).join(', ')} WHERE id = $id`, { ...(fields as Params), id });
  }

  // stacks
  stack(idOrName: string): StackRow | undefined {
    return this.get<StackRow>('SELECT * FROM stacks WHERE id = ? AND deleted_at IS NULL', [idOrName]) ??
      this.get<StackRow>('SELECT * FROM stacks WHERE deleted_at IS NULL AND name = ?', [idOrName]);
  }
  /** By id, deleted or not (a deleted stack's state is kept until purged). */
  stackAny(id: string): StackRow | undefined { return this.get<StackRow>('SELECT * FROM stacks WHERE id = ?', [id]); }
  stacks(): StackRow[] { return this.all<StackRow>('SELECT * FROM stacks WHERE deleted_at IS NULL ORDER BY created_at, id'); }
  insertStack(s: StackRow): void {
    this.run(`INSERT INTO stacks (id, name, kind, pool_id, image, env, secret_env, phases, created_at, updated_at, deleted_at, tool, project_root, state_history, state_holder, drifted_run,
        repo, repo_key, branch, repo_credential, trigger_paths, propose_branches, webhook_secret)
      VALUES ($id, $name, $kind, $pool_id, $image, $env, $secret_env, $phases, $created_at, $updated_at, $deleted_at, $tool, $project_root, $state_history, $state_holder, $drifted_run,
        $repo, $repo_key, $branch, $repo_credential, $trigger_paths, $propose_branches, $webhook_secret)`, { ...s });
  }
  /** Live stacks whose repository has this comparable form (repo.ts repoKey). */
  stacksByRepoKey(keys: string[]): StackRow[] {
    if (keys.length === 0) return [];
    return this.all<StackRow>(`SELECT * FROM stacks WHERE deleted_at IS NULL AND repo_key IN (${keys.map(() => '?').join(', ')}) ORDER BY created_at, id`, keys);
  }
  updateStack(id: string, fields: Partial<StackRow>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    this.run(`UPDATE stacks SET ${keys.map((k) => `${k} = $${k}`).join(', ')} WHERE id = $id`, { ...(fields as Params), id });
  }

  // runs and phases
  runById(id: string): RunRow | undefined { return this.get<RunRow>('SELECT * FROM runs WHERE id = ?', [id]); }
  insertRun(r: Omit<RunRow, 'n' | 'queue_key' | 'holds_state' | 'changes' | 'drifted' | 'trigger' | 'commit_repo' | 'commit_branch' | 'commit_sha' | 'commit_author' | 'commit_message'>
    & Partial<Pick<RunRow, 'holds_state' | 'trigger' | 'commit_repo' | 'commit_branch' | 'commit_sha' | 'commit_author' | 'commit_message'>>, phases: PhaseSpec[]): void {
    this.run(`INSERT INTO runs (id, stack_id, stack_name, stack_kind, pool_id, proposed, state, phase, phase_count, spec, secret_env, queue_key, worker_id, cancel_requested, has_workspace, reason, created_at, updated_at, ended_at, holds_state, trigger,
        commit_repo, commit_branch, commit_sha, commit_author, commit_message)
      VALUES ($id, $stack_id, $stack_name, $stack_kind, $pool_id, $proposed, $state, $phase, $phase_count, $spec, $secret_env,
        (SELECT coalesce(max(n), 0) + 1 FROM runs), $worker_id, $cancel_requested, $has_workspace, $reason, $created_at, $updated_at, $ended_at, $holds_state, $trigger,
        $commit_repo, $commit_branch, $commit_sha, $commit_author, $commit_message)`,
    { holds_state: 0, trigger: null, commit_repo: null, commit_branch: null, commit_sha: null, commit_author: null, commit_message: null, ...r });
    phases.forEach((p, i) => this.run('INSERT INTO phases (run_id, idx, name, confirm, step) VALUES (?, ?, ?, ?, ?)', [r.id, i, p.name, p.confirm ? 1 : 0, p.step ?? null]));
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
    // A tracked run of a managed-state stack waits while another active run of
    // the stack holds the state (lib/server/state.ts); proposed runs never wait.
    return this.all<RunRow>(`SELECT * FROM runs r WHERE pool_id = ? AND state = 'QUEUED' AND (holds_state = 0 OR NOT EXISTS (
        SELECT 1 FROM stacks s JOIN runs h ON h.id = s.state_holder
        WHERE s.id = r.stack_id AND h.id != r.id AND h.state IN ('QUEUED', 'RUNNING', 'UNCONFIRMED')))
      ORDER BY queue_key LIMIT ?`, [poolId, limit]).filter(firstPerStack());
  }
  unconfirmed(poolId: string): RunRow[] {
    return this.all<RunRow>("SELECT * FROM runs WHERE pool_id = ? AND state = 'UNCONFIRMED' ORDER BY queue_key", [poolId]);
  }
  activeQueueKeys(poolId: string): number[] {
    return this.all<{ k: number }>("SELECT queue_key AS k FROM runs WHERE pool_id = ? AND state IN ('QUEUED', 'UNCONFIRMED')", [poolId]).map((r) => r.k);
  }
  /** A run a push already queued for this stack, commit and kind (webhook dedupe). */
  pushRun(stackId: string, sha: string, proposed: boolean): RunRow | undefined {
    return this.get<RunRow>("SELECT * FROM runs WHERE stack_id = ? AND commit_sha = ? AND proposed = ? AND trigger = 'push' LIMIT 1", [stackId, sha, proposed ? 1 : 0]);
  }
  /** Records a webhook delivery id; false when it was seen before. */
  addDelivery(id: string, now: string): boolean {
    return this.run('INSERT INTO hook_deliveries (id, received_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING', [id, now]) === 1;
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

// ------------------------------------------------------------ state versions (lib/server/state.ts)
export class StateRows {
  private readonly s: Store;
  constructor(s: Store) { this.s = s; }
  current(stackId: string): StateVersionRow | undefined {
    return this.s.get<StateVersionRow>('SELECT * FROM state_versions WHERE stack_id = ? ORDER BY version DESC LIMIT 1', [stackId]);
  }
  version(stackId: string, version: number): StateVersionRow | undefined {
    return this.s.get<StateVersionRow>('SELECT * FROM state_versions WHERE stack_id = ? AND version = ?', [stackId, version]);
  }
  list(stackId: string): StateVersionRow[] {
    return this.s.all<StateVersionRow>('SELECT * FROM state_versions WHERE stack_id = ? ORDER BY version DESC', [stackId]);
  }
  insert(v: StateVersionRow): void {
    this.s.run(`INSERT INTO state_versions (stack_id, version, run_id, source, serial, lineage, size, sha256, created_at)
      VALUES ($stack_id, $version, $run_id, $source, $serial, $lineage, $size, $sha256, $created_at)`, { ...v });
  }
  delete(stackId: string, version: number): void {
    this.s.run('DELETE FROM state_versions WHERE stack_id = ? AND version = ?', [stackId, version]);
  }
  /** The highest version ever given (deleted ones included: numbers are never reused). */
  maxVersion(stackId: string): number {
    const r = this.s.get<{ v: number | null }>("SELECT value AS v FROM meta WHERE key = ?", [`state-max:${stackId}`]);
    return r?.v === undefined || r.v === null ? 0 : Number(r.v);
  }
  setMaxVersion(stackId: string, v: number): void { this.s.setMeta(`state-max:${stackId}`, String(v)); }
}
