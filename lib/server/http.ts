// The HTTP layer shared by the worker and admin APIs: a tiny router, JSON
// bodies with a size limit, and errors with stable codes. Handlers throw
// HttpError; the router turns it into {"error": {"code", "message"}}.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

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

export const badField = (name: string, expected: string): HttpError =>
  new HttpError(400, 'INVALID_FIELD', `Invalid field "${name}": expected ${expected}`);

/**
 * A whole number written plainly in decimal (a query or path parameter):
 * "0x0", "2.0", "1e0", " 1" and "+1" are refused, not read as numbers.
 */
export function decimal(text: string | null | undefined, name: string, max: number, expected: string): number {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(text)) throw badField(name, expected);
  const n = Number(text);
  if (n > max) throw badField(name, expected);
  return n;
}

/** Exit codes as processes have them: a 32-bit signed integer. */
export function isExitCode(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
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

/** Path patterns use `{name}` for one segment: `/v1/runs/{id}/logs`. */
export class Router {
  private routes: Route[] = [];
  add(method: string, pattern: string, handler: Handler): this {
    const keys: string[] = [];
    const src = pattern.replace(/\./g, '\\.').replace(/\{(\w+)\}/g, (_m, k: string) => {
      keys.push(k);
      return '([^/]+)';
    });
    this.routes.push({ method, pattern, re: new RegExp(`^${src}$`), keys, handler });
    return this;
  }
  /** The matching route, `405` when only the method differs, or undefined. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string>; pattern: string } | 'method' | undefined {
    let pathMatched = false;
    for (const r of this.routes) {
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

/** Reads the whole request body, refusing more than `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number, tooLarge: () => HttpError): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw tooLarge();
    chunks.push(c);
  }
  return Buffer.concat(chunks, size);
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

// Field readers: each names the field and what would be accepted.
export function str(body: Record<string, unknown>, name: string, opts: { optional?: boolean; max?: number; pattern?: RegExp; hint?: string } = {}): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw badField(name, opts.hint ?? 'a string');
  }
  if (typeof v !== 'string' || v.length > (opts.max ?? 1024 * 1024) || (opts.pattern && !opts.pattern.test(v))) throw badField(name, opts.hint ?? 'a string');
  return v;
}

export function bool(body: Record<string, unknown>, name: string, dflt: boolean): boolean {
  const v = body[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw badField(name, 'true or false');
  return v;
}

export function stringMap(body: Record<string, unknown>, name: string, keyPattern: RegExp, hint: string): Record<string, string> | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw badField(name, `an object of ${hint}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!keyPattern.test(k) || typeof val !== 'string') throw badField(`${name}.${k}`, `${hint}`);
    out[k] = val;
  }
  return out;
}
