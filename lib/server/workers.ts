// Live worker presence: who is holding a long-poll right now, and when each
// worker's lease runs out. Everything is event-driven: a held poll is answered
// the moment something is handed to it (resolve), and leases are one timer per
// worker that every call refreshes. Nothing here sleeps or polls.
//
// Per held connection the server keeps one small Waiter and one timer (the
// poll's own `wait`), so thousands of idle launchers cost little.

export interface Waiter {
  workerId: string;
  poolId: string;
  /** The pool key whose certificate the poll came in with (retiring it ends the poll). */
  keyId: string;
  /** It may be given a run (accepting, idle, undrained, uncycled) at the time it started waiting. */
  accept: boolean;
  /** Answers the held poll; `undefined` ends it without a body (client gone). */
  settle: (reply: unknown) => void;
  /** False once the client's connection is gone. */
  alive: () => boolean;
  timer: NodeJS.Timeout | undefined;
}

export interface PresenceOptions {
  leaseMs: number;
  graceMs: number;
  /** The worker made no call for a whole lease and holds no poll. */
  onLeaseExpired: (workerId: string) => void;
  /** The grace period of an OFFLINE worker that held a started phase ran out. */
  onGraceExpired: (workerId: string) => void;
}

export class Presence {
  private readonly opts: PresenceOptions;
  private readonly waiters = new Map<string, Waiter>();
  /** Accepting waiters per pool, in the order they started waiting. */
  private readonly accepting = new Map<string, Map<string, Waiter>>();
  private readonly leases = new Map<string, NodeJS.Timeout>();
  private readonly graces = new Map<string, NodeJS.Timeout>();
  readonly lastSeen = new Map<string, number>();
  /** The control signature last delivered to each worker (answer at once when it changes). */
  readonly delivered = new Map<string, string>();

  constructor(opts: PresenceOptions) { this.opts = opts; }

  /** A call from the worker: it is alive; restart its lease and cancel any grace countdown. */
  seen(workerId: string, now = Date.now()): void {
    this.lastSeen.set(workerId, now);
    const g = this.graces.get(workerId);
    if (g) { clearTimeout(g); this.graces.delete(workerId); }
    const t = this.leases.get(workerId);
    if (t) { t.refresh(); return; }
    const timer = setTimeout(() => this.leaseFired(workerId), this.opts.leaseMs);
    timer.unref();
    this.leases.set(workerId, timer);
  }

  private leaseFired(workerId: string): void {
    const w = this.waiters.get(workerId);
    // A held poll is proof of life: the lease counts from when it ends.
    if (w && w.alive()) { this.leases.get(workerId)?.refresh(); return; }
    this.leases.delete(workerId);
    this.opts.onLeaseExpired(workerId);
  }

  /** Starts the grace countdown of an OFFLINE worker that was running a phase. */
  startGrace(workerId: string, ms = this.opts.graceMs): void {
    if (this.graces.has(workerId)) return;
    const t = setTimeout(() => { this.graces.delete(workerId); this.opts.onGraceExpired(workerId); }, Math.max(0, ms));
    t.unref();
    this.graces.set(workerId, t);
  }

  /** Holds a poll; an older poll of the same worker is ended first (empty answer). */
  hold(w: Waiter, waitMs: number, onTimeout: () => void): void {
    const old = this.waiters.get(w.workerId);
    if (old) this.release(old, 'replaced');
    this.waiters.set(w.workerId, w);
    if (w.accept) {
      let m = this.accepting.get(w.poolId);
      if (!m) { m = new Map(); this.accepting.set(w.poolId, m); }
      m.set(w.workerId, w);
    }
    w.timer = setTimeout(() => {
      if (this.waiters.get(w.workerId) !== w) return;
      this.drop(w);
      onTimeout();
    }, waitMs);
  }

  private drop(w: Waiter): void {
    if (w.timer) clearTimeout(w.timer);
    if (this.waiters.get(w.workerId) === w) this.waiters.delete(w.workerId);
    const m = this.accepting.get(w.poolId);
    if (m?.get(w.workerId) === w) {
      m.delete(w.workerId);
      if (m.size === 0) this.accepting.delete(w.poolId);
    }
    // Its lease starts counting again from the end of the poll.
    this.leases.get(w.workerId)?.refresh();
  }

  /** Ends a held poll without answering (client gone) or with an empty answer (replaced). */
  release(w: Waiter, why: 'gone' | 'replaced'): void {
    if (this.waiters.get(w.workerId) !== w) return;
    this.drop(w);
    w.settle(why === 'gone' ? undefined : null);
  }

  /** Takes a held poll out of the lists so the caller can answer it. */
  take(workerId: string): Waiter | undefined {
    const w = this.waiters.get(workerId);
    if (!w) return undefined;
    this.drop(w);
    return w;
  }

  waiting(workerId: string): Waiter | undefined { return this.waiters.get(workerId); }

  /** Accepting waiters per pool id, for metrics. */
  acceptingByPool(): Map<string, number> {
    return new Map([...this.accepting].map(([pool, m]) => [pool, m.size]));
  }

  /** How many accepting waiters a pool has (some may have just gone away). */
  acceptingCount(poolId: string): number {
    return this.accepting.get(poolId)?.size ?? 0;
  }

  /** Up to `limit` live accepting waiters of a pool, longest-waiting first. */
  acceptingIn(poolId: string, limit = Infinity): Waiter[] {
    const out: Waiter[] = [];
    for (const w of this.accepting.get(poolId)?.values() ?? []) {
      if (out.length >= limit) break;
      if (w.alive()) out.push(w);
    }
    return out;
  }

  /** Ends the held polls that match (empty answer), e.g. those made with a revoked certificate. */
  releaseWhere(pred: (w: Waiter) => boolean): void {
    for (const w of [...this.waiters.values()]) if (pred(w)) this.release(w, 'replaced');
  }

  heldCount(): number { return this.waiters.size; }

  /** The worker left (deregistered or its pool was deleted). */
  forget(workerId: string): void {
    const w = this.waiters.get(workerId);
    if (w) this.release(w, 'replaced');
    for (const m of [this.leases, this.graces]) {
      const t = m.get(workerId);
      if (t) { clearTimeout(t); m.delete(workerId); }
    }
    this.delivered.delete(workerId);
    this.lastSeen.delete(workerId);
  }

  /** Ends every held poll with an empty answer and stops all timers (shutdown). */
  close(): void {
    for (const w of [...this.waiters.values()]) this.release(w, 'replaced');
    for (const m of [this.leases, this.graces]) { for (const t of m.values()) clearTimeout(t); m.clear(); }
  }
}
