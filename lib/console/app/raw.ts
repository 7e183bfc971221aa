// Admin API calls whose body or answer is not JSON (a sealed state file up,
// a backup archive down), with the session's CSRF token like api.ts sends.
import type { ConsoleSession, ErrorBody } from '../../protocol.ts';
import { ApiError } from './api.ts';

/** The session's CSRF token, asked afresh (a change needs it in X-CSRF-Token). */
export async function csrfToken(): Promise<string> {
  const s = await (await fetch('/console/session', { credentials: 'same-origin', cache: 'no-store' })).json() as ConsoleSession;
  return s.csrf ?? '';
}

/** Sends `body` as application/octet-stream; the answer as a Response, or the server's error as an ApiError. */
export async function sendRaw(method: string, path: string, body?: Uint8Array): Promise<Response> {
  const headers: Record<string, string> = { 'x-csrf-token': await csrfToken() };
  if (body) headers['content-type'] = 'application/octet-stream';
  const res = await fetch(path, { method, headers, body: body as Uint8Array<ArrayBuffer> | undefined, credentials: 'same-origin', cache: 'no-store' });
  if (!res.ok) {
    const answer = await res.json().catch(() => null) as Partial<ErrorBody> | null;
    throw new ApiError(answer?.error?.code ?? `HTTP_${res.status}`, answer?.error?.message ?? `The server answered ${res.status}`, res.status);
  }
  return res;
}
