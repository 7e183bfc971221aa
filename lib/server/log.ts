// The server's own log: one JSON object per line on stderr, so operators can
// feed it to any collector. Fields are explicit and never carry tokens, keys,
// secret env or sealed payloads: callers pass ids and counts, not bodies.
import type { Writable } from 'node:stream';

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

export function createServerLogger(opts: { stream: Writable; debug?: boolean; now?: () => Date }): Logger {
  const now = opts.now ?? (() => new Date());
  const write = (level: string, msg: string, fields?: LogFields): void => {
    const line: Record<string, unknown> = { time: now().toISOString(), level, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line[k] = v;
    opts.stream.write(JSON.stringify(line) + '\n');
  };
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    debug: (m, f) => { if (opts.debug) write('debug', m, f); },
  };
}

/** A logger that drops everything (tests of pure parts). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
