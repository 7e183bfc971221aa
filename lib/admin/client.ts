// The admin API client: HTTPS with undici, the server's CA pinned from a file
// (the server issues its own certificate, so no public CA is involved) and the
// admin token as a bearer. Every non-2xx answer becomes an AdminError carrying
// the server's stable error code, so commands and scripts match on meaning.
import { Agent, request, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import { LauncherError } from '../errors.ts';
import { requestBody } from '../request-body.ts';
import { SERVER_UNTRUSTED, connectionErrorCode, isTrustFailure } from '../tls-trust.ts';

export interface Connection {
  /** Base URL of the server, e.g. https://127.0.0.1:8443 */
  server: URL;
  token: string;
  /** PEM of the server's CA; undefined trusts the system store. */
  ca: string | undefined;
}

const ADMIN_MARK = Symbol.for('launcher.admin-error');

/** The server refused a request: `code` is the server's stable error code. */
export class AdminError extends LauncherError {
  readonly status: number;
  /** The whole error body, for --json output and extra fields like nextSeq. */
  readonly body: unknown;
  constructor(code: string, message: string, status: number, body: unknown) {
    super(code, message, { exitCode: 1 });
    this.name = 'AdminError';
    this.status = status;
    this.body = body;
    (this as unknown as Record<symbol, boolean>)[ADMIN_MARK] = true;
  }
  // LauncherError's marker check would match every LauncherError; this one only ours.
  static [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[ADMIN_MARK] === true;
  }
}

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;

export interface RequestOptions {
  query?: Query;
  /** JSON body; mutually exclusive with `body`. */
  json?: unknown;
  /** A streamed body (sealed workspace), sent as application/octet-stream. */
  body?: Readable;
  signal?: AbortSignal;
  /** 0 disables the body timeout (log follow). */
  bodyTimeout?: number;
}

// Ordinary admin calls answer at once; a long wait means something is wrong.
const HEADERS_TIMEOUT_MS = 60_000;

export function buildUrl(base: URL, path: string, query: Query = {}): URL {
  const url = new URL(base.href.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === false) continue;
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, item === true ? '1' : String(item));
  }
  return url;
}

/** Turn an error body (`{"error": {"code", "message"}}`) into an AdminError. */
export function errorFromResponse(status: number, text: string): AdminError {
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: a proxy or a crash page; keep the text short in the message
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (err && typeof err.code === 'string') {
    const message = typeof err.message === 'string' && err.message !== '' ? err.message : `The server answered ${status}`;
    return new AdminError(err.code, message, status, body);
  }
  const snippet = text.trim().slice(0, 200);
  return new AdminError(`HTTP_${status}`, `The server answered ${status}${snippet ? `: ${snippet}` : ''}`, status, body);
}

/** A failure before any HTTP answer: refused connection, untrusted certificate. */
export function transportError(server: URL, e: unknown): LauncherError {
  if (e instanceof LauncherError) return e;
  const cause = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = connectionErrorCode(e);
  const detail = cause?.cause?.message ?? cause?.message ?? String(e);
  if (isTrustFailure(code)) {
    return new LauncherError(SERVER_UNTRUSTED,
      `Cannot trust the server at ${server.origin}: ${detail}; pass its CA certificate with --ca FILE (or LAUNCHER_CA), or use --data DIR on the server host`,
      { cause: e });
  }
  if (cause && (e as Error).name === 'AbortError') return new LauncherError('ABORTED', 'Interrupted', { cause: e });
  return new LauncherError('SERVER_UNREACHABLE', `Cannot reach the server at ${server.origin}: ${detail}`, { cause: e });
}

export class AdminClient {
  readonly connection: Connection;
  readonly #agent: Dispatcher;
  readonly #ownAgent: boolean;

  constructor(connection: Connection, opts: { dispatcher?: Dispatcher } = {}) {
    this.connection = connection;
    this.#ownAgent = opts.dispatcher === undefined;
    this.#agent = opts.dispatcher ?? new Agent({
      connect: connection.ca === undefined ? {} : { ca: connection.ca },
      headersTimeout: HEADERS_TIMEOUT_MS,
    });
  }

  async #send(method: Dispatcher.HttpMethod, path: string, opts: RequestOptions): Promise<Dispatcher.ResponseData> {
    const url = buildUrl(this.connection.server, path, opts.query);
    const headers: Record<string, string> = { authorization: `Bearer ${this.connection.token}`, accept: 'application/json' };
    const { body, contentType } = requestBody(opts);
    if (contentType) headers['content-type'] = contentType;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method, headers, body, dispatcher: this.#agent, signal: opts.signal,
        ...(opts.bodyTimeout === undefined ? {} : { bodyTimeout: opts.bodyTimeout }),
      });
    } catch (e) {
      throw transportError(this.connection.server, e);
    }
    if (res.statusCode >= 400) throw errorFromResponse(res.statusCode, await res.body.text());
    return res;
  }

  /** A JSON call; resolves to the parsed answer (`{}` for an empty body). */
  async call<T>(method: Dispatcher.HttpMethod, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.#send(method, path, opts);
    const text = await res.body.text();
    if (text.trim() === '') return {} as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new LauncherError('BAD_ANSWER', `The server's answer to ${method} ${path} is not JSON`, { cause: e });
    }
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.call<T>('GET', path, { query });
  }

  post<T>(path: string, json: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, { json });
  }

  /** A streamed answer (logs, workspace, backup): the caller consumes the body. */
  async stream(path: string, opts: RequestOptions = {}, method: Dispatcher.HttpMethod = 'GET'): Promise<Readable> {
    const res = await this.#send(method, path, opts);
    return res.body;
  }

  async close(): Promise<void> {
    if (this.#ownAgent) await this.#agent.close();
  }
}

/** Path segment escaping for ids that come from the command line. */
export function seg(id: string): string {
  return encodeURIComponent(id);
}
