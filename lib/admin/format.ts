// Plain output for people: aligned tables and "key: value" blocks, times as
// "3m ago". Scripts use --json instead, so none of this is a contract.

// C0 controls (ESC, NUL, CR, tab, ...), DEL, C1 controls and the Unicode
// bidirectional overrides: what lets a string move the cursor, recolour or
// rewrite the terminal, or reorder what is shown.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the server (worker metadata and version, run errors, names a
 * launcher chose) made safe for a terminal: control characters are shown as
 * `\x1b`-style escapes instead of being sent to it.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}

/** Columns separated by two spaces, padded to the widest cell; no borders. */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** "key: value" lines with the values aligned. */
export function fields(pairs: [string, string][]): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${(printable(k) + ':').padEnd(w)} ${v.split('\n').map(printable).join('\n')}`.trimEnd()).join('\n') + '\n';
}

/** "12s ago", "5m ago", "3h ago", "2d ago"; "-" for a missing time. */
export function ago(time: unknown, now: number): string {
  const ms = toMillis(time);
  if (ms === undefined) return '-';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** ISO strings and epoch milliseconds (or seconds) both appear in APIs. */
export function toMillis(time: unknown): number | undefined {
  if (typeof time === 'number' && Number.isFinite(time)) return time < 1e11 ? time * 1000 : time;
  if (typeof time === 'string' && time !== '') {
    const ms = Date.parse(time);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/** `k=v,k2=v2`, sorted, "-" when empty. */
export function tags(obj: unknown): string {
  if (obj === null || typeof obj !== 'object') return '-';
  const entries = Object.entries(obj as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${String(v)}`).join(',');
}

/** A cell: "-" for null/undefined/empty, strings as is, others as JSON. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Pretty JSON for --json output: the API's answer as received. */
export function json(v: unknown): string {
  return JSON.stringify(v, null, 2) + '\n';
}

/** "512 B", "3.4 KiB", "12.0 MiB", "1.20 GiB". */
export function byteSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ${units[i]}`;
}
