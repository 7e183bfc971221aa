// The HTTP layer shared by the worker and admin APIs: a tiny router, JSON
// bodies with a size limit, and errors with stable codes. The domain throws
// Refusal (refusal.ts), the HTTP edge itself HttpError; both become
// {"error": {"code", "message"}} with the status chosen here.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Refusal, type RefusalKind } from './refusal.ts';

export const JSON_BODY_LIMIT = 1024 * 1024;

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  /** Extra top-level fields of the error body (e.g. nextSeq). */
  readonly extra: Record<string, unknown> | undefined;
  constructor(status: number, code: string, message: string, extra?: Record<string, unknown>) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
}

const STATUS: Record<RefusalKind, number> = {
  invalid: 400, unauthenticated: 401, forbidden: 403, 'not-found': 404, conflict: 409, 'too-large': 413, busy: 429, broken: 500, full: 507,
};

/** The HTTP answer for an error a handler threw: a Refusal by its kind, an HttpError as is; undefined for anything else (a bug: 500). */
export function httpErrorOf(e: unknown): HttpError | undefined {
  if (e instanceof HttpError) return e;
  if (e instanceof Refusal) return new HttpError(STATUS[e.kind], e.code, e.message, e.extra);
  return undefined;
}

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  path: string;
  /** The matched route pattern, e.g. `/v1/runs/{run}/cancel`. */
  route?: string;
  /** Set for /v1/worker/*: the pool (and key) of the client certificate. */
  worker?: { poolId: string; keyId: string };
  /** The client's address, read when the request arrived (the socket may be gone later). */
  remote?: string | null;
  /** Extra fields for this request's audit line (ids, never secrets). */
  audit?: Record<string, string | number | boolean | null | undefined>;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

interface Route { method: string; pattern: string; re: RegExp; keys: string[]; handler: Handler }

/** How many `/` a path has: a pattern matches only paths with as many as it has. */
function depth(path: string): number {
  let n = 0;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) n++;
  return n;
}

/** Path patterns use `{name}` for one segment: `/v1/runs/{id}/logs`. */
export class Router {
  // By depth, each list in the order the routes were added: a parameter
  // never spans a `/`, so only the routes of the path's own depth can match,
  // and the first match wins as before. Every request is matched, and the
  // admin API has dozens of routes.
  private byDepth = new Map<number, Route[]>();
  add(method: string, pattern: string, handler: Handler): this {
    const keys: string[] = [];
    const src = pattern.replace(/\./g, '\\.').replace(/\{(\w+)\}/g, (_m, k: string) => {
      keys.push(k);
      return '([^/]+)';
    });
    const d = depth(pattern);
    let list = this.byDepth.get(d);
    if (!list) { list = []; this.byDepth.set(d, list); }
    list.push({ method, pattern, re: new RegExp(`^${src}$`), keys, handler });
    return this;
  }
  /** The matching route, `405` when only the method differs, or undefined. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string>; pattern: string } | 'method' | undefined {
    let pathMatched = false;
    for (const r of this.byDepth.get(depth(path)) ?? []) {
      const m = r.re.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) continue;
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => {
        try { params[k] = decodeURIComponent(m[i + 1]!); } catch { params[k] = m[i + 1]!; }
      });
      return { handler: r.handler, params, pattern: r.pattern };
    }
    return pathMatched ? 'method' : undefined;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, { error: { code: e.code, message: e.message }, ...e.extra });
}

/**
 * Reads the whole request body, refusing more than `limit` bytes. With
 * listeners rather than `for await`: every request body is read here, and
 * the stream's async iterator costs more than the small bodies it carries.
 * The outcomes are the iterator's: past the limit the refusal is thrown and
 * the rest of the body left to the caller (app.ts drains it while the 413
 * goes out); a client that goes away mid-body is an "aborted" ECONNRESET
 * (see clientWentAway in app.ts).
 */
export function readBody(req: IncomingMessage, limit: number, tooLarge: () => HttpError): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  const gone = (): Error => Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (req.destroyed) return Promise.reject(gone());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (e?: unknown): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (e === undefined) resolve(Buffer.concat(chunks, size));
      else reject(e);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        settle(tooLarge());
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => settle();
    const onError = (e: Error): void => settle(e);
    const onClose = (): void => settle(gone());
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** A JSON object body (an empty body reads as `{}`). */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '');
  const buf = await readBody(req, JSON_BODY_LIMIT, () => new HttpError(413, 'BODY_TOO_LARGE', `Request body too large: the limit for JSON is ${JSON_BODY_LIMIT} bytes`));
  if (buf.length === 0) return {};
  if (type !== '' && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `Unsupported content type: "${type}" (expected application/json)`);
  }
  let v: unknown;
  try { v = JSON.parse(buf.toString('utf8')); } catch {
    throw new HttpError(400, 'INVALID_JSON', 'Invalid JSON body: expected a JSON object');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'INVALID_JSON', 'Invalid JSON body: expected a JSON object');
  return v as Record<string, unknown>;
}

export const sha256 = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/**
 * Compares a presented bearer token with the stored SHA-256 hash in constant
 * time: hashing first makes both sides the same length whatever was sent.
 */
export function tokenMatches(presented: string, storedHash: Buffer): boolean {
  return timingSafeEqual(sha256(presented), storedHash);
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : undefined;
}
