// Waiting for a condition in a test: re-check it until it holds, and fail
// with what was awaited when it never does. The limit is generous on purpose:
// it only bounds a test that would otherwise hang, so it must not be what a
// loaded machine trips over.
import { setTimeout as sleep } from 'node:timers/promises';

/** Re-checks `check` (sync or async) every `everyMs` until it returns a value other than false/undefined/null; returns that value. */
export async function waitFor<T>(check: () => T | false | undefined | null | Promise<T | false | undefined | null>, what: string, ms = 120_000, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== false && v !== undefined && v !== null) return v;
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
