// What the worker API does: registration, the long-poll (which is also the
// heartbeat), phase start, log chunks, workspaces, results, deregistration.
// The scheduling core (assignment, dispatch, leases, phase ends) is Service.
import type { Readable } from 'node:stream';
import { isExitCode } from './fields.ts';
import { Refusal, badField } from './refusal.ts';
import { REPORTABLE_OUTCOMES, type Assignment, type Empty, type LogAck, type PhaseStatus, type PollReply, type Registration, type ReportableOutcome, type WorkspaceAck } from '../protocol.ts';
import { canTakeWork } from './scheduler.ts';
import { iso, newId } from './ids.ts';
import type { Service } from './service.ts';
import { phaseState } from './views.ts';
import { parsePlanSummary } from '../tool/plan.ts';
import type { PlanSummary, StateAck } from '../protocol.ts';
import type { RunSpec } from './store.ts';
import type { StateWrite } from './state.ts';
import { capChunk } from './quotas.ts';
import type { Waiter } from './workers.ts';

/** The long-poll's wait when the launcher names none, and the longest it may ask for. */
export const DEFAULT_POLL_SECONDS = 25;
export const MAX_POLL_SECONDS = 60;
/** Largest log chunk a launcher may send in one request. */
export const LOG_CHUNK_LIMIT = 1024 * 1024;

const DEFAULT_CONTROL_SIG = JSON.stringify({ drain: false, cycle: false, cancel: [] });

export class WorkerOps {
  private readonly s: Service;
  constructor(s: Service) { this.s = s; }

  register(poolId: string, body: Record<string, unknown>): Registration {
    const pool = this.s.pool(poolId);
    const metadata = plainMap(body.metadata, 'metadata', 256, 4096);
    const host = plainMap(body.host, 'host', 64, 1024);
    const version = body.version === undefined || body.version === null ? null : String(body.version).slice(0, 128);
    const now = iso();
    let id = typeof body.workerId === 'string' ? body.workerId : '';
    const known = id ? this.s.store.workers.get(id) : undefined;
    if (known && known.pool_id === poolId) {
      this.s.store.workers.update(id, {
        metadata: JSON.stringify(metadata), host: JSON.stringify(host), version,
        offline: 0, offline_since: null, deregistered_at: null, cycle_gen: pool.cycle, last_seen: now,
        idle_since: known.current_run ? null : now,
      });
      this.s.log.info('Worker registered again', { worker: id, pool: poolId });
    } else {
      id = newId('wrk');
      this.s.store.workers.insert({
        id, pool_id: poolId, metadata: JSON.stringify(metadata), version, host: JSON.stringify(host),
        registered_at: now, last_seen: now, idle_since: now, current_run: null, drained: 0, offline: 0,
        offline_since: null, cycle_gen: pool.cycle, deregistered_at: null,
      });
      this.s.log.info('Worker registered', { worker: id, pool: poolId });
    }
    this.s.presence.delivered.delete(id);
    this.s.presence.seen(id);
    return { workerId: id, pollSeconds: DEFAULT_POLL_SECONDS, leaseSeconds: this.s.opts.leaseMs / 1000 };
  }

