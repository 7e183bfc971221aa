// Cron expressions, UTC, pure. Five fields (minute hour day-of-month month
// day-of-week) as in crontab(5), or six with seconds first; `*`, lists, ranges,
// steps (`*/15`, `1-30/5`), month and weekday names, and the @hourly/@daily/
// @weekly/@monthly/@yearly shorthands. As in Vixie cron, when both day fields
// are restricted a day matches either of them.

export interface Cron {
  source: string;
  seconds: Set<number>;
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  /** Day-of-month was `*` (then only weekdays restrict), and the same for weekdays. */
  anyDay: boolean;
  anyWeekday: boolean;
}

export class CronError extends Error {}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const SHORTHANDS: Record<string, string> = {
  '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *', '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *',
};

function field(text: string, name: string, min: number, max: number, names?: string[], nameBase = 0): Set<number> {
  const out = new Set<number>();
  const value = (s: string): number => {
    const i = names?.indexOf(s.toLowerCase()) ?? -1;
    if (i >= 0) return i + nameBase;
    if (!/^\d+$/.test(s)) throw new CronError(`${name} "${s}" is not a number${names ? ` or a name (${names.join(', ')})` : ''}`);
    return Number(s);
  };
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new CronError(`${name} "${part}" is not a value, range or step`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw new CronError(`${name} step "${m[2]}" must be at least 1`);
    let lo: number;
    let hi: number;
    if (m[1] === '*') { lo = min; hi = max; } else if (m[1]!.includes('-')) {
      const [a, b] = m[1]!.split('-');
      lo = value(a!); hi = value(b!);
    } else {
      lo = value(m[1]!); hi = m[2] === undefined ? lo : max;
    }
    if (lo < min || hi > max || lo > hi) throw new CronError(`${name} "${part}" is out of range ${min}-${max}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Parses an expression; throws CronError naming the field at fault. */
export function parseCron(expr: string): Cron {
  const source = expr.trim();
  const text = SHORTHANDS[source.toLowerCase()] ?? source;
  const parts = text.split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new CronError(`"${expr}" has ${parts.length} fields: expected 5 (minute hour day-of-month month day-of-week, e.g. "0 3 * * *") or 6 with seconds first`);
  }
  const [sec, ...rest] = parts.length === 6 ? parts : ['0', ...parts];
  const [min, hour, dom, mon, dow] = rest as [string, string, string, string, string];
  const weekdays = field(dow, 'day-of-week', 0, 7, DAYS);
  if (weekdays.has(7)) { weekdays.delete(7); weekdays.add(0); }
  return {
    source,
    seconds: field(sec!, 'second', 0, 59),
    minutes: field(min, 'minute', 0, 59),
    hours: field(hour, 'hour', 0, 23),
    days: field(dom, 'day-of-month', 1, 31),
    months: field(mon, 'month', 1, 12, MONTHS, 1),
    weekdays,
    anyDay: dom === '*' || dom === '?',
    anyWeekday: dow === '*' || dow === '?',
  };
}

function dayMatches(c: Cron, d: Date): boolean {
  const dom = c.days.has(d.getUTCDate());
  const dow = c.weekdays.has(d.getUTCDay());
  if (c.anyDay && c.anyWeekday) return true;
  if (c.anyDay) return dow;
  if (c.anyWeekday) return dom;
  return dom || dow;
}

/** The first slot strictly after `afterMs` (UTC), or undefined if none within 5 years. */
export function nextSlot(c: Cron, afterMs: number): number | undefined {
  const d = new Date(Math.floor(afterMs / 1000) * 1000 + 1000);
  const limit = afterMs + 5 * 366 * 86_400_000;
  while (d.getTime() <= limit) {
    if (!c.months.has(d.getUTCMonth() + 1)) {
      d.setUTCMonth(d.getUTCMonth() + 1, 1); d.setUTCHours(0, 0, 0, 0); continue;
    }
    if (!dayMatches(c, d)) { d.setUTCDate(d.getUTCDate() + 1); d.setUTCHours(0, 0, 0, 0); continue; }
    if (!c.hours.has(d.getUTCHours())) { d.setUTCHours(d.getUTCHours() + 1, 0, 0, 0); continue; }
    if (!c.minutes.has(d.getUTCMinutes())) { d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0); continue; }
    if (!c.seconds.has(d.getUTCSeconds())) { d.setUTCSeconds(d.getUTCSeconds() + 1, 0); continue; }
    return d.getTime();
  }
  return undefined;
}

/**
 * The latest slot in (afterMs, nowMs], or undefined when none is due. Slots
 * missed while the server was down collapse into this one: a schedule fires
 * once for them, not once per missed slot.
 */
export function dueSlot(c: Cron, afterMs: number, nowMs: number): number | undefined {
  let due: number | undefined;
  let t = afterMs;
  for (let i = 0; i < 1_000_000; i++) {
    const n = nextSlot(c, t);
    if (n === undefined || n > nowMs) return due;
    due = n;
    t = n;
  }
  return due;
}
