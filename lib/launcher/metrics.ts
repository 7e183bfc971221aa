// What the launcher counts, and the opt-in local listener that shows it:
// GET /healthz (200 while the server was heard from recently, else 503) and
// GET /metrics in the Prometheus text format. Loopback only by default: it
// carries no secrets, but it is for the host's own monitoring agent.
import { createServer, type Server } from 'node:http';
import { LauncherError } from '../errors.ts';
import { REPORTABLE_OUTCOMES } from '../protocol.ts';

export class Metrics {
  runs = new Map<string, number>();
  busy = false;
  logBytes = 0;
  reconnects = 0;
  lastContactMs = 0;
  draining = false;
  readonly #now: () => number;
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }
  phaseFinished(outcome: string): void {
    this.runs.set(outcome, (this.runs.get(outcome) ?? 0) + 1);
  }
  contact(): void {
    this.lastContactMs = this.#now();
  }
  secondsSinceContact(): number {
    return this.lastContactMs === 0 ? -1 : (this.#now() - this.lastContactMs) / 1000;
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    out.push('# HELP launcher_phases_total Phases this launcher finished, by result.', '# TYPE launcher_phases_total counter');
    for (const outcome of REPORTABLE_OUTCOMES) {
      out.push(`launcher_phases_total{result="${outcome}"} ${this.runs.get(outcome) ?? 0}`);
    }
    for (const [k, v] of this.runs) if (!out.some((l) => l.includes(`"${k}"`))) out.push(`launcher_phases_total{result="${k}"} ${v}`);
    out.push('# HELP launcher_busy 1 while a phase is running.', '# TYPE launcher_busy gauge', `launcher_busy ${this.busy ? 1 : 0}`);
    out.push('# HELP launcher_draining 1 while the server has drained this worker.', '# TYPE launcher_draining gauge', `launcher_draining ${this.draining ? 1 : 0}`);
    out.push('# HELP launcher_log_bytes_total Masked run log bytes stored by the server.', '# TYPE launcher_log_bytes_total counter', `launcher_log_bytes_total ${this.logBytes}`);
    out.push('# HELP launcher_reconnects_total Failed server calls retried with backoff.', '# TYPE launcher_reconnects_total counter', `launcher_reconnects_total ${this.reconnects}`);
    out.push('# HELP launcher_seconds_since_server_contact Seconds since the server last answered (-1: never).', '# TYPE launcher_seconds_since_server_contact gauge',
      `launcher_seconds_since_server_contact ${this.secondsSinceContact().toFixed(3)}`);
    return out.join('\n') + '\n';
  }
}

/** Starts the listener; `healthyWithinS` is how recent the last server contact must be. */
export async function serveMetrics(metrics: Metrics, addr: { host: string; port: number }, healthyWithinS = 90): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.render());
    } else if (path === '/healthz') {
      const since = metrics.secondsSinceContact();
      const ok = since >= 0 && since <= healthyWithinS;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok, busy: metrics.busy, secondsSinceServerContact: since }) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new LauncherError('METRICS_LISTEN', `Cannot listen on ${addr.host}:${addr.port} for metrics: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { exitCode: 2, cause: e })));
    server.listen(addr.port, addr.host, () => resolve());
  });
  server.unref();
  return server;
}
