// Drift detection on a schedule. Each schedule names a stack and a cron
// expression (UTC). When a slot comes due the server records it as handled
// first and then queues a proposed run, so a slot never fires twice, not even
// across a crash or restart (at most once: a crash between the two loses that
// slot's run, and the log says so on the next start). Slots missed while the
// server was down collapse into one run. While a tracked run holds the
// stack's state the slot is skipped with a log line. A proposed run whose plan
// has changes marks the run and the stack as drifted; a schedule with
// `reconcile` then queues a tracked run of the same source.
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ScheduleView } from '../protocol.ts';
import { CronError, dueSlot, nextSlot, parseCron } from '../schedule/cron.ts';
import { iso, newId } from './ids.ts';
import { Refusal, badField } from './refusal.ts';
import type { Service } from './service.ts';
import type { RunRow, ScheduleRow, StackRow } from './store.ts';

export type { ScheduleRow };

/** What the schedules need from the rest of the server (AdminOps.trigger). */
export type Trigger = (stackId: string, proposed: boolean, workspace: { tmp: string } | undefined, source: string) => Promise<{ run: { id: string } }>;

export function scheduleJson(r: ScheduleRow, now: number): ScheduleView {
  let next: string | null = null;
  try {
    const n = nextSlot(parseCron(r.cron), Math.max(now, Date.parse(r.last_slot ?? r.created_at)));
    next = n === undefined ? null : iso(n);
  } catch { /* stored expressions were checked when added */ }
  return { id: r.id, stack: r.stack_id, cron: r.cron, reconcile: r.reconcile === 1, lastSlot: r.last_slot, nextSlot: next, createdAt: r.created_at };
}

export class Schedules {
  private readonly s: Service;
  private readonly trigger: Trigger;
  /** The clock: injected so tests can step through slots (and across restarts). */
  readonly now: () => number;
  private ticking: Promise<void> | undefined;

  constructor(s: Service, trigger: Trigger, now: () => number = Date.now) {
    this.s = s;
    this.trigger = trigger;
    this.now = now;
    s.onDrift = (run) => { void this.reconcile(run).catch((e: Error) => s.log.error('Reconcile failed', { run: run.id, error: e.message })); };
  }

  list(stackId?: string): ScheduleRow[] {
    return this.s.store.schedules.list(stackId);
  }

  get(id: string): ScheduleRow {
    const r = this.s.store.schedules.find(id);
    if (!r) throw new Refusal('not-found', 'SCHEDULE_NOT_FOUND', `Schedule not found: "${id}" (list them with GET /v1/stacks/{id}/schedules)`);
    return r;
  }

  add(st: StackRow, body: Record<string, unknown>): ScheduleRow {
    if (typeof body.cron !== 'string' || body.cron.length > 200) throw badField('cron', 'a cron expression in UTC, e.g. "0 3 * * *" (minute hour day-of-month month day-of-week)');
    try { parseCron(body.cron); } catch (e) {
      if (e instanceof CronError) throw new Refusal('invalid', 'INVALID_FIELD', `Invalid field "cron": ${e.message}`);
      throw e;
    }
    if (body.reconcile !== undefined && typeof body.reconcile !== 'boolean') throw badField('reconcile', 'true or false');
    if (!st.tool) throw new Refusal('conflict', 'NOT_A_TOOL_STACK', `Stack ${st.name} has no tool: drift detection plans with Terraform or OpenTofu (set --tool first)`);
    const row: ScheduleRow = {
      id: newId('sch'), stack_id: st.id, cron: body.cron.trim(), reconcile: body.reconcile === true ? 1 : 0,
      last_slot: null, created_at: iso(this.now()), deleted_at: null,
    };
    this.s.store.schedules.insert(row);
    return row;
  }

  delete(id: string): ScheduleRow {
    const r = this.get(id);
    this.s.store.schedules.markDeleted(id, iso(this.now()));
    return r;
  }