  /**
   * The long-poll: a reply at once (an assignment, changed control, wait 0),
   * or a promise of one when the poll is held; it resolves with undefined when
   * the client went away while held. `alive` tells whether the client is still there.
   */
  poll(auth: { poolId: string; keyId: string }, body: Record<string, unknown>, waitMs: number, alive: () => boolean): Promise<PollReply | undefined> | PollReply {
    const w = this.s.poolWorker(auth.poolId, body.workerId);
    if (body.accept !== undefined && typeof body.accept !== 'boolean') throw badField('accept', 'true or false');
    if (body.runId !== undefined && body.runId !== null && typeof body.runId !== 'string') throw badField('runId', 'a run id or null');
    const accept = body.accept !== false;
    const says = (body.runId as string | null | undefined) ?? null;
    this.s.touch(w);

    // Reconcile what the launcher says it runs with what the server assigned.
    let resend: Assignment | null = null;
    const extraCancel: string[] = [];
    if (w.current_run) {
      const run = this.s.store.runs.get(w.current_run);
      const ph = run ? this.s.store.runs.phase(run.id, run.phase) : undefined;
      if (!run || !ph || run.state !== 'RUNNING' || run.worker_id !== w.id) {
        this.s.store.workers.update(w.id, { current_run: null, idle_since: iso() });
        w.current_run = null;
      } else if (says !== run.id) {
        if (ph.started_at === null) {
          // The assignment reply never arrived: send it again, or give it back.
          if (accept && says === null) resend = this.s.assignmentFor(run);
          else { this.s.requeue(run, w.id); w.current_run = null; }
        } else {
          // The launcher no longer knows the phase it started: it is lost.
          this.s.log.warn('Worker forgot its running phase', { worker: w.id, run: run.id });
          this.s.endPhase(run, ph, 'worker-lost', { error: 'worker lost: the launcher no longer runs this phase' }, w.id);
          w.current_run = null;
        }
      }
    }
    if (says !== null && says !== w.current_run) extraCancel.push(says);
    if (resend) return this.s.reply(w, resend, extraCancel);

    const pool = this.s.pool(w.pool_id);
    const eligible = canTakeWork(this.s.view(w, pool, accept));
    let queuedHead = false;
    if (eligible) {
      const [head] = this.s.store.runs.queuedRefs(pool.id, 1);
      if (head && this.s.presence.acceptingIn(pool.id, 1).length === 0) {
        const run = this.s.store.runs.get(head.id)!;
        this.s.assign(run, w.id);
        w.current_run = run.id;
        w.idle_since = null;
        return this.s.reply(w, this.s.assignmentFor(run), extraCancel, undefined, run);
      }
      queuedHead = head !== undefined;
    }
    const control = this.s.control(w, extraCancel);
    if (JSON.stringify(control) !== (this.s.presence.delivered.get(w.id) ?? DEFAULT_CONTROL_SIG) || waitMs <= 0) {
      return this.s.reply(w, null, extraCancel, control);
    }
    return new Promise<PollReply | undefined>((resolve) => {
      const waiter: Waiter = {
        workerId: w.id, poolId: pool.id, keyId: auth.keyId, accept: eligible, timer: undefined, alive,
        settle: (r) => resolve(r === null ? this.replyFor(w.id, extraCancel) : (r as PollReply | undefined)),
      };
      this.s.presence.hold(waiter, waitMs, () => resolve(this.replyFor(w.id, extraCancel)));
      // Someone else was already waiting when this worker came in: the queue
      // head goes to the longest-waiting worker first. An empty queue (just
      // read above, nothing ran since) has nothing to hand out.
      if (eligible && queuedHead) this.s.dispatch(pool.id);
    });
  }

  private replyFor(workerId: string, extraCancel: string[]): PollReply | undefined {
    const w = this.s.store.workers.get(workerId);
    return w ? this.s.reply(w, null, extraCancel) : undefined;
  }

  startPhase(poolId: string, runId: string, phase: number, body: Record<string, unknown>): Empty {
    const w = this.s.poolWorker(poolId, body.workerId);
    const { run, ph } = this.s.assignedPhase(poolId, runId, phase, w);
    if (ph.started_at !== null && ph.outcome === null) return {};
    if (!this.s.isOpen(run, ph)) throw this.s.closed(run, ph);
    this.s.store.runs.updatePhase(runId, phase, { started_at: iso() });
    this.s.log.debug('Phase started', { run: runId, phase, worker: w.id });
    this.s.changed(runId);
    return {};
  }

