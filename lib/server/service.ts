// The server's core: the scheduler's decisions applied (assignment, dispatch
// to waiting workers, requeue), runs moved through their states when phases
// end, leases and grace periods, and the certificate-to-pool check. WorkerOps
// and AdminOps build the two APIs on it; it never touches a socket beyond the
// Waiter callbacks it is handed.
import { EventEmitter } from 'node:events';
import type { CertificateAuthority } from '../pki.ts';
import type { BlobStore } from './blobs.ts';
import { afterCommit, transaction } from './db.ts';
import { Refusal, badField } from './refusal.ts';
import type { Logger } from './log.ts';
import type { LogFiles } from './logs.ts';
import type { Assignment, Control, Outcome, PollReply, RunState } from '../protocol.ts';
import { afterPhase, planAssignments, onWorkerLost, type WorkerFacts } from './scheduler.ts';
import type { PhaseRow, PoolRow, RunRow, RunSpec, Store, WorkerRow } from './store.ts';
import { phaseState } from './views.ts';
import { iso, normSerial } from './ids.ts';
import { Presence } from './workers.ts';
import { Workspaces } from './workspaces.ts';
import { DEFAULT_QUOTAS, UploadSlots, type Quotas } from './quotas.ts';
import { StackStates } from './state.ts';
import { STEP_STATUS } from '../tool/steps.ts';
import type { PlanSummary } from '../tool/plan.ts';
import type { Step } from '../tool/config.ts';
import type { ToolAssignment } from '../protocol.ts';

export interface ServiceOptions {
  store: Store;
  ca: CertificateAuthority;
  serverUrl: string;
  leaseMs: number;
  graceMs: number;
  maxWorkspaceBytes: number;
  blobs: BlobStore;
  logs: LogFiles;
  log: Logger;
  /** Unset fields get DEFAULT_QUOTAS. */
  quotas?: Partial<Quotas> | undefined;
  /** Where uploads land first (the free-disk floor is measured there). */
  tmpDir?: string;
  /** Where sealed state versions live (DATA/state). */
  stateDir: string;
  /** Told as runs are assigned and phases and runs end (lib/metrics/server.ts). */
  metrics?: RunObserver;
}

export interface RunObserver {
  runAssigned(poolId: string, queuedAt: string, now: string): void;
  phaseEnded(poolId: string, ph: { started_at: string | null; assigned_at: string | null }, outcome: Outcome, endedAt: string): void;
  runEnded(run: { pool_id: string; created_at: string }, state: RunState, endedAt: string): void;
  logIngested(poolId: string, bytes: number): void;
}

const notFound = (what: string, id: string, code: string): Refusal => new Refusal('not-found', code, `${what} not found: "${id}"`);

export class Service {
  readonly store: Store;
  readonly ca: CertificateAuthority;
  /** Goes into new tokens; set once the listening port is known. */
  serverUrl: string;
  readonly opts: ServiceOptions;
  readonly presence: Presence;
  /** Emits the run id whenever a run's state or logs change (log followers wait on it). */
  readonly events = new EventEmitter();
  readonly log: Logger;
  /** Sealed workspace uploads and downloads. */
  readonly workspaces: Workspaces;
  readonly quotas: Quotas;
  readonly uploads: UploadSlots;
  /** Sealed state versions of managed-state stacks. */
  readonly states: StackStates;

  constructor(opts: ServiceOptions) {
    this.opts = opts;
    this.quotas = { ...DEFAULT_QUOTAS, ...Object.fromEntries(Object.entries(opts.quotas ?? {}).filter(([, v]) => v !== undefined)) };
    this.uploads = new UploadSlots(this.quotas);
    this.store = opts.store;
    this.ca = opts.ca;
    this.serverUrl = opts.serverUrl;
    this.log = opts.log;
    this.workspaces = new Workspaces({ blobs: opts.blobs, maxBytes: opts.maxWorkspaceBytes, uploads: this.uploads, quotas: this.quotas, tmpDir: opts.tmpDir });
    this.events.setMaxListeners(0);
    this.states = new StackStates({ store: this.store, workspaces: this.workspaces, blobs: opts.blobs, maxWorkspaceBytes: opts.maxWorkspaceBytes, log: this.log }, opts.stateDir);
    this.presence = new Presence({
      leaseMs: opts.leaseMs,
      graceMs: opts.graceMs,
      onLeaseExpired: (id) => this.guard('lease expiry', () => this.leaseExpired(id)),
      onGraceExpired: (id) => this.guard('grace expiry', () => this.graceExpired(id)),
    });
  }

