// Drift-detection schedules in the database (lib/server/schedules.ts holds
// the rules). A slot is claimed in one statement, so it fires at most once.
import type { Queries } from './queries.ts';

export interface ScheduleRow {
  id: string; stack_id: string; cron: string; reconcile: number; last_slot: string | null; created_at: string; deleted_at: string | null;
}

export class ScheduleStore {
  private readonly q: Queries;
  constructor(q: Queries) { this.q = q; }

  /** Live schedules (of one stack, or all), oldest first. */
  list(stackId?: string): ScheduleRow[] {
    return stackId
      ? this.q.all<ScheduleRow>('SELECT * FROM schedules WHERE deleted_at IS NULL AND stack_id = ? ORDER BY created_at, id', [stackId])
      : this.q.all<ScheduleRow>('SELECT * FROM schedules WHERE deleted_at IS NULL ORDER BY created_at, id');
  }
  /** A live schedule. */
  find(id: string): ScheduleRow | undefined { return this.q.get<ScheduleRow>('SELECT * FROM schedules WHERE id = ? AND deleted_at IS NULL', [id]); }
  /** A schedule, deleted or not. */
  any(id: string): ScheduleRow | undefined { return this.q.get<ScheduleRow>('SELECT * FROM schedules WHERE id = ?', [id]); }
  insert(r: ScheduleRow): void {
    this.q.run('INSERT INTO schedules (id, stack_id, cron, reconcile, last_slot, created_at, deleted_at) VALUES ($id, $stack_id, $cron, $reconcile, $last_slot, $created_at, $deleted_at)', { ...r });
  }
  markDeleted(id: string, now: string): void {
    this.q.run('UPDATE schedules SET deleted_at = ? WHERE id = ?', [now, id]);
  }
  /** A deleted stack's schedules end with it. */
  endForStack(stackId: string, now: string): void {
    this.q.run('UPDATE schedules SET deleted_at = ? WHERE stack_id = ? AND deleted_at IS NULL', [now, stackId]);
  }
  /** Records `slot` as handled unless it (or a later one) already is: true when this call claimed it. */
  claimSlot(id: string, slot: string): boolean {
    return this.q.run('UPDATE schedules SET last_slot = ? WHERE id = ? AND (last_slot IS NULL OR last_slot < ?)', [slot, id, slot]) > 0;
  }
}
