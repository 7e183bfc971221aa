// What every console end-to-end test file sets up before its browser opens:
// the built executable, a scratch folder with the server's data directory in
// it, the children it starts (stopped at the end) and a wait for text on the
// page. One copy here; four test files each had these lines.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureBuilt, root } from './build.ts';
import { startProcess, type Started, stopProcesses } from './processes.ts';

export interface ConsoleE2e {
  /** The built executable. */
  binary: string;
  /** A fresh scratch folder, removed by `cleanup`. */
  work: string;
  /** The server's data directory inside `work`. */
  data: string;
  /** Where screenshots for docs/console.md go. */
  shots: string;
  children: ChildProcess[];
  /** Starts the executable with `args`; stopped by `cleanup`. */
  started: (args: string[], env?: Record<string, string>) => Started;
  /** Waits until an element matching `selector` shows `text`. */
  waitText: (page: Page, selector: string, text: string | RegExp, ms?: number) => Promise<void>;
  /** Stops every child, then runs `also` (e.g. a Git server's stop), then removes `work`. */
  cleanup: (also?: () => Promise<void> | undefined) => Promise<void>;
}

export function consoleE2e(prefix: string, waitMs = 120_000): ConsoleE2e {
  const binary = ensureBuilt();
  const work = mkdtempSync(join(tmpdir(), prefix));
  const children: ChildProcess[] = [];
  return {
    binary,
    work,
    data: join(work, 'data'),
    shots: join(root, 'docs/console'),
    children,
    started: (args, env = {}) => startProcess(binary, args, env, children),
    waitText: (page, selector, text, ms = waitMs) =>
      page.locator(selector, { hasText: text }).first().waitFor({ state: 'visible', timeout: ms }),
    cleanup: async (also) => {
      await stopProcesses(children);
      await also?.();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
