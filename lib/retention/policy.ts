// What retention removes, decided without I/O: runs that ended longer ago than
// --retain-runs (never one that is still QUEUED, RUNNING or UNCONFIRMED),
// workers OFFLINE (or deregistered) longer than --retain-offline-workers (never
// one that still holds a run), and files in the blob directories that no row
// refers to and that are old enough not to belong to a write in progress.

/** Zero or undefined: keep forever. */
export interface RetentionPolicy {
  retainRunsMs?: number | undefined;
  retainOfflineWorkersMs?: number | undefined;
}

/** A file younger than this is never called an orphan: a trigger writes its workspace before the run's row. */
export const ORPHAN_MIN_AGE_MS = 60 * 60 * 1000;

/** Runs that ended before this ISO time go; undefined when runs are kept forever. */
export function runCutoff(now: number, policy: RetentionPolicy): string | undefined {
  const ms = policy.retainRunsMs;
  return ms && ms > 0 ? new Date(now - ms).toISOString() : undefined;
}

export interface WorkerFacts {
  id: string;
  offline: number;
  offline_since: string | null;
  last_seen: string;
  current_run: string | null;
  deregistered_at: string | null;
}

/** Workers to remove: gone (deregistered) or OFFLINE for longer than the policy allows, holding no run. */
export function workersToRemove(workers: WorkerFacts[], now: number, policy: RetentionPolicy): string[] {
  const ms = policy.retainOfflineWorkersMs;
  if (!ms || ms <= 0) return [];
  const before = now - ms;
  return workers.filter((w) => {
    if (w.current_run !== null) return false;
    const since = w.deregistered_at ?? (w.offline === 1 ? (w.offline_since ?? w.last_seen) : null);
    return since !== null && Date.parse(since) < before;
  }).map((w) => w.id);
}

/** True when a blob file with no row is old enough to remove. */
export function isOrphan(hasRow: boolean, mtimeMs: number, now: number): boolean {
  return !hasRow && now - mtimeMs > ORPHAN_MIN_AGE_MS;
}

/** How often the server sweeps on its own: a tenth of the shortest retention, between a minute and an hour. */
export function sweepIntervalMs(policy: RetentionPolicy): number | undefined {
  const set = [policy.retainRunsMs, policy.retainOfflineWorkersMs].filter((v): v is number => !!v && v > 0);
  if (set.length === 0) return undefined;
  return Math.min(3600_000, Math.max(60_000, Math.floor(Math.min(...set) / 10)));
}

/**
 * A retention period: Go duration syntax (`720h`, `90m`) or whole days (`30d`),
 * more than zero. Throws a message naming the flag and what it accepts.
 */
export function parseRetention(text: string, flag: string, parse: (t: string) => number): number {
  const days = /^(\d{1,5})d$/.exec(text.trim());
  let ms: number;
  if (days) ms = Number(days[1]) * 86_400_000;
  else {
    try { ms = parse(text.trim()); } catch {
      throw new Error(`Invalid ${flag}: "${text}" is not a duration (try 30d, 720h or 90m)`);
    }
  }
  if (!(ms > 0)) throw new Error(`Invalid ${flag}: "${text}" must be more than zero (try 30d)`);
  return ms;
}
