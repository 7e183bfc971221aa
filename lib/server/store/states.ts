// Sealed state versions of managed-state stacks in the database (the sealed
// bytes are files; lib/server/state.ts holds the rules). Version numbers are
// never reused, even after a version is deleted.
import type { Queries } from './queries.ts';

export interface StateVersionRow {
  stack_id: string; version: number; run_id: string | null; source: string;
  serial: number | null; lineage: string | null; size: number; sha256: string; created_at: string;
}

export class StateStore {
  private readonly q: Queries;
  constructor(q: Queries) { this.q = q; }

  current(stackId: string): StateVersionRow | undefined {
    return this.q.get<StateVersionRow>('SELECT * FROM state_versions WHERE stack_id = ? ORDER BY version DESC LIMIT 1', [stackId]);
  }
  version(stackId: string, version: number): StateVersionRow | undefined {
    return this.q.get<StateVersionRow>('SELECT * FROM state_versions WHERE stack_id = ? AND version = ?', [stackId, version]);
  }
  list(stackId: string): StateVersionRow[] {
    return this.q.all<StateVersionRow>('SELECT * FROM state_versions WHERE stack_id = ? ORDER BY version DESC', [stackId]);
  }
  /** Every version of every stack, with its size (a backup's file list). */
  allVersions(): { stack_id: string; version: number; size: number }[] {
    return this.q.all('SELECT stack_id, version, size FROM state_versions ORDER BY stack_id, version');
  }
  /** Every kept conflict, with its size (a backup's file list). */
  allConflicts(): { run_id: string; phase: number; size: number }[] {
    return this.q.all('SELECT run_id, phase, size FROM state_conflicts ORDER BY run_id, phase');
  }
  insert(v: StateVersionRow): void {
    this.q.run(`INSERT INTO state_versions (stack_id, version, run_id, source, serial, lineage, size, sha256, created_at)
      VALUES ($stack_id, $version, $run_id, $source, $serial, $lineage, $size, $sha256, $created_at)`, { ...v });
  }
  delete(stackId: string, version: number): void {
    this.q.run('DELETE FROM state_versions WHERE stack_id = ? AND version = ?', [stackId, version]);
  }
  /** Every version of a stack (stack delete --purge-state). */
  deleteAll(stackId: string): void {
    this.q.run('DELETE FROM state_versions WHERE stack_id = ?', [stackId]);
  }
  /** A worker's upload refused as a conflict, kept beside its run (nothing is lost). */
  recordConflict(c: { run_id: string; phase: number; stack_id: string; base: number | null; current: number | null; serial: number | null; lineage: string | null; size: number; sha256: string; created_at: string }): void {
    this.q.run(`INSERT OR REPLACE INTO state_conflicts (run_id, phase, stack_id, base, current, serial, lineage, size, sha256, created_at)
      VALUES ($run_id, $phase, $stack_id, $base, $current, $serial, $lineage, $size, $sha256, $created_at)`, { ...c });
  }
  /** The run's latest kept (refused) state upload, if any. */
  latestConflict(runId: string): { phase: number; current: number | null; base: number | null } | undefined {
    return this.q.get<{ phase: number; current: number | null; base: number | null }>('SELECT phase, current, base FROM state_conflicts WHERE run_id = ? ORDER BY phase DESC LIMIT 1', [runId]);
  }
  /** The highest version ever given (deleted ones included: numbers are never reused). */
  maxVersion(stackId: string): number {
    const r = this.q.get<{ v: number | null }>('SELECT value AS v FROM meta WHERE key = ?', [`state-max:${stackId}`]);
    return r?.v === undefined || r.v === null ? 0 : Number(r.v);
  }
  setMaxVersion(stackId: string, v: number): void {
    this.q.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', [`state-max:${stackId}`, String(v)]);
  }
}
