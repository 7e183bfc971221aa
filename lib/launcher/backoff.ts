// Reconnect delays: exponential backoff with "full jitter" (AWS architecture
// blog, "Exponential Backoff And Jitter"): the delay is uniform in
// [0, min(cap, base·2^attempt)]. Full jitter spreads a fleet of launchers that
// all lost the server at the same moment, so they do not stampede it when it
// returns. The cap stays short (30 s) and there is no "unhealthy" mode with
// long sleeps: a launcher is back within seconds of the server returning.
// Pure: randomness is injected, and nothing here sleeps.

export interface BackoffOptions {
  /** First ceiling, in milliseconds. */
  baseMs?: number;
  /** Largest ceiling, in milliseconds. */
  capMs?: number;
  /** Uniform random in [0, 1); Math.random by default. */
  random?: () => number;
}

export const DEFAULT_BASE_MS = 250;
export const DEFAULT_CAP_MS = 30_000;

/** The ceiling for the n-th consecutive failure (0-based). */
export function backoffCeiling(attempt: number, baseMs = DEFAULT_BASE_MS, capMs = DEFAULT_CAP_MS): number {
  if (!Number.isFinite(attempt) || attempt < 0) return baseMs;
  // 2^attempt overflows to Infinity for large attempts; min() keeps the cap.
  return Math.min(capMs, baseMs * 2 ** Math.min(attempt, 1024));
}

/** Delay before retry number `attempt` (0-based): uniform in [0, ceiling]. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const random = opts.random ?? Math.random;
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffCeiling(attempt, opts.baseMs, opts.capMs));
}

/** Counts consecutive failures; `reset()` after any success. */
export class Backoff {
  #attempt = 0;
  readonly #opts: BackoffOptions;
  constructor(opts: BackoffOptions = {}) {
    this.#opts = opts;
  }
  get attempt(): number {
    return this.#attempt;
  }
  /** The delay before the next try, counting this failure. */
  next(): number {
    return backoffDelay(this.#attempt++, this.#opts);
  }
  reset(): void {
    this.#attempt = 0;
  }
}

/** Sleeps `ms`, resolving early (not rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