  /**
   * The commit the worker fetched for a run (it resolved a branch, or it
   * confirms the one asked for, with the author and message it read). A
   * different SHA than the one recorded is refused: a run never changes commit.
   */
  recordCommit(poolId: string, runId: string, phase: number, body: Record<string, unknown>): { sha: string } {
    const w = this.s.poolWorker(poolId, body.workerId);
    const { run, ph } = this.s.assignedPhase(poolId, runId, phase, w);
    if (!this.s.isOpen(run, ph)) throw this.s.closed(run, ph);
    const sha = body.sha;
    if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) throw badField('sha', 'the fetched commit\'s 40-character SHA');
    const text = (k: string, max: number): string | null => {
      const v = body[k];
      if (v === undefined || v === null) return null;
      if (typeof v !== 'string') throw badField(k, 'a string or null');
      return v.slice(0, max);
    };
    if (run.commit_repo === null) throw new Refusal('conflict', 'RUN_NO_SOURCE', `Run ${runId} has no repository to record a commit for`);
    if (run.commit_sha !== null && run.commit_sha !== sha) {
      throw new Refusal('conflict', 'COMMIT_MISMATCH', `Run ${runId} is at commit ${run.commit_sha}, not ${sha}`);
    }
    this.s.store.runs.update(runId, {
      commit_sha: sha,
      commit_author: text('author', 512) ?? run.commit_author,
      commit_message: text('message', 512) ?? run.commit_message,
      updated_at: iso(),
    });
    this.s.log.info('Run commit recorded', { run: runId, phase, sha });
    this.s.changed(runId);
    return { sha };
  }

  phaseStatus(poolId: string, runId: string, phase: number): PhaseStatus {
    const { run, ph } = this.s.assignedPhase(poolId, runId, phase);
    return {
      state: phaseState(ph),
      cancel: run.cancel_requested === 1 || run.state === 'CANCELED',
      logs: { nextSeq: ph.log_next_seq, bytes: ph.log_bytes },
    };
  }

  async appendLog(poolId: string, runId: string, phase: number, seq: number, chunk: Buffer): Promise<LogAck> {
    this.s.assignedPhase(poolId, runId, phase);
    return this.s.opts.logs.exclusive(runId, phase, async () => {
      const ph = this.s.store.runs.phase(runId, phase)!;
      if (seq < ph.log_next_seq) return { nextSeq: ph.log_next_seq };
      if (seq > ph.log_next_seq) {
        throw new Refusal('conflict', 'LOG_SEQ_GAP', `Log chunk out of order: got seq ${seq}, expected ${ph.log_next_seq} (resend from ${ph.log_next_seq})`, { nextSeq: ph.log_next_seq });
      }
      const run = this.s.store.runs.get(runId)!;
      if (!this.s.isOpen(run, ph)) throw this.s.closed(run, ph);
      // The run's cap counts every phase: past it the log ends with a marker,
      // later chunks are acknowledged (so the sequence stays whole) but dropped,
      // and the answer tells the launcher to stop sending.
      const limit = this.s.quotas.maxRunLogBytes;
      const total = this.s.store.runs.phases(runId).reduce((n, p) => n + p.log_bytes, 0);
      const { store, truncated } = capChunk(chunk, total, ph.log_bytes, limit);
      if (store.length > 0) await this.s.opts.logs.write(runId, phase, ph.log_bytes, store);
      this.s.store.runs.updatePhase(runId, phase, { log_next_seq: seq + 1, log_bytes: ph.log_bytes + store.length });
      if (truncated && store.length > 0) this.s.log.warn('Run log truncated', { run: runId, phase, limit });
      if (store.length > 0) this.s.opts.metrics?.logIngested(poolId, store.length);
      this.s.changed(runId);
      return truncated ? { nextSeq: seq + 1, truncated: true } : { nextSeq: seq + 1 };
    });
  }

  /** The sealed workspace for a worker of the run's pool that holds an assignment of it. */
  async workerWorkspace(poolId: string, runId: string): Promise<{ stream: Readable; size: number }> {
    const run = this.s.store.runs.get(runId);
    if (!run || run.pool_id !== poolId) throw new Refusal('not-found', 'RUN_NOT_FOUND', `Run not found: "${runId}"`);
    this.s.assignedPhase(poolId, runId, run.phase);
    return this.s.workspaces.open(run);
  }

  async uploadWorkspace(poolId: string, runId: string, phase: number, body: Readable, declared: number): Promise<WorkspaceAck> {
    const { run, ph } = this.s.assignedPhase(poolId, runId, phase);
    if (!this.s.isOpen(run, ph)) throw this.s.closed(run, ph);
    const got = await this.s.workspaces.receive(body, declared, run.worker_id ?? 'unknown');
    if (!got) throw new Refusal('invalid', 'INVALID_FIELD', 'Workspace refused: the body is empty (expected a sealed age file)');
    const again = this.s.store.runs.get(runId)!;
    const ph2 = this.s.store.runs.phase(runId, phase)!;
    if (!this.s.isOpen(again, ph2)) { await this.s.opts.blobs.discard(got.tmp); throw this.s.closed(again, ph2); }
    await this.s.opts.blobs.commit(got.tmp, this.s.opts.blobs.workspacePath(runId));
    this.s.store.runs.update(runId, { has_workspace: 1, updated_at: iso() });
    this.s.log.info('Workspace stored', { run: runId, phase, bytes: got.size });
    return { bytes: got.size };
  }

  async result(poolId: string, runId: string, phase: number, body: Record<string, unknown>): Promise<Empty> {
    const w = this.s.poolWorker(poolId, body.workerId);
    const outcome = body.outcome as ReportableOutcome;
    if (!REPORTABLE_OUTCOMES.includes(outcome)) throw badField('outcome', `one of ${REPORTABLE_OUTCOMES.join(', ')}`);
    const exitCode = body.exitCode === undefined || body.exitCode === null ? null : body.exitCode;
    if (exitCode !== null && !isExitCode(exitCode)) throw badField('exitCode', 'a 32-bit integer or null');
    const error = body.error === undefined || body.error === null ? null : String(body.error).slice(0, 4096);
    const logSeq = body.logSeq === undefined ? null : body.logSeq;
    if (logSeq !== null && (!Number.isSafeInteger(logSeq) || (logSeq as number) < 0)) throw badField('logSeq', 'the next log sequence number (an integer from 0)');
    let plan: PlanSummary | undefined;
    if (body.plan !== undefined && body.plan !== null) {
      try { plan = parsePlanSummary(body.plan); } catch (e) { throw new Refusal('invalid', 'INVALID_FIELD', (e as Error).message); }
    }
    this.s.assignedPhase(poolId, runId, phase, w);
    return this.s.opts.logs.exclusive(runId, phase, async () => {
      const run = this.s.store.runs.get(runId)!;
      const ph = this.s.store.runs.phase(runId, phase)!;
      if (ph.outcome !== null) {
        if (ph.outcome === outcome) return {};
        throw new Refusal('conflict', 'RESULT_CONFLICT', `Phase ${phase} of run ${runId} already ended as ${ph.outcome}, not ${outcome}`);
      }
      if (!this.s.isOpen(run, ph)) throw this.s.closed(run, ph);
      if (logSeq !== null && (logSeq as number) > ph.log_next_seq) {
        throw new Refusal('conflict', 'LOG_SEQ_GAP', `Phase result refused: the server has log chunks up to seq ${ph.log_next_seq - 1} but the result says ${logSeq as number} were sent (resend from ${ph.log_next_seq})`, { nextSeq: ph.log_next_seq });
      }
      this.s.endPhase(run, ph, outcome, { exitCode: exitCode as number | null, error, ...(plan ? { plan } : {}) }, w.id);
      return {};
    });
  }

  /** A sealed state version for a run of this pool: the stack's version the assignment named. */
  async downloadState(poolId: string, runId: string, version: number): Promise<{ stream: Readable; size: number }> {
    const run = this.s.store.runs.get(runId);
    if (!run || run.pool_id !== poolId) throw new Refusal('not-found', 'RUN_NOT_FOUND', `Run not found: "${runId}"`);
    this.s.assignedPhase(poolId, runId, run.phase);
    const st = this.s.store.stacks.any(run.stack_id);
    if (!st) throw new Refusal('not-found', 'STACK_NOT_FOUND', `Stack of run ${runId} not found`);
    const f = await this.s.states.openVersion(st, version);
    return { stream: f.stream, size: f.size };
  }

  /**
   * A tracked run's new state after a step (also a failed, canceled or
   * interrupted one: partial state is real). Accepted only if `base` is still
   * the stack's current version; otherwise kept beside the run and refused.
   */
  async uploadState(poolId: string, runId: string, phase: number, body: Readable, declared: number, q: URLSearchParams): Promise<StateAck> {
    const { run } = this.s.assignedPhase(poolId, runId, phase);
    const spec = JSON.parse(run.spec) as RunSpec;
    if (run.proposed === 1 || !spec.tool?.manageState) {
      throw new Refusal('conflict', 'STATE_READ_ONLY', `State refused: run ${runId} is ${run.proposed === 1 ? 'a proposed run, which never writes state' : 'not a managed-state run'}`);
    }
    const w = stateWriteQuery(q, runId);
    const st = this.s.store.stacks.any(run.stack_id);
    if (!st) throw new Refusal('not-found', 'STACK_NOT_FOUND', `Stack of run ${runId} not found`);
    const got = await this.s.states.receive(body, declared);
    const row = await this.s.states.commit(st, got, w, {
      onConflict: (tmp, current) => this.s.states.keepConflict(run, phase, tmp, w, current),
    });
    this.s.changed(runId);
    return { version: row.version };
  }

  deregister(poolId: string, body: Record<string, unknown>): Empty {
    const w = this.s.poolWorker(poolId, body.workerId);
    if (w.current_run) {
      const run = this.s.store.runs.get(w.current_run);
      if (run && run.state === 'RUNNING' && run.worker_id === w.id) this.s.workerGone(run, w.id);
    }
    this.s.store.workers.update(w.id, { deregistered_at: iso(), current_run: null, last_seen: iso() });
    this.s.presence.forget(w.id);
    this.s.log.info('Worker deregistered', { worker: w.id, pool: poolId });
    return {};
  }
}