  private guard(what: string, fn: () => void): void {
    try { fn(); } catch (e) { this.log.error(`Failed to handle ${what}`, { error: (e as Error).message }); }
  }

  /** Tells followers of the run, once the change is committed. */
  changed(runId: string): void { afterCommit(this.store.db, () => this.events.emit(runId)); }

  // ------------------------------------------------------------ start-up

  /** After a restart: leases restart for live workers, grace resumes for OFFLINE ones holding a started phase. */
  recover(): void {
    const now = Date.now();
    for (const w of this.store.workers.list()) {
      if (w.offline === 0) {
        this.presence.seen(w.id, Date.parse(w.last_seen));
      } else if (w.current_run) {
        const left = Date.parse(w.offline_since ?? w.last_seen) + this.opts.graceMs - now;
        this.presence.startGrace(w.id, left);
      }
    }
    for (const r of this.store.runs.running()) {
      const w = r.worker_id ? this.store.workers.get(r.worker_id) : undefined;
      if (!w || w.deregistered_at || w.current_run !== r.id) this.workerGone(r, w?.id ?? r.worker_id ?? '');
    }
  }

  // ------------------------------------------------------------ authentication

  /** The pool a client certificate (by serial) belongs to; 403 when revoked, retired or unknown. */
  poolForSerial(serial: string): { poolId: string; keyId: string } {
    const key = this.store.pools.keyBySerial(normSerial(serial));
    if (!key || key.state !== 'active') {
      throw new Refusal('forbidden', 'CERT_REVOKED', 'Client certificate refused: it was revoked by a pool reset or key retirement (use the pool\'s current token)');
    }
    const pool = this.store.pools.any(key.pool_id);
    if (!pool || pool.deleted_at) throw new Refusal('forbidden', 'POOL_DELETED', 'Client certificate refused: its worker pool was deleted');
    return { poolId: pool.id, keyId: key.id };
  }

  // ------------------------------------------------------------ helpers

  pool(id: string): PoolRow {
    const p = this.store.pools.any(id);
    if (!p) throw notFound('Pool', id, 'POOL_NOT_FOUND');
    return p;
  }

  poolWorker(poolId: string, workerId: unknown): WorkerRow {
    if (typeof workerId !== 'string' || workerId === '') throw badField('workerId', 'the worker id from POST /v1/worker/register');
    const w = this.store.workers.get(workerId);
    if (!w || w.pool_id !== poolId || w.deregistered_at) {
      throw new Refusal('not-found', 'WORKER_NOT_FOUND', `Worker not found: "${workerId}" is not registered in this pool (register again)`);
    }
    return w;
  }

  /** A worker call: it is alive, and an OFFLINE worker comes back. */
  touch(w: WorkerRow): void {
    this.presence.seen(w.id);
    if (w.offline) {
      this.store.workers.update(w.id, { offline: 0, offline_since: null, last_seen: iso() });
      w.offline = 0;
      this.log.info('Worker back online', { worker: w.id, pool: w.pool_id });
    }
  }

  /** The run's phase, only if it was assigned (to `workerId` when given) in this pool: otherwise 404. */
  assignedPhase(poolId: string, runId: string, phase: number, worker?: WorkerRow): { run: RunRow; ph: PhaseRow } {
    const run = this.store.runs.get(runId);
    const ph = run && run.pool_id === poolId ? this.store.runs.phase(runId, phase) : undefined;
    if (!run || !ph || !ph.worker_id || (worker !== undefined && ph.worker_id !== worker.id)) {
      throw new Refusal('not-found', 'RUN_NOT_FOUND', `Run not found: "${runId}" phase ${phase} is not assigned to this worker`);
    }
    // The caller's row was read in this same tick: no second read.
    const w = worker ?? this.store.workers.get(ph.worker_id);
    if (w && !w.deregistered_at) this.touch(w);
    return { run, ph };
  }

