// Metrics in the Prometheus text exposition format (version 0.0.4): counters
// and histograms kept in memory and updated as things happen, gauges read at
// scrape time from a callback. Pure: no clock, no I/O; `render()` returns the
// page. Counters and histograms start at zero with the process, as Prometheus
// expects (its rate() handles the reset after a restart).

export type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(out: string[]): void;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value as the format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra) pairs.push(extra);
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** Numbers as Go's strconv formats them for Prometheus: +Inf, -Inf, NaN, plain decimals. */
export function formatValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

function keyOf(labelNames: readonly string[], labels: Labels): string {
  for (const k of Object.keys(labels)) {
    if (!labelNames.includes(k)) throw new Error(`Unknown label "${k}" (expected ${labelNames.join(', ') || 'none'})`);
  }
  return JSON.stringify(labelNames.map((n) => labels[n] ?? ''));
}

function labelsOf(labelNames: readonly string[], key: string): Labels {
  const values = JSON.parse(key) as string[];
  return Object.fromEntries(labelNames.map((n, i) => [n, values[i]!]));
}

export class Counter {
  private readonly values = new Map<string, number>();
  readonly labelNames: readonly string[];
  constructor(labelNames: readonly string[]) { this.labelNames = labelNames; }
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`A counter only goes up: got ${by}`);
    const k = keyOf(this.labelNames, labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number { return this.values.get(keyOf(this.labelNames, labels)) ?? 0; }
  /** Makes a series exist at 0, so a query finds it before the first event. */
  touch(labels: Labels): void {
    const k = keyOf(this.labelNames, labels);
    if (!this.values.has(k)) this.values.set(k, 0);
  }
  render(name: string, out: string[]): void {
    for (const [k, v] of this.values) out.push(`${name}${labelText(labelsOf(this.labelNames, k))} ${formatValue(v)}`);
  }
}

export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  readonly buckets: number[];
  readonly labelNames: readonly string[];
  constructor(labelNames: readonly string[], buckets: number[]) {
    this.labelNames = labelNames;
    if (labelNames.includes('le')) throw new Error('"le" is reserved for histogram buckets');
    this.buckets = [...buckets].sort((a, b) => a - b);
  }
  observe(labels: Labels, value: number): void {
    if (!Number.isFinite(value)) return;
    const k = keyOf(this.labelNames, labels);
    let s = this.series.get(k);
    if (!s) { s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }; this.series.set(k, s); }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(name: string, out: string[]): void {
    for (const [k, s] of this.series) {
      const labels = labelsOf(this.labelNames, k);
      // Each bucket counts every observation <= its bound (cumulative).
      this.buckets.forEach((b, i) => out.push(`${name}_bucket${labelText(labels, ['le', formatValue(b)])} ${s.counts[i]}`));
      out.push(`${name}_bucket${labelText(labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${name}_sum${labelText(labels)} ${formatValue(s.sum)}`);
      out.push(`${name}_count${labelText(labels)} ${s.count}`);
    }
  }
}

/** A gauge family read at scrape time: the callback returns every series. */
export type GaugeReader = () => { labels: Labels; value: number }[];

export class Registry {
  private readonly families: Family[] = [];

  private add(name: string, help: string, type: Family['type'], labelNames: readonly string[], render: (out: string[]) => void): void {
    if (!NAME.test(name)) throw new Error(`Invalid metric name "${name}"`);
    for (const l of labelNames) if (!LABEL.test(l) || l.startsWith('__')) throw new Error(`Invalid label name "${l}"`);
    if (this.families.some((f) => f.name === name)) throw new Error(`Metric "${name}" registered twice`);
    this.families.push({ name, help, type, render });
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    if (!name.endsWith('_total')) throw new Error(`A counter's name ends in _total: "${name}"`);
    const c = new Counter(labelNames);
    this.add(name, help, 'counter', labelNames, (out) => c.render(name, out));
    return c;
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: number[]): Histogram {
    const h = new Histogram(labelNames, buckets);
    this.add(name, help, 'histogram', labelNames, (out) => h.render(name, out));
    return h;
  }

  gauge(name: string, help: string, labelNames: readonly string[], read: GaugeReader): void {
    this.add(name, help, 'gauge', labelNames, (out) => {
      for (const s of read()) {
        keyOf(labelNames, s.labels);
        out.push(`${name}${labelText(s.labels)} ${formatValue(s.value)}`);
      }
    });
  }

  /** A counter kept elsewhere (the process's CPU time), read at scrape time. */
  counterFrom(name: string, help: string, labelNames: readonly string[], read: GaugeReader): void {
    if (!name.endsWith('_total')) throw new Error(`A counter's name ends in _total: "${name}"`);
    this.add(name, help, 'counter', labelNames, (out) => {
      for (const s of read()) {
        keyOf(labelNames, s.labels);
        out.push(`${name}${labelText(s.labels)} ${formatValue(s.value)}`);
      }
    });
  }

  /** The whole page, families in registration order. */
  render(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      f.render(out);
    }
    return out.join('\n') + '\n';
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
