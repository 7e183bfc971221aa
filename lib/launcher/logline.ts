// The launcher's own log: one JSON object per line (time, level, msg, then
// fields) for log shippers, or a short human line on a TTY. Field values that
// look like they could hold a secret are never passed in by callers; as a
// second line of defence every line goes through `redact`.
import type { Writable } from 'node:stream';
import type { Logger } from './phase.ts';

export interface LogLineOptions {
  stream: Writable & { isTTY?: boolean };
  json?: boolean;
  debug?: boolean;
  /** Replaces secret values in a finished line (e.g. a Masker over known secrets). */
  redact?: (line: string) => string;
  now?: () => Date;
}

type Level = 'debug' | 'info' | 'warn' | 'error';

export function createLauncherLog(opts: LogLineOptions): Logger {
  const json = opts.json ?? !opts.stream.isTTY;
  const now = opts.now ?? (() => new Date());
  const redact = opts.redact ?? ((l: string) => l);
  const write = (level: Level, msg: string, fields: Record<string, unknown> = {}) => {
    if (level === 'debug' && !opts.debug) return;
    let line: string;
    if (json) {
      line = JSON.stringify({ time: now().toISOString(), level, msg, ...fields });
    } else {
      const extra = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
      line = `${now().toISOString().slice(11, 19)} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? `  ${extra}` : ''}`;
    }
    opts.stream.write(redact(line) + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