  isOpen(run: RunRow, ph: PhaseRow): boolean {
    return run.state === 'RUNNING' && run.phase === ph.idx && ph.outcome === null;
  }

  closed(run: RunRow, ph: PhaseRow): Refusal {
    return new Refusal('conflict', 'RUN_STATE', `Phase ${ph.idx} of run ${run.id} is not running (run ${run.state}, phase ${phaseState(ph)})`);
  }

  view(w: WorkerRow, pool: PoolRow, accept: boolean): WorkerFacts {
    return {
      id: w.id, poolId: w.pool_id, deregistered: w.deregistered_at !== null, offline: w.offline === 1,
      drained: w.drained === 1, cycled: w.cycle_gen < pool.cycle, accepting: accept, busy: w.current_run !== null,
    };
  }

  /** `current`: the worker's current run when the caller holds it (saves a read). */
  control(w: WorkerRow, extraCancel: string[] = [], current?: RunRow): Control {
    const pool = this.store.pools.any(w.pool_id);
    const cancel = [...extraCancel];
    if (w.current_run) {
      const r = current?.id === w.current_run ? current : this.store.runs.get(w.current_run);
      if (r && r.state === 'RUNNING' && r.cancel_requested === 1 && !cancel.includes(r.id)) cancel.push(r.id);
    }
    return { drain: w.drained === 1, cycle: pool ? w.cycle_gen < pool.cycle : true, cancel };
  }

  reply(w: WorkerRow, assignment: Assignment | null, extraCancel: string[] = [], known?: Control, current?: RunRow): PollReply {
    const control = known ?? this.control(w, extraCancel, current);
    this.presence.delivered.set(w.id, JSON.stringify(control));
    return { assignment, control };
  }

  assignmentFor(run: RunRow): Assignment {
    const spec = JSON.parse(run.spec) as RunSpec;
    const ph = spec.phases[run.phase]!;
    const row = this.store.runs.phase(run.id, run.phase);
    return {
      runId: run.id, phase: run.phase, phaseName: ph.name, phaseCount: run.phase_count,
      stack: { id: run.stack_id, name: run.stack_name, kind: run.stack_kind },
      proposed: run.proposed === 1, image: spec.image, script: ph.script, env: spec.env,
      secretEnv: run.secret_env ? Buffer.from(run.secret_env).toString('base64') : null,
      workspace: run.has_workspace === 1,
      // Until a phase has left a workspace, the worker fetches the files
      // itself, at the commit recorded so far (a branch-only trigger is
      // pinned by the first worker that resolves it).
      source: spec.source && run.has_workspace === 0
        ? { ...spec.source, commit: run.commit_sha ?? spec.source.commit }
        : null,
      recipients: this.store.pools.recipients(run.pool_id),
      logs: { nextSeq: row?.log_next_seq ?? 0 },
      ...(spec.tool ? { tool: this.toolAssignment(run, spec, ph.step ?? 'init') } : {}),
    };
  }

  /**
   * What the worker needs to run a tool step: where the project is, whether
   * state is managed, and the stack's current state version (read now: while
   * this run holds the state, nobody else can move it).
   */
  private toolAssignment(run: RunRow, spec: RunSpec, step: Step): ToolAssignment {
    const t = spec.tool!;
    const cur = t.manageState ? this.states.rows.current(run.stack_id) : undefined;
    return {
      name: t.name, step, projectRoot: t.projectRoot, manageState: t.manageState,
      firstStep: run.phase === 0,
      writesState: t.manageState && run.proposed === 0,
      state: cur ? { version: cur.version, serial: cur.serial, lineage: cur.lineage } : null,
    };
  }

