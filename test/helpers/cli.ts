// The launcher run from source as a subprocess (`node --import tsx
// launcher.ts ARGS`) with its exit code and output collected: the one way the
// CLI tests run a command (backup, retention, admin and state tests each had
// a copy).
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');

export interface CliResult { code: number | null; out: string; err: string }

export interface CliOptions {
  /** The child's whole environment besides PATH and HOME (which it keeps unless given); without it, the test's own environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Called with all of stdout (or stderr) so far, after each piece. */
  onOut?: (text: string) => void;
  onErr?: (text: string) => void;
  /** A command still running after this long is killed (default 120 s), so a hang fails the test instead of stalling it. */
  timeoutMs?: number;
}

/** `launcher ARGS` from source; resolves when it exits, however it exits. */
export function runLauncher(args: string[], o: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = o.env === undefined ? process.env : { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...o.env };
    const p = spawn(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), ...args], { cwd: o.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; o.onOut?.(out); });
    p.stderr.on('data', (d) => { err += d; o.onErr?.(err); });
    const t = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}
