// The admin API from the browser: the same endpoints `launcher admin` calls,
// authenticated by the session cookie, with the session's CSRF token on
// everything that changes something. Errors keep the server's stable code.
// Replies are typed with the wire types of lib/protocol.ts, imported as types
// only, so nothing of the server ends up in the page's bundle.
import type { ConsoleSession, ErrorBody } from '../../protocol.ts';

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

let csrf = '';
let maxWorkspace: number | undefined;
let onSignedOut: () => void = () => {};

/** Keeps what the session answer says: the CSRF token and the server's limits. */
export function setSession(s: ConsoleSession): void {
  csrf = s.csrf ?? '';
  maxWorkspace = s.maxWorkspaceBytes;
}
/** The server's --max-workspace-size, when it said. */
export const maxWorkspaceBytes = (): number | undefined => maxWorkspace;
export function whenSignedOut(fn: () => void): void { onSignedOut = fn; }

async function send<T>(method: string, path: string, body: BodyInit | undefined, contentType: string | undefined): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  if (contentType !== undefined) headers['content-type'] = contentType;
  const res = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  const text = await res.text();
  let data: unknown = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = (data as Partial<ErrorBody> | null)?.error;
    if (res.status === 401) onSignedOut();
    throw new ApiError(err?.code ?? `HTTP_${res.status}`, err?.message ?? `The server answered ${res.status}`, res.status);
  }
  // The server's answer for this path: the caller names its protocol type.
  return data as T;
}

export function api<T>(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  return body === undefined ? send<T>(method, path, undefined, undefined) : send<T>(method, path, JSON.stringify(body), 'application/json');
}

/** A raw body (a sealed workspace), as `launcher admin` streams it. */
export function postBytes<T>(path: string, body: Blob): Promise<T> {
  return send<T>('POST', path, body, 'application/octet-stream');
}

export const get = <T>(path: string): Promise<T> => api<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}): Promise<T> => api<T>('POST', path, body);

/** `?k=v&…` from the defined, non-empty values. */
export function qs(q: Record<string, string | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.append(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;
