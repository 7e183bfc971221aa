// Simulated launchers: each registers on its own (and gets its own worker id)
// and keeps one long-poll open, as a real launcher does, over mutual TLS with
// the pool certificate. One undici Agent carries them all; with unlimited
// connections per origin every held poll has its own TLS connection, which is
// what N launchers on N hosts look like to the server.
import { performance } from 'node:perf_hooks';
import { Agent, type Dispatcher } from 'undici';

export interface Tls { ca: string; cert: string; key: string }

export interface Assignment {
  runId: string;
  phase: number;
  [k: string]: unknown;
}

/** What a worker does with a run before it polls again. */
export type Handler = (w: SimWorker, a: Assignment) => Promise<void>;

export class WorkerApi {
  readonly origin: string;
  readonly agent: Agent;
  constructor(origin: string, tls: Tls) {
    this.origin = origin;
    this.agent = new Agent({
      // A ramp of thousands of handshakes queues behind each other on 2 cores.
      connect: { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true, timeout: 60_000 },
      connections: null,
      pipelining: 1,
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
      keepAliveTimeout: 120_000,
    });
  }

  async call<T>(path: string, body: unknown, opts: { signal?: AbortSignal; raw?: Buffer } = {}): Promise<{ status: number; json: T }> {
    const res = await this.agent.request({
      origin: this.origin, path, method: 'POST', signal: opts.signal,
      headers: { 'content-type': opts.raw ? 'application/octet-stream' : 'application/json' },
      body: opts.raw ?? JSON.stringify(body),
    } as Dispatcher.RequestOptions);
    const text = await res.body.text();
    let json: T;
    try { json = JSON.parse(text) as T; } catch { json = { raw: text } as T; }
    if (res.statusCode >= 400) throw new Error(`${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    return { status: res.statusCode, json };
  }

  /** Connected sockets, from undici's own per-origin stats. */
  connected(): number {
    const s = this.agent.stats[this.origin] as { connected?: number } | undefined;
    return s?.connected ?? 0;
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

export class SimWorker {
  readonly id: string;
  readonly api: WorkerApi;
  polling = false;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  constructor(id: string, api: WorkerApi) {
    this.id = id;
    this.api = api;
  }

  /** Poll, handle any assignment, poll again, until stopped. */
  start(handler: Handler, onAssign: (a: Assignment, at: number, w: SimWorker) => void, waitSeconds: number, onError: (e: unknown) => void): void {
    this.#stop = new AbortController();
    const signal = this.#stop.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        this.polling = true;
        let answer: { assignment: Assignment | null };
        try {
          ({ json: answer } = await this.api.call<{ assignment: Assignment | null }>(`/v1/worker/poll?wait=${waitSeconds}`, { workerId: this.id, accept: true, runId: null }, { signal }));
        } catch (e) {
          this.polling = false;
          if (signal.aborted) return;
          onError(e);
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        this.polling = false;
        if (answer.assignment) {
          onAssign(answer.assignment, performance.now(), this);
          try { await handler(this, answer.assignment); } catch (e) { onError(e); }
        }
      }
    })();
  }

  /** Stop polling; callable from inside a handler (does not wait for the loop). */
  halt(): void {
    this.#stop.abort();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }
}

/** The ordinary launcher: acknowledge, report success at once, poll again. */
export const finishAtOnce: Handler = async (w, a) => {
  const base = `/v1/worker/runs/${a.runId}/phases/${a.phase}`;
  await w.api.call(`${base}/start`, { workerId: w.id });
  await w.api.call(`${base}/result`, { workerId: w.id, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 0, workspaceUploaded: false });
};

/**
 * Register `n` workers with at most `concurrency` registrations in flight.
 * `onRegistered` runs for each at once (a real launcher polls right after it
 * registers; one that waited would outlive its lease and go OFFLINE).
 */
export async function registerWorkers(api: WorkerApi, n: number, concurrency: number, tag: string, onRegistered?: (w: SimWorker) => void): Promise<SimWorker[]> {
  const out: SimWorker[] = new Array(n);
  let next = 0;
  const one = async () => {
    for (let i = next++; i < n; i = next++) {
      const body = {
        workerId: null, metadata: { bench: tag, index: String(i) }, version: 'bench',
        host: { hostname: `sim-${i}`, os: 'linux', arch: 'x64', docker: 'none' },
      };
      // Like a launcher: a refused or reset connection during a storm of
      // handshakes is retried after a pause, a few times.
      let json: { workerId: string } | undefined;
      for (let attempt = 1; json === undefined; attempt++) {
        try {
          ({ json } = await api.call<{ workerId: string }>('/v1/worker/register', body));
        } catch (e) {
          if (attempt >= 5) throw e;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
      out[i] = new SimWorker(json.workerId, api);
      onRegistered?.(out[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, one));
  return out;
}
