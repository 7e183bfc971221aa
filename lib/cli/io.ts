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

const guarded = new WeakSet<Writable>();

/**
 * `launcher admin run list | head` closes our stdout early: leave quietly, as
 * a reader that has seen enough is not an error (an unhandled EPIPE would
 * print a stack trace).
 */
function guardBrokenPipe(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  if (guarded.has(stream)) return stream;
  guarded.add(stream);
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
  return stream;
}

/**
 * The process's own streams, each built on first use: Node constructs
 * process.stdin/stdout/stderr lazily (loading the tty, net and stream
 * modules), and `launcher version` should not pay for a stdin it never reads.
 */
export function processIo(argv: string[]): CommandIo {
  return {
    argv,
    env: process.env,
    get stdin() { return process.stdin; },
    get stdout() { return guardBrokenPipe(process.stdout); },
    get stderr() { return guardBrokenPipe(process.stderr); },
    cwd: process.cwd(),
  };
}