  /** Fires every schedule with a slot due now; one tick at a time. */
  tick(): Promise<void> {
    this.ticking ??= this.fireDue().finally(() => { this.ticking = undefined; });
    return this.ticking;
  }

  private async fireDue(): Promise<void> {
    const now = this.now();
    for (const sch of this.list()) {
      let slot: number | undefined;
      try {
        slot = dueSlot(parseCron(sch.cron), Date.parse(sch.last_slot ?? sch.created_at), now);
      } catch (e) {
        this.s.log.error('Schedule has a bad cron expression', { schedule: sch.id, cron: sch.cron, error: (e as Error).message });
        continue;
      }
      if (slot === undefined) continue;
      // Recorded before anything else happens: this slot is handled, whatever follows.
      if (!this.s.store.schedules.claimSlot(sch.id, iso(slot))) continue;
      const st = this.s.store.stacks.any(sch.stack_id);
      if (!st || st.deleted_at) continue;
      const holder = this.s.states.holder(st);
      if (holder) {
        this.s.log.info('Schedule skipped: a tracked run holds the stack\'s state', { schedule: sch.id, stack: st.id, slot: iso(slot), holder: holder.id });
        continue;
      }
      try {
        const fromGit = Boolean((st as StackRow & { repo?: string | null }).repo);
        // A stack from Git is fetched at its branch tip by the worker; an uploaded one plans its latest upload.
        const ws = fromGit ? undefined : await this.latestSource(st);
        if (!fromGit && !ws) {
          // Planning nothing against the state would propose destroying everything.
          this.s.log.info('Schedule skipped: the stack has no source yet (trigger a run with a workspace first)', { schedule: sch.id, stack: st.id, slot: iso(slot) });
          continue;
        }
        const { run } = await this.trigger(st.id, true, ws, `schedule:${sch.id}`);
        this.s.log.info('Schedule fired: proposed run queued to detect drift', { schedule: sch.id, stack: st.id, slot: iso(slot), run: run.id });
      } catch (e) {
        this.s.log.warn('Schedule could not queue its run', { schedule: sch.id, stack: st.id, slot: iso(slot), error: (e as Error).message });
      }
    }
  }

  /**
   * The source for a run the server starts by itself: a copy of the sealed
   * workspace of the stack's latest run that has one (the server cannot read
   * it, only copy it). A stack whose worker fetches its source needs none.
   */
  private async latestSource(st: StackRow, from?: RunRow): Promise<{ tmp: string } | undefined> {
    const r = from && from.has_workspace === 1 ? from
      : this.s.store.runs.latestWithWorkspace(st.id);
    if (!r) return undefined;
    const src = this.s.opts.blobs.workspacePath(r.id);
    const dir = join(this.s.opts.stateDir, 'tmp');
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `source-${randomBytes(6).toString('hex')}`);
    try { await copyFile(src, tmp); } catch { return undefined; }
    return { tmp };
  }

  /** A scheduled run found drift: with `reconcile`, queue a tracked run of the same source. */
  private async reconcile(run: RunRow): Promise<void> {
    const id = (run.trigger ?? '').replace(/^schedule:/, '');
    const sch = this.s.store.schedules.any(id);
    if (!sch || sch.reconcile !== 1 || sch.deleted_at) return;
    const st = this.s.store.stacks.any(run.stack_id);
    if (!st || st.deleted_at) return;
    const ws = await this.latestSource(st, run);
    const { run: tracked } = await this.trigger(st.id, false, ws, `reconcile:${run.id}`);
    this.s.log.info('Drift found: tracked run queued to reconcile', { schedule: sch.id, stack: st.id, drifted: run.id, run: tracked.id });
  }

  /** Checks for due slots every `everyMs` (real time; the slots come from `now`). */
  start(everyMs = 1000): () => void {
    const t = setInterval(() => { void this.tick().catch((e: Error) => this.s.log.error('Schedule tick failed', { error: e.message })); }, everyMs);
    t.unref();
    void this.tick();
    return () => clearInterval(t);
  }
}
