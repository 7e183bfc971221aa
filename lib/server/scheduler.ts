// Scheduling decisions as pure functions: which worker may take work, which
// run goes to which waiting worker, and how a run moves through its states.
// No clock, database or socket here, so every rule is unit-tested directly.

import type { Outcome, RunAction, RunState, WorkerStatus } from '../protocol.ts';

export interface WorkerFacts {
  id: string;
  poolId: string;
  deregistered: boolean;
  offline: boolean;
  drained: boolean;
  /** The pool was cycled after this worker registered: it exits after its current run. */
  cycled: boolean;
  /** Its latest poll said accept: true. */
  accepting: boolean;
  /** It has a run (assigned or running). */
  busy: boolean;
}

/** Only live, registered, undrained, uncycled, accepting, idle workers take work. */
export function canTakeWork(w: WorkerFacts): boolean {
  return !w.deregistered && !w.offline && !w.drained && !w.cycled && w.accepting && !w.busy;
}

export function workerStatus(w: { offline: boolean; drained: boolean; busy: boolean }): WorkerStatus {
  if (w.offline) return 'OFFLINE';
  if (w.busy) return 'BUSY';
  if (w.drained) return 'DRAINED';
  return 'IDLE';
}

export interface QueuedRun { id: string; poolId: string; queueKey: number }

/**
 * Pairs queued runs with waiting workers: per pool, runs in queue order (lowest
 * key first: FIFO, prioritized runs carry a lower key) go to workers in the
 * order they started waiting (longest-waiting first), one run per worker, and
 * only to a worker of the run's own pool that can take work.
 */
export function planAssignments(queued: readonly QueuedRun[], waiting: readonly WorkerFacts[]): { runId: string; workerId: string }[] {
  const free = new Map<string, WorkerFacts[]>();
  for (const w of waiting) {
    if (!canTakeWork(w)) continue;
    const list = free.get(w.poolId) ?? [];
    list.push(w);
    free.set(w.poolId, list);
  }
  const runs = [...queued].sort((a, b) => a.queueKey - b.queueKey);
  const out: { runId: string; workerId: string }[] = [];
  const taken = new Set<string>();
  for (const r of runs) {
    const list = free.get(r.poolId);
    const w = list?.shift();
    if (!w || taken.has(w.id)) continue;
    taken.add(w.id);
    out.push({ runId: r.id, workerId: w.id });
  }
  return out;
}

/** The key that puts a run ahead of every other active run of its pool. */
export function prioritizedKey(activeKeys: readonly number[]): number {
  return activeKeys.length === 0 ? 0 : Math.min(...activeKeys) - 1;
}

/** A run's first state: UNCONFIRMED when its first phase waits for confirmation. */
export function initialState(phases: readonly { confirm: boolean }[]): RunState {
  return phases[0]?.confirm ? 'UNCONFIRMED' : 'QUEUED';
}

export interface PhaseEnd { state: RunState; phase: number; reason: string | null }

/** Where a run goes when its current phase ends with `outcome`. */
export function afterPhase(
  run: { phase: number; phases: readonly { name: string; confirm: boolean }[] },
  outcome: Outcome,
  detail: { exitCode?: number | null; error?: string | null } = {},
): PhaseEnd {
  const name = run.phases[run.phase]?.name ?? String(run.phase);
  switch (outcome) {
    case 'succeeded': {
      const next = run.phase + 1;
      if (next >= run.phases.length) return { state: 'FINISHED', phase: run.phase, reason: null };
      return { state: run.phases[next]!.confirm ? 'UNCONFIRMED' : 'QUEUED', phase: next, reason: null };
    }
    case 'failed':
      return { state: 'FAILED', phase: run.phase, reason: `phase ${name} failed: exit code ${detail.exitCode ?? 'unknown'}` };
    case 'logs-timeout':
      return { state: 'FAILED', phase: run.phase, reason: `phase ${name} timed out: no log output for too long` };
    case 'run-timeout':
      return { state: 'FAILED', phase: run.phase, reason: `phase ${name} timed out: the run took too long` };
    case 'system-error':
      return { state: 'FAILED', phase: run.phase, reason: `phase ${name} hit a system error${detail.error ? `: ${detail.error}` : ''}` };
    case 'worker-lost':
      return { state: 'FAILED', phase: run.phase, reason: 'worker lost' };
    case 'canceled':
      return { state: 'CANCELED', phase: run.phase, reason: 'canceled' };
  }
}

/**
 * What an admin action does in a state: the new state, `request-cancel` (a
 * running phase must be stopped by its worker first), or undefined (refused).
 */
export function adminTransition(state: RunState, action: RunAction, started: boolean): RunState | 'request-cancel' | 'same' | undefined {
  switch (action) {
    case 'confirm': return state === 'UNCONFIRMED' ? 'QUEUED' : undefined;
    case 'discard': return state === 'UNCONFIRMED' ? 'DISCARDED' : undefined;
    case 'prioritize': return state === 'QUEUED' || state === 'UNCONFIRMED' ? 'same' : undefined;
    case 'cancel':
      if (state === 'QUEUED' || state === 'UNCONFIRMED') return 'CANCELED';
      if (state === 'RUNNING') return started ? 'request-cancel' : 'CANCELED';
      return undefined;
  }
}

/** What the server does when a worker's lease runs out while it holds a run. */
export function onWorkerLost(phaseStarted: boolean): 'requeue' | 'wait-grace' {
  // An unacknowledged phase never ran, so giving it to another worker is not a
  // re-run; a started one may have changed infrastructure and waits for the
  // worker to come back, then fails as worker-lost.
  return phaseStarted ? 'wait-grace' : 'requeue';
}
