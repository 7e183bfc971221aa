// The pool token: one line of standard base64 over a small JSON document that
// tells a launcher where the server is, which pool it belongs to, its pool
// certificate, and the server's CA (so launchers pin the server without a
// public CA). Decoding is strict and every fault is a TOKEN_INVALID that
// names the variable and the problem, never the value.
import { X509Certificate } from 'node:crypto';
import { LauncherError } from './errors.ts';
import { decodeBase64Strict } from './keys.ts';

export const TOKEN_FORMAT_VERSION = 1;

export interface PoolToken {
  version: 1;
  serverUrl: string;
  poolId: string;
  /** Pool certificate, PEM. */
  certificate: string;
  /** The server's CA certificate, PEM. */
  caCertificate: string;
}

/** Upper bound on a token we read (two certificates are a few KiB). */
const MAX_TOKEN_CHARS = 256 * 1024;
const FIELDS = ['serverUrl', 'poolId', 'certificate', 'caCertificate'] as const;

export function encodeToken(t: Omit<PoolToken, 'version'>): string {
  const doc: PoolToken = {
    version: TOKEN_FORMAT_VERSION,
    serverUrl: t.serverUrl,
    poolId: t.poolId,
    certificate: t.certificate,
    caCertificate: t.caCertificate,
  };
  return Buffer.from(JSON.stringify(doc), 'utf8').toString('base64');
}

function tokenError(source: string, problem: string): LauncherError {
  return new LauncherError('TOKEN_INVALID', `Cannot read ${source}: ${problem}; expected the token the server printed for the pool (one line of base64)`, { exitCode: 2 });
}

export function decodeToken(value: string, source: string = 'SPACELIFT_TOKEN'): PoolToken {
  if (typeof value !== 'string' || value.trim() === '') throw tokenError(source, 'it is empty');
  if (value.length > MAX_TOKEN_CHARS) throw tokenError(source, `it is longer than ${MAX_TOKEN_CHARS / 1024} KiB`);
  // Tolerate surrounding whitespace and line wrapping from copy and paste.
  const compact = value.replace(/\s+/g, '');
  const bytes = decodeBase64Strict(compact);
  if (bytes === null) {
    const hint = /[-_]/.test(compact) ? ' (it has URL-safe base64 characters "-" or "_")' : '';
    throw tokenError(source, `it is not valid base64${hint}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw tokenError(source, 'it is base64 but not of UTF-8 text');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw tokenError(source, 'it is base64 but not of JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw tokenError(source, 'its JSON is not an object');
  const o = doc as Record<string, unknown>;
  if (!('version' in o)) throw tokenError(source, 'the field "version" is missing');
  if (o.version !== TOKEN_FORMAT_VERSION) {
    if (typeof o.version === 'number' && Number.isInteger(o.version) && o.version > TOKEN_FORMAT_VERSION) {
      throw tokenError(source, `its format version ${o.version} is newer than this launcher understands (${TOKEN_FORMAT_VERSION}): upgrade the launcher`);
    }
    throw tokenError(source, `its format version is not ${TOKEN_FORMAT_VERSION}`);
  }
  for (const f of FIELDS) {
    if (!(f in o)) throw tokenError(source, `the field "${f}" is missing`);
    if (typeof o[f] !== 'string' || (o[f] as string).trim() === '') throw tokenError(source, `the field "${f}" is not a non-empty string`);
  }
  const t = o as unknown as PoolToken;
  let url: URL;
  try {
    url = new URL(t.serverUrl);
  } catch {
    throw tokenError(source, 'the field "serverUrl" is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw tokenError(source, 'the field "serverUrl" is not an http(s) URL');
  for (const f of ['certificate', 'caCertificate'] as const) {
    try {
      new X509Certificate(t[f]);
    } catch {
      throw tokenError(source, `the field "${f}" is not a PEM certificate`);
    }
  }
  return { version: 1, serverUrl: t.serverUrl, poolId: t.poolId, certificate: t.certificate, caCertificate: t.caCertificate };
}
