// Child processes of the built executable in end-to-end tests and benchmarks:
// start one with its output collected, and wait for a line in that output.
// Every e2e file that drives the binary (server, launchers, admin) used its
// own copy of these two functions.
import { spawn, type ChildProcess } from 'node:child_process';

export interface Started { child: ChildProcess; output: () => string }

/**
 * Starts `cmd args` with only PATH and `env` in its environment (so nothing
 * from the test's own environment, such as SPACELIFT_ variables, leaks in),
 * collects stdout and stderr together, and records the child in `children`
 * for the file's clean-up.
 */
export function startProcess(cmd: string, args: string[], env: Record<string, string>, children: ChildProcess[]): Started {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  return { child, output: () => out };
}

/** Waits until `pattern` appears in the output; fails at once if the process exits first, and names what it waited for. */
export async function waitForOutput(p: Started, pattern: RegExp, what: string, ms = 90_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = pattern.exec(p.output());
    if (m) return m;
    if (p.child.exitCode !== null) throw new Error(`${what} exited ${p.child.exitCode}:\n${p.output()}`);
    if (Date.now() > deadline) throw new Error(`${what}: no ${pattern} within ${ms} ms:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops every child still running, newest first (SIGTERM, then waits for it to close), for a file's clean-up. */
export async function stopProcesses(children: ChildProcess[]): Promise<void> {
  for (const c of [...children].reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      const closed = new Promise((r) => c.once('close', r));
      c.kill('SIGTERM');
      await closed;
    }
  }
}