  assign(run: RunRow, workerId: string): void {
    const now = iso();
    // updated_at of a QUEUED run is when it entered the queue (trigger, confirm, requeue).
    this.opts.metrics?.runAssigned(run.pool_id, run.updated_at, now);
    transaction(this.store.db, () => {
      this.store.runs.update(run.id, { state: 'RUNNING', worker_id: workerId, updated_at: now });
      this.store.runs.updatePhase(run.id, run.phase, { worker_id: workerId, assigned_at: now, started_at: null });
      this.store.workers.update(workerId, { current_run: run.id, idle_since: null, last_seen: now });
      // From its first step to its end, a tracked run holds the stack's state.
      if (run.holds_state === 1) this.store.stacks.update(run.stack_id, { state_holder: run.id });
    });
    run.state = 'RUNNING';
    run.worker_id = workerId;
    this.log.debug('Run assigned', { run: run.id, phase: run.phase, worker: workerId, pool: run.pool_id });
    this.changed(run.id);
  }

  /** Gives queued runs of a pool to its waiting workers, at once. */
  dispatch(poolId: string): void {
    // In batches, so a trigger with a thousand idle launchers waiting looks at
    // one run and one waiter, not at all of them.
    const BATCH = 64;
    for (;;) {
      const count = this.presence.acceptingCount(poolId);
      if (count === 0) return;
      const runs = this.store.runs.queuedRefs(poolId, Math.min(count, BATCH));
      if (runs.length === 0) return;
      const waiters = this.presence.acceptingIn(poolId, runs.length);
      if (waiters.length === 0) return;
      // Waiters are only listed as accepting while they can take work (see poll).
      const views = waiters.map((w) => ({ id: w.workerId, poolId, deregistered: false, offline: false, drained: false, cycled: false, accepting: true, busy: false }));
      const plan = planAssignments(runs.map((r) => ({ id: r.id, poolId, queueKey: r.queue_key })), views);
      // One transaction for the batch (joining the caller's, e.g. the
      // trigger's insert); each held poll is answered once it is committed.
      transaction(this.store.db, () => {
        for (const p of plan) {
          const waiter = this.presence.take(p.workerId)!;
          // The whole row only for a run that is handed out.
          const run = this.store.runs.get(p.runId)!;
          this.assign(run, p.workerId);
          const w = this.store.workers.get(p.workerId)!;
          const reply = this.reply(w, this.assignmentFor(run), [], undefined, run);
          // Rolled back: the poll gets an empty answer and the launcher polls again.
          afterCommit(this.store.db, () => waiter.settle(reply), () => waiter.settle(null));
        }
      });
      if (plan.length < BATCH) return;
    }
  }

  /** Answers a worker's held poll now (its control changed). */
  wake(workerId: string): void {
    const waiter = this.presence.take(workerId);
    if (!waiter) return;
    const w = this.store.workers.get(workerId);
    waiter.settle(w ? this.reply(w, null) : null);
  }

  /** Puts a phase that was assigned but never started back in the queue (not a re-run). */
  requeue(run: RunRow, workerId: string): void {
    const now = iso();
    transaction(this.store.db, () => {
      this.store.runs.update(run.id, { state: 'QUEUED', worker_id: null, updated_at: now });
      this.store.runs.updatePhase(run.id, run.phase, { worker_id: null, assigned_at: null, started_at: null });
      this.store.workers.update(workerId, { current_run: null, idle_since: now });
    });
    this.log.info('Run requeued: its phase was never started', { run: run.id, phase: run.phase, worker: workerId });
    this.changed(run.id);
    this.dispatch(run.pool_id);
  }

