// The launcher's own log (not run output): one record per line, JSON lines
// by default so log shippers and `jq` read it, human-readable on a terminal.
// Every string goes through the injected `redact` hook before it is written,
// so a secret that reaches a message or a field never reaches the log.

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every record. */
  child(fields: Fields): Logger;
  /** Whether debug records are written (to skip building costly ones). */
  readonly debugEnabled: boolean;
}

export interface LoggerOptions {
  stream: { write(chunk: string): unknown; isTTY?: boolean };
  /** JSON lines (default: unless the stream is a terminal). */
  json?: boolean;
  /** Write debug records (SPACELIFT_DEBUG). Default false. */
  debug?: boolean;
  /** Masks secrets in text; applied to the message and every string field. */
  redact?: (text: string) => string;
  clock?: () => Date;
}

const RESERVED = new Set(['time', 'level', 'msg']);

export function createLogger(opts: LoggerOptions, bound: Fields = {}): Logger {
  const json = opts.json ?? opts.stream.isTTY !== true;
  const redact = opts.redact ?? ((t: string) => t);
  const clock = opts.clock ?? (() => new Date());
  const debugEnabled = opts.debug ?? false;

  const write = (level: Level, msg: string, fields: Fields | undefined): void => {
    if (level === 'debug' && !debugEnabled) return;
    const all = fields === undefined ? bound : { ...bound, ...fields };
    let line: string;
    try {
      line = json ? jsonLine(clock(), level, msg, all, redact) : humanLine(clock(), level, msg, all, redact);
    } catch (e) {
      // A field that cannot be serialised must not lose the record.
      line = jsonLine(clock(), level, msg, { logError: `Cannot serialise log fields: ${(e as Error).message}` }, redact);
    }
    try {
      opts.stream.write(`${line}\n`);
    } catch {
      // A closed stderr must not take the launcher down with it.
    }
  };

  return {
    debugEnabled,
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => createLogger(opts, { ...bound, ...fields }),
  };
}

// Errors become {name, message, code}; bigints become strings; cycles are cut.
function plain(value: unknown, redact: (t: string) => string, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redact(value);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? String(value) : value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (value instanceof Error) {
    const e: Fields = { name: value.name, message: redact(value.message) };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) e.code = plain(code, redact, seen);
    if (value.cause !== undefined) e.cause = plain(value.cause, redact, seen);
    return e;
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => plain(v, redact, seen));
  const out: Fields = {};
  for (const [k, v] of Object.entries(value)) out[k] = plain(v, redact, seen);
  return out;
}

function jsonLine(time: Date, level: Level, msg: string, fields: Fields, redact: (t: string) => string): string {
  const seen = new WeakSet<object>();
  const record: Fields = { time: time.toISOString(), level, msg: redact(msg) };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    record[RESERVED.has(k) ? `field.${k}` : k] = plain(v, redact, seen);
  }
  return JSON.stringify(record);
}

function humanLine(time: Date, level: Level, msg: string, fields: Fields, redact: (t: string) => string): string {
  const seen = new WeakSet<object>();
  let line = `${time.toISOString()} ${level.toUpperCase().padEnd(5)} ${oneLine(redact(msg))}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const p = plain(v, redact, seen);
    const quote = typeof p === 'string' && (p === '' || /[\s"=]/.test(p));
    line += ` ${k}=${typeof p === 'string' && !quote ? p : JSON.stringify(p)}`;
  }
  return line;
}

function oneLine(s: string): string {
  return s.replace(/\r?\n/g, '\\n');
}
