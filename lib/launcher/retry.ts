// Calls to the server that must eventually succeed (phase start, result,
// workspace transfer) are retried while the failure is transient, with the
// same full-jitter backoff as the long-poll. Permanent refusals and protocol
// errors go straight to the caller.
import { Backoff, sleep, type BackoffOptions } from './backoff.ts';
import { isTransient } from './api.ts';
import { LauncherError } from '../errors.ts';

export interface RetryOptions {
  signal?: AbortSignal;
  backoff?: BackoffOptions;
  /** Told about each failure before sleeping. */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
}

export async function retryTransient<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const b = new Backoff({ baseMs: 200, ...opts.backoff });
  for (;;) {
    if (opts.signal?.aborted) throw new LauncherError('ABORTED', 'Stopped retrying: the launcher is leaving');
    try {
      return await fn();
    } catch (e) {
      if (!isTransient(e)) throw e;
      const delay = b.next();
      opts.onRetry?.(e, b.attempt, delay);
      await sleep(delay, opts.signal);
    }
  }
}
