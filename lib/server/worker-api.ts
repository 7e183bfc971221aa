// The worker API (/v1/worker/*, mutual TLS): thin HTTP glue over Service.
// The pool is always the one of the client certificate, checked per request,
// so a certificate revoked mid-connection is refused from its next request on.
import type { IncomingMessage } from 'node:http';
import type { KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { decimal } from './fields.ts';
import { HttpError, Router, readBody, readJson, sendJson, type Ctx } from './http.ts';
import { badField } from './refusal.ts';
import type { Service } from './service.ts';
import { DEFAULT_POLL_SECONDS, LOG_CHUNK_LIMIT, MAX_POLL_SECONDS, WorkerOps } from './worker-ops.ts';

/** The pool a request's client certificate belongs to: 401 without a valid one, 403 when revoked. */
// The peer certificate of a connection cannot change (renegotiation is
// disabled on every connection in app.ts), and building its JS object is the
// most expensive part of a small request, so each socket computes it once.
const peers = new WeakMap<TLSSocket, { serial: string | undefined; authorized: boolean; error: string }>();

function peerOf(sock: TLSSocket): { serial: string | undefined; authorized: boolean; error: string } {
  let p = peers.get(sock);
  if (!p) {
    const cert = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
    p = { serial: cert?.serialNumber || undefined, authorized: sock.authorized === true, error: String(sock.authorizationError ?? 'unknown issuer') };
    peers.set(sock, p);
  }
  return p;
}

/** The refusal for a client certificate that failed verification, naming the actual problem. */
export function untrusted(code: string): HttpError {
  const why: Record<string, [string, string]> = {
    INVALID_PURPOSE: ['CLIENT_CERT_WRONG_PURPOSE', 'it is not meant for client authentication (its extended key usage lacks clientAuth); launchers use the pool certificate from their token'],
    CERT_HAS_EXPIRED: ['CLIENT_CERT_EXPIRED', 'it has expired; get a new token with launcher admin pool reset'],
    CERT_NOT_YET_VALID: ['CLIENT_CERT_NOT_YET_VALID', 'it is not valid yet (check the clocks of this server and the launcher host)'],
    CERT_SIGNATURE_FAILURE: ['CLIENT_CERT_UNTRUSTED', 'its issuer has the name of this server\'s CA but its signature does not verify: it was issued by another CA'],
  };
  const [code_, text] = why[code] ?? ['CLIENT_CERT_UNTRUSTED', `it is not issued by this server's CA (${code})`];
  return new HttpError(401, code_, `Client certificate refused: ${text}`);
}

/**
 * A client certificate whose signature failed to verify leaves an error on
 * OpenSSL's per-thread error queue after the handshake, and the connection's
 * next read picks it up as its own failure and resets the connection: the
 * client would see a reset instead of the 401 above. Any call that manages
 * the queue clears it; checking the certificate against the CA is one that
 * also means something.
 */
export function settleFailedVerification(sock: TLSSocket, caPublicKey: KeyObject): void {
  try { sock.getPeerX509Certificate()?.verify(caPublicKey); } catch { /* only the side effect matters */ }
}

export function authenticateWorker(req: IncomingMessage, s: Service): { poolId: string; keyId: string } {
  const peer = peerOf(req.socket as TLSSocket);
  if (!peer.serial) {
    throw new HttpError(401, 'CLIENT_CERT_REQUIRED', 'Client certificate required: launchers authenticate with the pool certificate from their token');
  }
  if (!peer.authorized) throw untrusted(peer.error);
  // The revocation check runs on every request: a reset applies at once.
  return s.poolForSerial(peer.serial);
}

const phaseParam = (ctx: Ctx): number => decimal(ctx.params.phase, 'phase', 10_000, 'a phase number from 0 (decimal digits)');

export function workerRoutes(s: Service): Router {
  const r = new Router();
  const ops = new WorkerOps(s);
  const auth = (ctx: Ctx): { poolId: string; keyId: string } => ctx.worker!;

  r.add('POST', '/v1/worker/register', async (ctx) => {
    sendJson(ctx.res, 200, ops.register(auth(ctx).poolId, await readJson(ctx.req)));
  });

  r.add('POST', '/v1/worker/poll', async (ctx) => {
    const body = await readJson(ctx.req);
    const waitArg = ctx.query.get('wait');
    const wait = waitArg === null ? DEFAULT_POLL_SECONDS : decimal(waitArg, 'wait', 1_000_000, `whole seconds from 0 to ${MAX_POLL_SECONDS}`);
    const { req, res } = ctx;
    const alive = (): boolean => !res.destroyed && !req.socket.destroyed && res.writable;
    const pending = ops.poll(auth(ctx), body, Math.min(wait, MAX_POLL_SECONDS) * 1000, alive);
    if (!(pending instanceof Promise)) { sendJson(res, 200, pending); return; }
    const workerId = body.workerId as string;
    const onClose = (): void => {
      const w = s.presence.waiting(workerId);
      if (w && !w.alive()) s.presence.release(w, 'gone');
    };
    res.on('close', onClose);
    const reply = await pending;
    res.off('close', onClose);
    if (reply) sendJson(res, 200, reply);
  });

  r.add('POST', '/v1/worker/runs/{run}/phases/{phase}/start', async (ctx) => {
    sendJson(ctx.res, 200, ops.startPhase(auth(ctx).poolId, ctx.params.run!, phaseParam(ctx), await readJson(ctx.req)));
  });

  r.add('POST', '/v1/worker/runs/{run}/phases/{phase}/commit', async (ctx) => {
    sendJson(ctx.res, 200, ops.recordCommit(auth(ctx).poolId, ctx.params.run!, phaseParam(ctx), await readJson(ctx.req)));
  });

  r.add('GET', '/v1/worker/runs/{run}/phases/{phase}', (ctx) => {
    sendJson(ctx.res, 200, ops.phaseStatus(auth(ctx).poolId, ctx.params.run!, phaseParam(ctx)));
  });

  r.add('POST', '/v1/worker/runs/{run}/phases/{phase}/logs', async (ctx) => {
    const seq = decimal(ctx.query.get('seq'), 'seq', Number.MAX_SAFE_INTEGER, 'the chunk\'s sequence number (decimal digits, from 0)');
    const phase = phaseParam(ctx);
    const chunk = await readBody(ctx.req, LOG_CHUNK_LIMIT, () => new HttpError(413, 'LOG_CHUNK_TOO_LARGE', `Log chunk too large: at most ${LOG_CHUNK_LIMIT} bytes per chunk`));
    sendJson(ctx.res, 200, await ops.appendLog(auth(ctx).poolId, ctx.params.run!, phase, seq, chunk));
  });

  r.add('GET', '/v1/worker/runs/{run}/workspace', async (ctx) => {
    const f = await ops.workerWorkspace(auth(ctx).poolId, ctx.params.run!);
    streamFile(ctx, f);
  });

  r.add('PUT', '/v1/worker/runs/{run}/phases/{phase}/workspace', async (ctx) => {
    const phase = phaseParam(ctx);
    const declared = Number(ctx.req.headers['content-length'] ?? NaN);
    sendJson(ctx.res, 200, await ops.uploadWorkspace(auth(ctx).poolId, ctx.params.run!, phase, ctx.req, declared));
  });

  r.add('GET', '/v1/worker/runs/{run}/state/{version}', async (ctx) => {
    const v = decimal(ctx.params.version, 'version', Number.MAX_SAFE_INTEGER, 'a state version number from 1 (decimal digits)');
    if (v < 1) throw badField('version', 'a state version number from 1 (decimal digits)');
    streamFile(ctx, await ops.downloadState(auth(ctx).poolId, ctx.params.run!, v));
  });

  r.add('PUT', '/v1/worker/runs/{run}/phases/{phase}/state', async (ctx) => {
    const phase = phaseParam(ctx);
    const declared = Number(ctx.req.headers['content-length'] ?? NaN);
    sendJson(ctx.res, 200, await ops.uploadState(auth(ctx).poolId, ctx.params.run!, phase, ctx.req, declared, ctx.query));
  });

  r.add('POST', '/v1/worker/runs/{run}/phases/{phase}/result', async (ctx) => {
    const phase = phaseParam(ctx);
    sendJson(ctx.res, 200, await ops.result(auth(ctx).poolId, ctx.params.run!, phase, await readJson(ctx.req)));
  });

  r.add('POST', '/v1/worker/deregister', async (ctx) => {
    sendJson(ctx.res, 200, ops.deregister(auth(ctx).poolId, await readJson(ctx.req)));
  });

  return r;
}

export function streamFile(ctx: Ctx, f: { stream: NodeJS.ReadableStream & { destroy(): void }; size: number }): void {
  ctx.res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': f.size, 'cache-control': 'no-store' });
  if (ctx.req.method === 'HEAD') { f.stream.destroy(); ctx.res.end(); return; }
  f.stream.pipe(ctx.res);
  ctx.res.on('close', () => f.stream.destroy());
}