  /** Records a phase's end and moves the run on (next phase, confirmation, or an end state). */
  endPhase(run: RunRow, ph: PhaseRow, outcome: Outcome, detail: { exitCode?: number | null; error?: string | null; plan?: PlanSummary }, workerId: string | null): void {
    const now = iso();
    const spec = JSON.parse(run.spec) as RunSpec;
    let next = afterPhase({ phase: run.phase, phases: spec.phases }, outcome, detail);
    const plan = ph.step === 'plan' && outcome === 'succeeded' ? detail.plan : undefined;
    if (plan && !plan.hasChanges && next.state !== 'FINISHED') {
      // A tracked run whose plan has no changes ends here, without an apply.
      next = { state: 'FINISHED', phase: run.phase, reason: 'no changes: nothing to apply' };
    }
    const drifted = plan !== undefined && plan.hasChanges && run.proposed === 1 && (run.trigger ?? '').startsWith('schedule:');
    if (run.cancel_requested === 1 && !['FAILED', 'CANCELED', 'FINISHED'].includes(next.state)) {
      next = { state: 'CANCELED', phase: run.phase, reason: 'canceled' };
    }
    const ended = next.state === 'FINISHED' || next.state === 'FAILED' || next.state === 'CANCELED';
    transaction(this.store.db, () => {
      this.store.runs.updatePhase(run.id, ph.idx, { outcome, exit_code: detail.exitCode ?? null, error: detail.error ?? null, ended_at: now });
      this.store.runs.update(run.id, {
        state: next.state, phase: next.phase, worker_id: null, reason: next.reason, updated_at: now,
        ended_at: ended ? now : null,
      });
      if (workerId) this.store.workers.release(workerId, run.id, now);
      if (plan) this.store.runs.update(run.id, { changes: JSON.stringify(plan), drifted: drifted ? 1 : 0 });
      if (drifted) this.store.stacks.update(run.stack_id, { drifted_run: run.id });
      // A tracked run that applied (or found nothing to apply) leaves no drift behind.
      if (run.proposed === 0 && next.state === 'FINISHED' && spec.tool) this.store.stacks.update(run.stack_id, { drifted_run: null });
    });
    this.opts.metrics?.phaseEnded(run.pool_id, ph, outcome, now);
    if (ended) this.opts.metrics?.runEnded(run, next.state, now);
    this.log.info('Phase ended', { run: run.id, phase: ph.idx, outcome, state: next.state, worker: workerId ?? undefined });
    void this.opts.logs.exclusive(run.id, ph.idx, () => this.opts.logs.release(run.id, ph.idx));
    this.changed(run.id);
    if (drifted) this.onDrift?.(run);
    // The stack's waiting tracked runs may start now.
    if (next.state === 'QUEUED' || (ended && run.holds_state === 1)) this.dispatch(run.pool_id);
  }

  /** Set by the schedules: a scheduled proposed run found changes (drift). */
  onDrift?: (run: RunRow) => void;

  /** The run's state as users see it: a running tool step shows as INITIALIZING, PLANNING, APPLYING, … */
  static status(run: RunRow, ph: PhaseRow | undefined): string {
    if (run.state === 'RUNNING' && ph?.step) return STEP_STATUS[ph.step as Step] ?? run.state;
    return run.state;
  }

  /** A worker holding `run` is gone for good (deregistered, grace over, or missing after a restart). */
  workerGone(run: RunRow, workerId: string): void {
    const ph = this.store.runs.phase(run.id, run.phase)!;
    if (onWorkerLost(ph.started_at !== null) === 'requeue') this.requeue(run, workerId);
    else this.endPhase(run, ph, 'worker-lost', { error: 'worker lost' }, workerId);
  }

  private leaseExpired(workerId: string): void {
    const w = this.store.workers.get(workerId);
    if (!w || w.deregistered_at || w.offline) return;
    const now = Date.now();
    this.store.workers.update(w.id, { offline: 1, offline_since: iso(now), last_seen: iso(this.presence.lastSeen.get(w.id) ?? now) });
    this.log.warn('Worker offline: its lease expired', { worker: w.id, pool: w.pool_id });
    if (!w.current_run) return;
    const run = this.store.runs.get(w.current_run);
    if (!run || run.state !== 'RUNNING' || run.worker_id !== w.id) {
      this.store.workers.update(w.id, { current_run: null });
      return;
    }
    const ph = this.store.runs.phase(run.id, run.phase)!;
    if (onWorkerLost(ph.started_at !== null) === 'requeue') this.requeue(run, w.id);
    else this.presence.startGrace(w.id);
  }

  private graceExpired(workerId: string): void {
    const w = this.store.workers.get(workerId);
    if (!w || !w.offline || !w.current_run) return;
    const run = this.store.runs.get(w.current_run);
    if (run && run.state === 'RUNNING' && run.worker_id === w.id) {
      this.log.warn('Worker lost: it did not come back within the grace period', { worker: w.id, run: run.id });
      this.workerGone(run, w.id);
    } else {
      this.store.workers.update(w.id, { current_run: null });
    }
  }

  close(): void {
    this.presence.close();
  }
}
