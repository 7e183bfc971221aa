// The console's own HTTP surface on the server's listener: the page shell at
// `/` and its client-side routes, the bundled files under /console/, and the
// session endpoints (sign in with the admin token, who am I, sign out). Data
// comes from the admin API (/v1/…) like `launcher admin`; see app.ts for how
// a session cookie is accepted there.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { str } from '../server/fields.ts';
import { HttpError, readJson, sendJson, tokenMatches } from '../server/http.ts';
import type { ConsoleAssets, Asset } from './assets.ts';
import type { ConsoleSession } from '../protocol.ts';
import { CONSOLE_CSP } from './headers.ts';
import { type SignInThrottle, clientKey } from './throttle.ts';
import { SESSION_COOKIE, SESSION_TTL_MS, type Session, type Sessions, clearedCookie, cookieValue, csrfMatches, sessionCookie } from './session.ts';

/** First path segments the console's router owns (besides `/`). */
const PAGES = new Set(['signin', 'pools', 'workers', 'stacks', 'modules', 'runs', 'audit', 'backup', 'retention']);

export interface ConsoleDeps {
  assets: ConsoleAssets;
  sessions: Sessions;
  /** Wrong admin tokens per client address (see throttle.ts). */
  throttle: SignInThrottle;
  adminHash: Buffer;
  /** --max-workspace-size, told to a signed-in page. */
  maxWorkspaceBytes: number;
  /** Writes one audit line like the admin API's (sign-in and sign-out are recorded too). */
  audit(req: IncomingMessage, status: number, action: string): void;
  warn(msg: string, fields: Record<string, string | number | null>): void;
}

export function isConsolePath(path: string): boolean {
  if (path === '/' || path === '/console/session' || path.startsWith('/console/')) return true;
  return PAGES.has(path.split('/')[1] ?? '');
}

export function sessionOf(req: IncomingMessage, sessions: Sessions): Session | undefined {
  return sessions.get(cookieValue(req.headers.cookie, SESSION_COOKIE));
}

/**
 * A state-changing request carried by a session cookie must come from our own
 * page: same origin (when the browser says where it comes from) and the
 * session's CSRF token in X-CSRF-Token. Throws 403 otherwise.
 */
export function checkSameOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') {
    throw new HttpError(403, 'CROSS_SITE_REFUSED', `Refused: a ${site} request cannot act with a console session`);
  }
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== `https://${req.headers.host ?? ''}`) {
    throw new HttpError(403, 'CROSS_SITE_REFUSED', `Refused: requests from ${origin.slice(0, 100)} cannot act with a console session`);
  }
}

export function checkCsrf(req: IncomingMessage, session: Session): void {
  checkSameOrigin(req);
  const sent = req.headers['x-csrf-token'];
  if (typeof sent !== 'string' || sent === '') throw new HttpError(403, 'CSRF_TOKEN_MISSING', 'Refused: a console request that changes something must send the session\'s X-CSRF-Token header');
  if (!csrfMatches(sent, session)) throw new HttpError(403, 'CSRF_TOKEN_INVALID', 'Refused: the X-CSRF-Token header does not match this session (sign in again)');
}

function shell(a: ConsoleAssets): string {
  return '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<title>launcher console</title>' +
    `<link rel="icon" href="${a.icon.path}" type="image/svg+xml">` +
    `<link rel="stylesheet" href="${a.css.path}">` +
    `<script type="module" src="${a.js.path}"></script>` +
    '</head><body><div id="app"><noscript>The launcher console needs JavaScript. Everything it does is also available with <code>launcher admin</code>.</noscript></div></body></html>';
}

