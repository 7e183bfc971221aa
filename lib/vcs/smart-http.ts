// The client side of Git's smart HTTP protocol (v0/v1, stateless), for one
// purpose: the pack of exactly one commit at depth 1. Two requests:
//   GET  URL/info/refs?service=git-upload-pack   the refs (to resolve a branch)
//   POST URL/git-upload-pack                      want SHA, deepen 1, done
// and the answer's pack is taken out of side-band-64k frames into one Buffer.
// https://git-scm.com/docs/http-protocol, https://git-scm.com/docs/pack-protocol
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';

export class SmartHttpError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number) {
    super(message);
    this.name = 'SmartHttpError';
    this.code = code;
    this.status = status;
  }
}

export interface SmartHttpOptions {
  /** Sent on both requests (basic auth for the repository credential). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  dispatcher?: Dispatcher;
}

const AGENT = 'git/launcher';

/** A pkt-line: four hex digits of length (itself included), then the payload. */
export function pktLine(payload: string | Buffer): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0'), 'latin1'), body]);
}
export const FLUSH = Buffer.from('0000', 'latin1');

/** Splits a whole buffer of pkt-lines; `null` stands for a flush-pkt. */
export function parsePktLines(buf: Buffer): Array<Buffer | null> {
  const out: Array<Buffer | null> = [];
  let i = 0;
  while (i < buf.length) {
    const len = Number.parseInt(buf.toString('latin1', i, i + 4), 16);
    if (!Number.isInteger(len) || (len > 0 && len < 4) || i + Math.max(len, 4) > buf.length) throw new SmartHttpError('SOURCE_FETCH_FAILED', 'Not a Git smart HTTP answer: a pkt-line is malformed');
    if (len === 0) { out.push(null); i += 4; continue; }
    out.push(buf.subarray(i + 4, i + len));
    i += len;
  }
  return out;
}

/** The refs advertisement of `info/refs?service=git-upload-pack`. */
export function parseAdvertisement(buf: Buffer): { refs: Map<string, string>; capabilities: Set<string> } {
  const lines = parsePktLines(buf);
  let k = 0;
  // "# service=git-upload-pack" and its flush come first.
  if (lines[0] && lines[0].toString('latin1').startsWith('# service=')) {
    k = 1;
    if (lines[k] === null) k++;
  }
  const refs = new Map<string, string>();
  let capabilities = new Set<string>();
  for (; k < lines.length; k++) {
    const l = lines[k];
    if (l === null || l === undefined) break;
    let text = l.toString('utf8').replace(/\n$/, '');
    const nul = text.indexOf('\0');
    if (nul >= 0) {
      capabilities = new Set(text.slice(nul + 1).split(' ').filter(Boolean));
      text = text.slice(0, nul);
    }
    const [oid, name] = text.split(' ');
    if (oid && name && /^[0-9a-f]{40}$/.test(oid) && name !== 'capabilities^{}') refs.set(name, oid);
  }
  return { refs, capabilities };
}

async function call(url: string, o: SmartHttpOptions, init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: Buffer }): Promise<Dispatcher.ResponseData> {
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: init.method,
      headers: { 'user-agent': AGENT, ...o.headers, ...init.headers },
      ...(init.body ? { body: init.body } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
    });
  } catch (e) {
    const err = e as { code?: string; cause?: { code?: string }; message?: string };
    throw new SmartHttpError('SOURCE_FETCH_FAILED', `${err.cause?.code ?? err.code ?? ''} ${err.message ?? String(e)}`.trim());
  }
  if (res.statusCode >= 400 || (res.statusCode >= 300 && res.statusCode < 400)) {
    await res.body.dump().catch(() => {});
    const s = res.statusCode;
    if (s === 401 || s === 403) throw new SmartHttpError('SOURCE_AUTH_FAILED', `the Git server answered ${s} ${s === 401 ? 'Unauthorized' : 'Forbidden'}`, s);
    if (s === 404) throw new SmartHttpError('SOURCE_FETCH_FAILED', 'the Git server answered 404 Not Found (no repository at that URL)', s);
    if (s >= 300 && s < 400) throw new SmartHttpError('SOURCE_FETCH_FAILED', `the Git server redirects (${s} to ${String(res.headers.location ?? '?')}); give the final URL as the stack's repository`, s);
    throw new SmartHttpError('SOURCE_FETCH_FAILED', `the Git server answered ${s}`, s);
  }
  return res;
}

const base = (url: string): string => url.replace(/\/+$/, '');

