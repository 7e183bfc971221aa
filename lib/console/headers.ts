// Response headers that make the console safe to open: no script but our own
// file (no inline script, no eval), no framing, no sniffing, no referrer.
import type { ServerResponse } from 'node:http';

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** For answers that are not console pages (JSON, logs, files): nothing may run or frame them. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

/** Set on every answer of the server, before any handler runs. */
export function setBaseHeaders(res: ServerResponse): void {
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('content-security-policy', API_CSP);
  res.setHeader('cross-origin-resource-policy', 'same-origin');
}