function plainMap(v: unknown, name: string, maxKeys: number, maxLen: number): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw badField(name, 'an object of string values');
  const out: Record<string, string> = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > maxKeys) throw badField(name, `at most ${maxKeys} entries`);
  for (const [k, val] of entries) {
    if (k.length === 0 || k.length > 256) throw badField(`${name}.${k}`, 'a key of 1 to 256 characters');
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw badField(`${name}.${k}`, 'a string');
    out[k] = String(val).slice(0, maxLen);
  }
  return out;
}

/** base, serial and lineage of a state upload, from its query string. */
export function stateWriteQuery(q: URLSearchParams, runId: string | null, source = 'run'): StateWrite {
  const baseArg = q.get('base');
  let base: number | null = null;
  if (baseArg !== null && baseArg !== '' && baseArg !== 'none') {
    base = Number(baseArg);
    if (!Number.isInteger(base) || base < 1) throw badField('base', 'the state version the new state started from (an integer from 1), or "none"');
  } else if (baseArg === null) {
    throw badField('base', 'the state version the new state started from, or "none" for a stack without state');
  }
  const serialArg = q.get('serial');
  const serial = serialArg === null || serialArg === '' ? null : Number(serialArg);
  if (serial !== null && (!Number.isInteger(serial) || serial < 0)) throw badField('serial', 'the Terraform state serial (an integer from 0)');
  const lineage = q.get('lineage') || null;
  if (lineage !== null && !/^[A-Za-z0-9._-]{1,128}$/.test(lineage)) throw badField('lineage', 'the Terraform state lineage (a UUID)');
  return { base, serial, lineage, runId, source };
}
