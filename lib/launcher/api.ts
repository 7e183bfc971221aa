// The worker-API client: the launcher's side of docs/protocol.md. Mutual TLS
// with the pool certificate and private key as the client identity, and the
// server pinned to the CA in the token (system CAs are not consulted: a
// launcher trusts exactly the server that issued its pool).
//
// Errors say whether trying again can help: a refused certificate (401/403:
// the pool was reset or deleted) is permanent and ends the launcher with exit
// code 3; an unreachable server or a 5xx is transient and retried with backoff.
import type { KeyObject } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { LauncherError } from '../errors.ts';
import { requestBody } from '../request-body.ts';
import { SERVER_UNTRUSTED, connectionErrorCode, isTrustFailure } from '../tls-trust.ts';
import { EXIT_REFUSED } from './exit-codes.ts';
import type { CommitReport, LogAck, PhaseReport, StateAck, PhaseStatus, PollReply, PollRequest, RegisterRequest, Registration } from '../protocol.ts';


export class ServerError extends LauncherError {
  readonly status: number | undefined;
  /** Retrying cannot help: the server refused this pool's certificate. */
  readonly permanent: boolean;
  /** Retrying may help: network failure, timeout, 5xx, 429. */
  readonly transient: boolean;
  /** The server's nextSeq for LOG_SEQ_GAP answers. */
  readonly nextSeq: number | undefined;
  constructor(code: string, message: string, opts: { status?: number; permanent?: boolean; transient?: boolean; nextSeq?: number; cause?: unknown }) {
    super(code, message, { exitCode: opts.permanent ? EXIT_REFUSED : 1, cause: opts.cause });
    this.name = 'ServerError';
    this.status = opts.status;
    this.permanent = opts.permanent ?? false;
    this.transient = opts.transient ?? false;
    this.nextSeq = opts.nextSeq;
  }
}

export function isTransient(e: unknown): boolean {
  return e instanceof ServerError && e.transient;
}
export function isPermanent(e: unknown): boolean {
  return e instanceof ServerError && e.permanent;
}

export interface WorkerApiOptions {
  serverUrl: string;
  /** Pool certificate, PEM (from the token). */
  certificate: string;
  /** Server CA, PEM (from the token): the only CA trusted. */
  caCertificate: string;
  privateKey: KeyObject;
  /** Called after every answer from the server (any status): "last contact". */
  onContact?: () => void;
}

interface CallOptions {
  json?: unknown;
  body?: Readable | Uint8Array;
  signal?: AbortSignal;
  okStatuses?: number[];
  timeoutMs?: number;
}

const REFUSED_HINT = 'the pool was reset or deleted, or this token is for another server; get a new token (and the matching key) from the pool admin and restart the launcher with it';

export class WorkerApi {
  readonly serverUrl: string;
  readonly #agent: Agent;
  readonly #origin: string;
  readonly #onContact: () => void;

