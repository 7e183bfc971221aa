// The server's own log: the project's structured logger (lib/log.ts), always
// JSON lines on stderr so operators can feed it to any collector, even from a
// terminal. Fields are explicit and never carry tokens, keys, secret env or
// sealed payloads: callers pass ids, counts and states, not bodies.
import type { Writable } from 'node:stream';
import { createLogger, type Logger as BaseLogger } from '../log.ts';

export type LogFields = Record<string, string | number | boolean | null | undefined>;
export type Logger = Pick<BaseLogger, 'info' | 'warn' | 'error' | 'debug'>;

export function createServerLogger(opts: { stream: Writable; debug?: boolean; now?: () => Date }): Logger {
  return createLogger({ stream: opts.stream, json: true, debug: opts.debug ?? false, ...(opts.now ? { clock: opts.now } : {}) });
}

/** A logger that drops everything (tests of pure parts). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
