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
}

/** Every subcommand module exports `run(io)` resolving to the exit code. */
export type Command = (io: CommandIo) => Promise<number>;

let pipeGuarded = false;

/**
 * `launcher admin run list | head` closes our stdout early: leave quietly, as
 * a reader that has seen enough is not an error (an unhandled EPIPE would
 * print a stack trace).
 */
function guardBrokenPipe(): void {
  if (pipeGuarded) return;
  pipeGuarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      throw e;
    });
  }
}

export function processIo(argv: string[]): CommandIo {
  guardBrokenPipe();
  return {
    argv,
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
  };
}