function sendAsset(req: IncomingMessage, res: ServerResponse, a: Asset): void {
  const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gz ? a.gzip : a.body;
  res.writeHead(200, {
    'content-type': a.type,
    'content-length': body.length,
    // Named by content hash: a new build is a new name.
    'cache-control': 'public, max-age=31536000, immutable',
    vary: 'accept-encoding',
    etag: `"${a.sha256.slice(0, 32)}"`,
    ...(gz ? { 'content-encoding': 'gzip' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Handles a console path (see isConsolePath). */
export async function handleConsole(d: ConsoleDeps, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const method = req.method ?? 'GET';
  if (path === '/console/session') return sessionEndpoint(d, req, res, method);
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Method not allowed: ${method} ${path}`);
  if (path.startsWith('/console/')) {
    const a = [d.assets.js, d.assets.css, d.assets.icon].find((x) => x.path === path);
    if (!a) throw new HttpError(404, 'NOT_FOUND', `Not found: ${path}`);
    return sendAsset(req, res, a);
  }
  // A page without a session goes to the sign-in page (which holds no data);
  // the page it asked for comes back after sign-in.
  if (path !== '/signin' && !sessionOf(req, d.sessions)) {
    const url = new URL(req.url ?? '/', 'https://server.invalid');
    const next = url.pathname + url.search;
    res.writeHead(303, { location: `/signin${next === '/' ? '' : `?next=${encodeURIComponent(next)}`}`, 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
    return;
  }
  const html = Buffer.from(shell(d.assets));
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': html.length,
    'content-security-policy': CONSOLE_CSP,
    'cache-control': 'no-store',
  });
  res.end(method === 'HEAD' ? undefined : html);
}

/** 429 with Retry-After for a client that must wait; audited like any refused sign-in. */
function tooMany(d: ConsoleDeps, req: IncomingMessage, res: ServerResponse, waitMs: number): HttpError {
  const seconds = Math.ceil(waitMs / 1000);
  res.setHeader('retry-after', String(seconds));
  d.audit(req, 429, 'POST /console/session');
  return new HttpError(429, 'TOO_MANY_SIGN_INS', `Sign-in refused for now: too many wrong admin tokens from your address; try again in ${seconds} s (the token is not checked until then)`, { retryAfterSeconds: seconds });
}

async function sessionEndpoint(d: ConsoleDeps, req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
  const sid = cookieValue(req.headers.cookie, SESSION_COOKIE);
  if (method === 'GET' || method === 'HEAD') {
    // 200 either way: the page asks this on every load and an error status
    // would only fill the browser console.
    const s = d.sessions.get(sid);
    const answer: ConsoleSession = s
      ? { signedIn: true, csrf: s.csrf, expiresAt: new Date(s.expiresAt).toISOString(), maxWorkspaceBytes: d.maxWorkspaceBytes }
      : { signedIn: false };
    sendJson(res, 200, answer);
    return;
  }
  if (method === 'POST') {
    checkSameOrigin(req);
    const client = clientKey(req.socket.remoteAddress);
    // Checked before the token is even read: a waiting client learns nothing.
    const wait = d.throttle.waitMs(client);
    if (wait > 0) throw tooMany(d, req, res, wait);
    const body = await readJson(req);
    const token = str(body, 'token', { max: 256, hint: 'the admin token (DATA/admin.token)' })!.trim();
    if (!tokenMatches(token, d.adminHash)) {
      const next = d.throttle.failed(client);
      const seconds = Math.ceil(next / 1000);
      d.warn('Console sign-in refused', { remote: req.socket.remoteAddress ?? null, waitMs: next });
      d.audit(req, 401, 'POST /console/session');
      if (next > 0) res.setHeader('retry-after', String(seconds));
      throw new HttpError(401, 'ADMIN_TOKEN_INVALID', 'Sign-in refused: that is not this server\'s admin token (it is in DATA/admin.token)' +
        (next > 0 ? `; too many wrong tokens from your address: the next try is checked in ${seconds} s` : ''),
        next > 0 ? { retryAfterSeconds: seconds } : undefined);
    }
    d.throttle.succeeded(client);
    d.sessions.delete(sid);
    const { id, session } = d.sessions.create();
    res.setHeader('set-cookie', sessionCookie(id, Math.floor(SESSION_TTL_MS / 1000)));
    d.audit(req, 201, 'POST /console/session');
    const answer: ConsoleSession = { signedIn: true, csrf: session.csrf, expiresAt: new Date(session.expiresAt).toISOString(), maxWorkspaceBytes: d.maxWorkspaceBytes };
    sendJson(res, 201, answer);
    return;
  }
  if (method === 'DELETE') {
    const s = d.sessions.get(sid);
    if (s) checkCsrf(req, s);
    d.sessions.delete(sid);
    res.setHeader('set-cookie', clearedCookie());
    if (s) d.audit(req, 200, 'DELETE /console/session');
    sendJson(res, 200, { signedIn: false } satisfies ConsoleSession);
    return;
  }
  throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Method not allowed: ${method} /console/session`);
}