  constructor(opts: WorkerApiOptions) {
    const url = new URL(opts.serverUrl);
    this.serverUrl = opts.serverUrl;
    this.#origin = url.origin;
    this.#onContact = opts.onContact ?? (() => {});
    this.#agent = new Agent({
      connect: {
        ca: opts.caCertificate,
        cert: opts.certificate,
        // node:tls takes PEM, not a KeyObject; the PEM lives only in this process.
        key: opts.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        minVersion: 'TLSv1.2',
      },
      keepAliveTimeout: 30_000,
      // Long-polls and workspace streams set their own bounds through signals.
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: 10_000,
    });
  }

  async close(): Promise<void> {
    await this.#agent.close().catch(() => {});
  }

  async destroy(): Promise<void> {
    await this.#agent.destroy().catch(() => {});
  }

  async #call(what: string, method: Dispatcher.HttpMethod, path: string, opts: CallOptions = {}): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {};
    const { body, contentType } = requestBody(opts);
    if (contentType) headers['content-type'] = contentType;
    const signals = [opts.signal, opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined].filter((s): s is AbortSignal => s !== undefined);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.#origin + path, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        dispatcher: this.#agent,
        ...(signals.length > 0 ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
      });
    } catch (e) {
      throw this.#transportError(what, e, opts.signal);
    }
    this.#onContact();
    if (res.statusCode < 400 || (opts.okStatuses ?? []).includes(res.statusCode)) return res;
    const text = await res.body.text().catch(() => '');
    let code = `HTTP_${res.statusCode}`;
    let message = text.slice(0, 300);
    let nextSeq: number | undefined;
    try {
      const j = JSON.parse(text) as { error?: { code?: string; message?: string }; nextSeq?: number };
      code = j.error?.code ?? code;
      message = j.error?.message ?? message;
      nextSeq = typeof j.nextSeq === 'number' ? j.nextSeq : undefined;
    } catch { /* not JSON: a proxy's page */ }
    const s = res.statusCode;
    if (s === 401 || s === 403) {
      throw new ServerError('SERVER_REFUSED', `The server refused this pool's certificate (${s} ${code}): ${REFUSED_HINT}`, { status: s, permanent: true });
    }
    const transient = s === 408 || s === 429 || s >= 500;
    throw new ServerError(code, `Server ${what} failed: ${s} ${message || code}`, { status: s, transient, ...(nextSeq !== undefined ? { nextSeq } : {}) });
  }

  #transportError(what: string, e: unknown, signal?: AbortSignal): ServerError {
    const err = e as { name?: string; message?: string };
    const code = connectionErrorCode(e);
    if (signal?.aborted) return new ServerError('SERVER_ABORTED', `Server ${what} was aborted`, { cause: e });
    if (isTrustFailure(code)) {
      return new ServerError(SERVER_UNTRUSTED, `Cannot trust the server at ${this.#origin} (${code}): its certificate is not from the CA in SPACELIFT_TOKEN; check the token is for this server`, { transient: true, cause: e });
    }
    if (err?.name === 'TimeoutError' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new ServerError('SERVER_TIMEOUT', `Server ${what} timed out at ${this.#origin}`, { transient: true, cause: e });
    }
    return new ServerError('SERVER_UNREACHABLE', `Cannot reach the server at ${this.#origin} for ${what}: ${code || err?.message || String(e)}`, { transient: true, cause: e });
  }

  async #json<T>(what: string, method: Dispatcher.HttpMethod, path: string, opts: CallOptions = {}): Promise<T> {
    const res = await this.#call(what, method, path, opts);
    const text = await res.body.text();
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  register(req: RegisterRequest, signal?: AbortSignal): Promise<Registration> {
    return this.#json('register', 'POST', '/v1/worker/register', { json: req, timeoutMs: 30_000, ...(signal ? { signal } : {}) });
  }

  /** The long-poll (also the heartbeat); bounded a little past `waitSeconds`. */
  async poll(req: PollRequest, waitSeconds: number, signal?: AbortSignal): Promise<PollReply> {
    const a = await this.#json<Partial<PollReply>>('poll', 'POST', `/v1/worker/poll?wait=${waitSeconds}`, {
      json: req, timeoutMs: (waitSeconds + 15) * 1000, ...(signal ? { signal } : {}),
    });
    return {
      assignment: a.assignment ?? null,
      control: { drain: a.control?.drain === true, cycle: a.control?.cycle === true, cancel: a.control?.cancel ?? [] },
    };
  }

  async start(runId: string, phase: number, workerId: string): Promise<void> {
    await this.#json('phase start', 'POST', `/v1/worker/runs/${enc(runId)}/phases/${phase}/start`, { json: { workerId }, timeoutMs: 30_000 });
  }

  /** Tells the server which commit this run's files come from. */
  async commit(runId: string, phase: number, c: CommitReport): Promise<void> {
    await this.#json('commit report', 'POST', `/v1/worker/runs/${enc(runId)}/phases/${phase}/commit`, { json: c, timeoutMs: 30_000 });
  }

  phaseState(runId: string, phase: number): Promise<PhaseStatus> {
    return this.#json('phase state', 'GET', `/v1/worker/runs/${enc(runId)}/phases/${phase}`, { timeoutMs: 30_000 });
  }

  /**
   * Stores one log chunk; resolves with the server's nextSeq, and `stop` once
   * the run's logs reached the server's cap (--max-run-log): sending more is wasted.
   */
  async uploadLogs(runId: string, phase: number, seq: number, bytes: Uint8Array): Promise<{ nextSeq: number; stop: boolean }> {
    const r = await this.#json<LogAck>('log upload', 'POST', `/v1/worker/runs/${enc(runId)}/phases/${phase}/logs?seq=${seq}`, { body: bytes, timeoutMs: 60_000 });
    return { nextSeq: r.nextSeq, stop: r.truncated === true };
  }

  /** The sealed workspace as a stream, or null when the run has none. */
  async downloadWorkspace(runId: string, signal?: AbortSignal): Promise<Readable | null> {
    const res = await this.#call('workspace download', 'GET', `/v1/worker/runs/${enc(runId)}/workspace`, { okStatuses: [404], ...(signal ? { signal } : {}) });
    if (res.statusCode === 404) {
      await res.body.dump();
      return null;
    }
    return res.body;
  }

  async uploadWorkspace(runId: string, phase: number, sealed: Readable, signal?: AbortSignal): Promise<void> {
    const res = await this.#call('workspace upload', 'PUT', `/v1/worker/runs/${enc(runId)}/phases/${phase}/workspace`, { body: sealed, ...(signal ? { signal } : {}) });
    await res.body.dump();
  }

  /** One sealed state version of the run's stack (the one its assignment named). */
  async downloadState(runId: string, version: number, signal?: AbortSignal): Promise<Readable> {
    const res = await this.#call('state download', 'GET', `/v1/worker/runs/${enc(runId)}/state/${version}`, { ...(signal ? { signal } : {}) });
    return res.body;
  }

  /** Uploads a step's new sealed state, naming the version it started from; resolves with the new version. */
  async uploadState(runId: string, phase: number, sealed: Readable, meta: { base: number | null; serial: number | null; lineage: string | null }, signal?: AbortSignal): Promise<number> {
    const q = new URLSearchParams({ base: meta.base === null ? 'none' : String(meta.base) });
    if (meta.serial !== null) q.set('serial', String(meta.serial));
    if (meta.lineage !== null) q.set('lineage', meta.lineage);
    const r = await this.#json<StateAck>('state upload', 'PUT', `/v1/worker/runs/${enc(runId)}/phases/${phase}/state?${q}`, { body: sealed, ...(signal ? { signal } : {}) });
    return r.version;
  }

  async result(runId: string, phase: number, report: PhaseReport): Promise<void> {
    await this.#json('phase result', 'POST', `/v1/worker/runs/${enc(runId)}/phases/${phase}/result`, { json: report, timeoutMs: 30_000 });
  }

  async deregister(workerId: string): Promise<void> {
    await this.#json('deregister', 'POST', '/v1/worker/deregister', { json: { workerId }, timeoutMs: 10_000 });
  }
}

const enc = encodeURIComponent;