/** The repository's refs (GET info/refs). */
export async function discoverRefs(url: string, o: SmartHttpOptions = {}): Promise<{ refs: Map<string, string>; capabilities: Set<string> }> {
  const res = await call(`${base(url)}/info/refs?service=git-upload-pack`, o, { method: 'GET', headers: {} });
  const type = String(res.headers['content-type'] ?? '');
  const body = Buffer.from(await res.body.arrayBuffer());
  if (type !== 'application/x-git-upload-pack-advertisement') {
    throw new SmartHttpError('SOURCE_FETCH_FAILED', `the server does not speak Git smart HTTP (info/refs answered "${type || 'no content type'}")`);
  }
  return parseAdvertisement(body);
}

/**
 * The pack holding `oid` and its tree at depth 1. Over stateless smart HTTP,
 * git upload-pack serves any commit reachable from a branch, not only tips.
 */
export async function fetchPack(url: string, oid: string, capabilities: Set<string>, o: SmartHttpOptions = {}, onPack?: (bytes: Buffer) => void): Promise<Buffer | undefined> {
  if (!capabilities.has('shallow')) throw new SmartHttpError('SOURCE_FETCH_FAILED', 'the Git server does not offer shallow fetches (capability "shallow")');
  const caps = ['side-band-64k', 'ofs-delta', 'shallow', 'no-progress', `agent=${AGENT}`].filter((c) => c.startsWith('agent=') || capabilities.has(c) || c === 'shallow');
  const req = Buffer.concat([
    pktLine(`want ${oid} ${caps.join(' ')}\n`),
    pktLine('deepen 1\n'),
    FLUSH,
    pktLine('done\n'),
  ]);
  const res = await call(`${base(url)}/git-upload-pack`, o, {
    method: 'POST', body: req,
    headers: { 'content-type': 'application/x-git-upload-pack-request', accept: 'application/x-git-upload-pack-result' },
  });
  return readPackResponse(res.body as unknown as Readable, capabilities.has('side-band-64k'), onPack);
}

/**
 * Reads shallow lines, NAK, then the pack (side-band frames, or raw without
 * side-band): handed to `onPack` as it comes, or collected and returned.
 */
export async function readPackResponse(body: AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>, sideband: boolean, onPack?: (bytes: Buffer) => void): Promise<Buffer | undefined> {
  const pack: Buffer[] = [];
  const take = onPack ?? ((b: Buffer) => { pack.push(Buffer.from(b)); });
  let buf = Buffer.alloc(0);
  let inPack = false;
  let raw = false;
  let packBytes = 0;
  for await (const chunk of body) {
    buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);
    let i = 0;
    for (;;) {
      if (raw) { take(buf.subarray(i)); packBytes += buf.length - i; i = buf.length; break; }
      if (buf.length - i < 4) break;
      const len = Number.parseInt(buf.toString('latin1', i, i + 4), 16);
      if (!Number.isInteger(len) || (len > 0 && len < 4)) throw new SmartHttpError('SOURCE_FETCH_FAILED', 'Not a Git smart HTTP answer: a pkt-line is malformed');
      if (len === 0) { i += 4; continue; }
      if (buf.length - i < len) break;
      const payload = buf.subarray(i + 4, i + len);
      i += len;
      if (!inPack) {
        const text = payload.toString('latin1');
        if (text.startsWith('ERR ')) throw errorFromServer(text.slice(4));
        if (text.startsWith('shallow ') || text.startsWith('unshallow ')) continue;
        if (text.startsWith('NAK') || text.startsWith('ACK')) {
          inPack = true;
          if (!sideband) { raw = true; }
          continue;
        }
        throw new SmartHttpError('SOURCE_FETCH_FAILED', `Unexpected answer from git-upload-pack: "${text.slice(0, 80).trim()}"`);
      }
      const band = payload[0];
      if (band === 1) { take(payload.subarray(1)); packBytes += len - 5; }
      else if (band === 3) throw errorFromServer(payload.subarray(1).toString('utf8'));
      // band 2: progress text, not asked for; ignored.
    }
    buf = i >= buf.length ? Buffer.alloc(0) : buf.subarray(i);
  }
  if (!inPack) throw new SmartHttpError('SOURCE_FETCH_FAILED', 'git-upload-pack ended without sending a pack');
  return onPack ? undefined : Buffer.concat(pack, packBytes);
}

function errorFromServer(text: string): SmartHttpError {
  const t = text.trim();
  if (/not our ref|not a valid|no such|bad object|unadvertised/i.test(t)) {
    return new SmartHttpError('SOURCE_COMMIT_NOT_FOUND', `the Git server does not have that commit reachable from a branch (${t})`);
  }
  return new SmartHttpError('SOURCE_FETCH_FAILED', `the Git server reported: ${t}`);
}
