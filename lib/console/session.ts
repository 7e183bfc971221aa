// Console sessions: the admin token is exchanged once for a random session id
// kept only in this process (a restart signs everyone out, which is the safe
// direction). The cookie carries the id; the server keeps its SHA-256, so a
// memory dump of the map cannot be replayed as a cookie. Each session has its
// own CSRF token that mutations must echo in a header.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'launcher_session';
/** A session ends this long after sign-in, whatever happens. */
export const SESSION_TTL_MS = 8 * 60 * 60 * 1000;
/** And sooner when nothing used it for this long. */
export const SESSION_IDLE_MS = 60 * 60 * 1000;
const MAX_SESSIONS = 1000;

export interface Session {
  csrf: string;
  createdAt: number;
  expiresAt: number;
  lastUsed: number;
}

const hash = (id: string): string => createHash('sha256').update(id).digest('hex');

export class Sessions {
  private readonly byHash = new Map<string, Session>();
  private readonly now: () => number;
  constructor(now: () => number = Date.now) { this.now = now; }

  /** A new session; returns the cookie value (only the caller ever sees it). */
  create(): { id: string; session: Session } {
    this.sweep();
    // Oldest first out: a flood of sign-ins cannot grow memory without bound.
    while (this.byHash.size >= MAX_SESSIONS) this.byHash.delete(this.byHash.keys().next().value as string);
    const id = randomBytes(32).toString('base64url');
    const t = this.now();
    const session: Session = { csrf: randomBytes(32).toString('base64url'), createdAt: t, expiresAt: t + SESSION_TTL_MS, lastUsed: t };
    this.byHash.set(hash(id), session);
    return { id, session };
  }

  /** The live session for a cookie value, refreshed; undefined when unknown or expired. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const key = hash(id);
    const s = this.byHash.get(key);
    if (!s) return undefined;
    const t = this.now();
    if (t >= s.expiresAt || t - s.lastUsed >= SESSION_IDLE_MS) {
      this.byHash.delete(key);
      return undefined;
    }
    s.lastUsed = t;
    return s;
  }

  delete(id: string | undefined): void {
    if (id) this.byHash.delete(hash(id));
  }

  /** Every session ends (the admin token was rotated, or the server stops). */
  clear(): void { this.byHash.clear(); }

  get size(): number { return this.byHash.size; }

  private sweep(): void {
    const t = this.now();
    for (const [k, s] of this.byHash) if (t >= s.expiresAt || t - s.lastUsed >= SESSION_IDLE_MS) this.byHash.delete(k);
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(presented: string | undefined, session: Session): boolean {
  if (typeof presented !== 'string') return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(session.csrf).digest();
  return timingSafeEqual(a, b);
}

/** The value of one cookie from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function sessionCookie(id: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; Secure; SameSite=Strict`;
}

export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
}
