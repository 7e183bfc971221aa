// What a command needs from the outside world, injected so tests can call a
// command's main() with plain objects instead of a real process.
import type { Readable, Writable } from 'node:stream';

export interface CommandIo {
  argv: string[];
  env: Record<string, string | undefined>;
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  cwd: string;
  /** Aborted on SIGINT/SIGTERM by the entry; long-running commands watch it. */
  signal?: AbortSignal;
}

/** Every subcommand module exports `run(io)` resolving to the exit code. */
export type Command = (io: CommandIo) => Promise<number>;

export function processIo(argv: string[]): CommandIo {
  return {
    argv,
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
  };
}
