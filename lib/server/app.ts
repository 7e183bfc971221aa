// Wiring: data directory, database, CA and certificates, the HTTPS listener,
// and the three audiences on it (distribution files, worker API over mutual
// TLS, admin API with the bearer token). Returns a handle to stop it.
import { createPublicKey } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import { LauncherError, isLauncherError } from '../errors.ts';
import { AdminOps } from './admin-ops.ts';
import { adminRoutes } from './admin-api.ts';
import { addBackupRoutes } from './backup-api.ts';
import { addGcRoutes } from './gc-api.ts';
import { Collector } from '../retention/collector.ts';
import type { Schedules } from './schedules.ts';
import { createBlobStore } from './blobs.ts';
import type { DatabaseSync } from 'node:sqlite';
import { dataPaths, type DataPaths, loadOrCreateCa, loadOrIssueServerCert, newAdminToken, prepareDataDir, readPidFile, writeAdminTokenFile, writePidFile, writeServerUrlFile } from './datadir.ts';
import { checkpointOnTimer, openDatabase } from './db.ts';
import { HttpError, Router, bearerToken, httpErrorOf, sendError, sendJson, sha256, tokenMatches, type Ctx } from './http.ts';
import { badField } from './refusal.ts';
import { auditTail } from './audit.ts';
import type { Logger } from './log.ts';
import { LogFiles } from './logs.ts';
import { Service } from './service.ts';
import { ServerMetrics } from '../metrics/server.ts';
import { CONTENT_TYPE as METRICS_CONTENT_TYPE } from '../metrics/registry.ts';
import { Store } from './store.ts';
import { authenticateWorker, settleFailedVerification, workerRoutes } from './worker-api.ts';
import { ConnectionGuard, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_PENDING_PER_ADDRESS, defaultMaxConnections, raiseFileLimit, type ConnectionLimits } from './limits.ts';
import { cleanTmp } from './blobs.ts';
import type { Quotas } from './quotas.ts';
import { HookRefused, receiveGitHook } from './hooks.ts';
import { loadConsoleAssets } from '../console/assets.ts';
import { setBaseHeaders } from '../console/headers.ts';
import { SignInThrottle } from '../console/throttle.ts';
import { checkCsrf, handleConsole, isConsolePath, sessionOf, type ConsoleDeps } from '../console/serve.ts';
import { Sessions } from '../console/session.ts';
import type { AuditList } from '../protocol.ts';

export interface ServerOptions {
  dataDir: string;
  listenHost: string;
  listenPort: number;
  /** The URL launchers reach the server at (goes into tokens); default https://LISTEN_HOST:PORT. */
  url?: string;
  leaseMs: number;
  graceMs: number;
  maxWorkspaceBytes: number;
  /** Directory served at /install.sh, /SHA256SUMS, /launcher-linux-*; default DATA/dist. */
  distDir?: string;
  /** Connection limits; unset fields get defaults (max connections from the open-file limit). */
  limits?: Partial<ConnectionLimits>;
  /** Per-run log cap, uploads per worker, free-disk floor; unset fields get defaults. */
  quotas?: Partial<Quotas>;
  log: Logger;
  /** Finished runs older than this are removed with their logs and workspaces (undefined: kept forever). */
  retainRunsMs?: number | undefined;
  /** Workers OFFLINE (or deregistered) longer than this are removed (undefined: kept). */
  retainOfflineWorkersMs?: number | undefined;
  /** The clock schedules read their slots from (tests step it; default Date.now). */
  now?: () => number;
  /** How often due schedules are looked for (default 1 s). */
  scheduleTickMs?: number;
  /** A second, plain-HTTP listener that serves only GET /metrics, without the admin token (for scrapers). */
  metricsListen?: { host: string; port: number };
  /** Where the admin token is shown once, on first start. */
  stdout: Writable;
}

export interface RunningServer {
  url: string;
  port: number;
  /** The plain metrics listener's port, when --metrics-listen is given. */
  metricsPort?: number;
  service: Service;
  guard: ConnectionGuard;
  /** Drift-detection schedules (tests call tick() after stepping the clock). */
  schedules: Schedules;
  close(): Promise<void>;
}

function openLocked(paths: DataPaths): DatabaseSync {
  try {
    return openDatabase(paths.db);
  } catch (e) {
    if (isLauncherError(e) && e.code === 'DATA_DIR_LOCKED') {
      const pid = readPidFile(paths);
      throw new LauncherError('DATA_DIR_LOCKED', `Cannot start: another server${pid ? ` (pid ${pid})` : ''} is using the data directory ${paths.dir} (stop it, or pass another --data)`, { exitCode: 1 });
    }
    throw e;
  }
}

/** Replaces the admin token (server stopped): stores the new hash, rewrites DIR/admin.token, returns the token. */
export function rotateAdminToken(dataDir: string): string {
  const paths = dataPaths(dataDir);
  prepareDataDir(paths);
  const db = openLocked(paths);
  try {
    const token = newAdminToken();
    new Store(db).setMeta('admin_token_sha256', sha256(token).toString('hex'));
    writeAdminTokenFile(paths, token);
    return token;
  } finally {
    db.close();
  }
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const paths = dataPaths(o.dataDir);
  prepareDataDir(paths);
  const db = openLocked(paths);
  writePidFile(paths);
  // Uploads that were in flight when the last server stopped never finished.
  const leftovers = await cleanTmp(paths.tmp);
  if (leftovers.files > 0) o.log.info('Removed unfinished uploads from tmp/', leftovers);
  const stopCheckpoints = checkpointOnTimer(db, 1000, (e) => o.log.warn('WAL checkpoint failed', { error: e.message }));
  const store = new Store(db);
  const { ca, created } = await loadOrCreateCa(paths);
  if (created) o.log.info('Created the certificate authority', { cert: paths.caCert });

  const urlHost = o.url ? new URL(o.url).hostname : undefined;
  const wildcard = o.listenHost === '0.0.0.0' || o.listenHost === '::' || o.listenHost === '';
  const tls = await loadOrIssueServerCert(paths, ca, [o.listenHost, ...(urlHost ? [urlHost] : []), ...(wildcard ? [hostname()] : [])]);
  if (tls.issued) o.log.info('Issued the server certificate', { cert: paths.serverCert });

  let tokenHash = store.meta('admin_token_sha256');
  if (!tokenHash) {
    const token = newAdminToken();
    tokenHash = sha256(token).toString('hex');
    writeAdminTokenFile(paths, token);
    store.setMeta('admin_token_sha256', tokenHash);
    o.stdout.write(`Admin token (shown once; also saved in ${paths.adminToken}, mode 0600):\n${token}\n`);
  }
  const adminHash = Buffer.from(tokenHash, 'hex');

  const logFiles = new LogFiles(paths.logs);
  const blobs = createBlobStore({ tmpDir: paths.tmp, workspacesDir: paths.workspaces, stateDir: paths.state });
  // Sealed bytes already stored, counted in the background for /metrics.
  blobs.scanStored().catch((e: Error) => o.log.warn('Cannot count the stored sealed workspaces', { error: e.message }));
  let presence: Service['presence'] | undefined;
  const metrics = new ServerMetrics({
    store,
    presence: { heldCount: () => presence?.heldCount() ?? 0, acceptingByPool: () => presence?.acceptingByPool() ?? new Map() },
    sealed: () => blobs.stored(),
    poolName: (id) => store.pools.any(id)?.name ?? id,
    meta: { get: (k) => store.meta(k), set: (k, v) => store.setMeta(k, v) },
  });
  const service = new Service({
    store, ca, serverUrl: o.url ?? '', leaseMs: o.leaseMs, graceMs: o.graceMs, maxWorkspaceBytes: o.maxWorkspaceBytes,
    blobs, logs: logFiles, log: o.log, metrics, stateDir: paths.state, quotas: o.quotas, tmpDir: paths.tmp,
  });
  presence = service.presence;
  const ops = new AdminOps(service, o.now);
  const workerRouter = workerRoutes(service);
  const adminRouter = adminRoutes(service, ops);
  adminRouter.add('GET', '/v1/audit', async (ctx) => {
    const limit = ctx.query.get('limit') === null ? 100 : Number(ctx.query.get('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw badField('limit', 'an integer from 1 to 10000');
    sendJson(ctx.res, 200, { entries: await auditTail(paths.audit, limit) } satisfies AuditList);
  });
  addBackupRoutes(adminRouter, { db, paths, blobs, log: o.log, metrics });
  const collector = new Collector({
    store, dataDir: paths.dir, logsDir: paths.logs, workspacesDir: paths.workspaces, stateDir: paths.state, blobs, log: o.log,
    onWorkerRemoved: (id) => service.presence.forget(id),
  }, { retainRunsMs: o.retainRunsMs, retainOfflineWorkersMs: o.retainOfflineWorkersMs });
  addGcRoutes(adminRouter, collector);
  const sendMetrics = (res: ServerResponse): void => {
    const text = metrics.render();
    res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  };
  // Written synchronously: one small line per change, visible at once to
  // anyone tailing the file, and never lost to a buffered stream on kill -9.
  const audit = openSync(paths.audit, 'a', 0o600);
  const dist = await distributionHandler(o.distDir ?? paths.dist, o.url);
  const sessions = new Sessions();
  const consoleDeps: ConsoleDeps = {
    assets: await loadConsoleAssets(),
    sessions,
    throttle: new SignInThrottle(),
    adminHash,
    maxWorkspaceBytes: o.maxWorkspaceBytes,
    audit: (req, status, action) => writeAudit(o.log, audit, req, status, {}, action, req.socket?.remoteAddress ?? null),
    warn: (msg, fields) => o.log.warn(msg, fields),
  };

  const fdLimit = raiseFileLimit(o.log);
  const limits: ConnectionLimits = {
    maxConnections: o.limits?.maxConnections ?? defaultMaxConnections(fdLimit),
    maxPendingPerAddress: o.limits?.maxPendingPerAddress ?? DEFAULT_PENDING_PER_ADDRESS,
    handshakeTimeoutMs: o.limits?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    headersTimeoutMs: o.limits?.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
    bodyTimeoutMs: o.limits?.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
  };
  const guard = new ConnectionGuard(limits, o.log);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL;
    try { url = new URL(req.url ?? '/', 'https://server.invalid'); } catch { url = new URL('https://server.invalid/'); }
    // Read now: once a refused body has torn the socket down it is gone.
    const remote = req.socket.remoteAddress ?? null;
    const ctx: Ctx = { req, res, params: {}, query: url.searchParams, path: url.pathname, remote };
    // Uploads may be slow but must keep moving; every other body arrives whole in time.
    const upload = req.method === 'PUT' || /^application\/octet-stream\b/i.test(String(req.headers['content-type'] ?? ''));
    setBaseHeaders(res);
    guard.watchBody(req, upload ? 'stream' : 'whole', () => {
      if (!res.headersSent) res.setHeader('connection', 'close');
      sendError(res, new HttpError(408, 'BODY_TIMEOUT', upload
        ? `Request body stalled: no bytes for ${limits.bodyTimeoutMs} ms`
        : `Request body too slow: it must arrive within ${limits.bodyTimeoutMs} ms`));
    });
    try {
      if (dist && dist(req, res)) return;
      if (ctx.path === '/v1/hooks/git') {
        // Authenticated by the webhook secret, not by a certificate or the admin token.
        if (req.method !== 'POST') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Method not allowed: ${req.method} ${ctx.path} (Git servers POST push events here)`);
        ctx.route = ctx.path;
        try {
          const answer = await receiveGitHook(service, ops, ctx);
          ctx.audit = answer.audit;
          writeAudit(o.log, audit, req, answer.status, { ...ctx.audit }, ctx.path, remote);
          sendJson(res, answer.status, answer.body);
        } catch (e) {
          if (e instanceof HttpError) {
            ctx.audit = { ...(e instanceof HookRefused ? e.audit : {}), error: e.code };
            writeAudit(o.log, audit, req, e.status, { ...ctx.audit }, ctx.path, remote);
          }
          throw e;
        }
        return;
      }
      if (isConsolePath(ctx.path)) {
        await handleConsole(consoleDeps, req, res, ctx.path);
        return;
      }
      if (ctx.path.startsWith('/v1/worker/')) {
        ctx.worker = authenticateWorker(req, service);
        await route(workerRouter, ctx);
      } else if (ctx.path === '/metrics') {
        requireAdmin(req, adminHash);
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Method not allowed: ${req.method} /metrics (use GET)`);
        sendMetrics(res);
      } else if (ctx.path.startsWith('/v1/')) {
        const token = bearerToken(req);
        if (token !== undefined) {
          if (!tokenMatches(token, adminHash)) throw new HttpError(401, 'ADMIN_TOKEN_INVALID', 'Admin token refused: it does not match this server\'s admin token');
          guard.authenticated(req.socket);
        } else {
          // The console's session cookie stands in for the token; what changes
          // something must also prove it comes from the console's own page.
          const session = sessionOf(req, sessions);
          if (!session) throw new HttpError(401, 'ADMIN_TOKEN_MISSING', 'Admin token required: send "Authorization: Bearer TOKEN" (the token is in DATA/admin.token), or sign in to the console');
          if (req.method !== 'GET' && req.method !== 'HEAD') checkCsrf(req, session);
          guard.authenticated(req.socket);
        }
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          // Audit as the status goes out (before the client can see the answer).
          const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => ServerResponse;
          res.writeHead = ((...args: unknown[]) => {
            writeAudit(o.log, audit, req, args[0] as number, { ...ctx.params, ...ctx.audit }, ctx.route ?? ctx.path, remote);
            return writeHead(...args);
          }) as typeof res.writeHead;
        }
        await route(adminRouter, ctx);
      } else {
        throw new HttpError(404, 'NOT_FOUND', `Not found: ${req.method} ${ctx.path}`);
      }
    } catch (e) {
      const refused = httpErrorOf(e);
      if (refused && (refused.status === 401 || refused.status === 403)) {
        o.log.warn('Request refused', { code: refused.code, method: req.method, path: ctx.path, remote });
      }
      fail(o.log, ctx, e);
    }
  };

  const server: Server = createServer({
    key: tls.keyPem, cert: tls.certPem, ca: [ca.certPem],
    requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2',
    // Also closes TCP connections that never start a handshake.
    handshakeTimeout: limits.handshakeTimeoutMs,
  }, (req, res) => {
    // A handler that throws past fail() must not take the process down.
    handle(req, res).catch((e: unknown) => {
      o.log.error('Request handler failed', { method: req.method, path: req.url?.split('?')[0], error: (e as Error)?.message ?? String(e) });
      if (!res.headersSent) sendError(res, new HttpError(500, 'INTERNAL', 'Internal server error: see the server log'));
      else res.destroy();
    });
  });
  guard.attach(server);
  // Long-polls hold the response (not the request) for up to a minute, and
  // uploads are watched by the guard above, so Node's whole-request timer is off.
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = 0;
  server.keepAliveTimeout = 75_000;
  server.maxRequestsPerSocket = 0;
  server.on('tlsClientError', (e: NodeJS.ErrnoException) => {
    if (e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') guard.stats.handshakeTimeouts++;
    o.log.debug('TLS handshake failed', { error: e.message });
  });
  // A connection keeps the certificate it was opened with (see worker-api.ts).
  const caPublicKey = createPublicKey(ca.certPem);
  server.on('secureConnection', (sock) => {
    sock.disableRenegotiation();
    if (!sock.authorized) settleFailedVerification(sock, caPublicKey);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new LauncherError('LISTEN_FAILED', `Cannot listen on ${o.listenHost}:${o.listenPort}: ${e.code ?? e.message}`, { exitCode: 1, cause: e })));
    server.listen(o.listenPort, o.listenHost, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = wildcard ? hostname() : o.listenHost;
  service.serverUrl = o.url ?? `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  service.recover();
  let metricsServer: HttpServer | undefined;
  try {
    if (o.metricsListen) metricsServer = await listenForMetrics(o.metricsListen.host, o.metricsListen.port, sendMetrics);
    await writeServerUrlFile(paths, service.serverUrl);
  } catch (e) {
    metricsServer?.close();
    server.close();
    service.close();
    closeSync(audit);
    stopCheckpoints();
    db.close();
    rmSync(paths.pid, { force: true });
    if (isLauncherError(e)) throw e;
    throw new LauncherError('DATA_DIR_INVALID', `Cannot write ${paths.url}: ${(e as Error).message}`, { exitCode: 1, cause: e });
  }
  const metricsPort = metricsServer ? (metricsServer.address() as AddressInfo).port : undefined;
  if (metricsServer) o.log.info('Metrics listening', { listen: `${o.metricsListen!.host}:${metricsPort}`, metricsPort, path: '/metrics' });
  const stopRetention = collector.start();
  const stopSchedules = ops.schedules.start(o.scheduleTickMs);
  o.log.info('Server listening', { url: service.serverUrl, listen: `${o.listenHost}:${port}`, port, data: paths.dir, fileLimit: fdLimit, ...limits });

  let closed = false;
  return {
    url: service.serverUrl,
    port,
    ...(metricsPort === undefined ? {} : { metricsPort }),
    service,
    guard,
    schedules: ops.schedules,
    async close() {
      if (closed) return;
      closed = true;
      stopRetention();
      stopSchedules();
      service.close();
      sessions.clear();
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      closeSync(audit);
      await logFiles.closeAll();
      stopCheckpoints();
      db.close();
      rmSync(paths.pid, { force: true });
    },
  };
}

function requireAdmin(req: IncomingMessage, adminHash: Buffer): void {
  const token = bearerToken(req);
  if (token === undefined) throw new HttpError(401, 'ADMIN_TOKEN_MISSING', 'Admin token required: send "Authorization: Bearer TOKEN" (the token is in DATA/admin.token)');
  if (!tokenMatches(token, adminHash)) throw new HttpError(401, 'ADMIN_TOKEN_INVALID', 'Admin token refused: it does not match this server\'s admin token');
}

/** The plain listener for scrapers: GET /metrics and nothing else. */
async function listenForMetrics(host: string, port: number, send: (res: ServerResponse) => void): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return sendError(res, new HttpError(404, 'NOT_FOUND', `Not found: ${req.method} ${path} (this listener serves only GET /metrics)`));
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, new HttpError(405, 'METHOD_NOT_ALLOWED', `Method not allowed: ${req.method} /metrics (use GET)`));
    send(res);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new LauncherError('LISTEN_FAILED', `Cannot listen on ${host}:${port} for metrics: ${e.code ?? e.message}`, { exitCode: 1, cause: e })));
    server.listen(port, host, () => resolve());
  });
  return server;
}

async function route(router: Router, ctx: Ctx): Promise<void> {
  const m = router.match(ctx.req.method ?? 'GET', ctx.path);
  if (m === undefined) throw new HttpError(404, 'NOT_FOUND', `Not found: ${ctx.req.method} ${ctx.path}`);
  if (m === 'method') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Method not allowed: ${ctx.req.method} ${ctx.path}`);
  ctx.params = m.params;
  ctx.route = m.pattern;
  await m.handler(ctx);
}

const DRAIN_BYTES = 16 * 1024 * 1024;
const DRAIN_MS = 10_000;

function fail(log: Logger, ctx: Ctx, e: unknown): void {
  const { req, res } = ctx;
  let err = httpErrorOf(e);
  if (err !== undefined) {
    // answered below
  } else if (clientWentAway(req, e)) {
    // Not the server's fault and nothing to answer: the client hung up.
    log.debug('Client went away', { method: req.method, path: ctx.path, remote: ctx.remote ?? null });
    if (!res.destroyed) res.destroy();
    return;
  } else {
    log.error('Request failed', { method: req.method, path: ctx.path, error: (e as Error)?.message ?? String(e), code: isLauncherError(e) ? e.code : undefined });
    err = new HttpError(500, 'INTERNAL', 'Internal server error: see the server log');
  }
  if (res.headersSent) { res.destroy(); return; }
  if (!req.complete) {
    // The body was refused part-way (e.g. over a size limit). Answer now and
    // read and drop what the client is still sending, so it gets to read the
    // answer instead of a reset; one that keeps sending past a bound is cut off.
    let dropped = 0;
    const cut = (): void => { req.socket?.destroy(); };
    const timer = setTimeout(cut, DRAIN_MS);
    timer.unref();
    req.on('data', (c: Buffer) => { dropped += c.length; if (dropped > DRAIN_BYTES) cut(); });
    req.once('end', () => clearTimeout(timer));
    req.once('close', () => clearTimeout(timer));
    req.resume();
  }
  sendError(res, err);
}

/** The request failed because the client closed the connection (aborted, reset), not because of us. */
function clientWentAway(req: IncomingMessage, e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE') return true;
  return (e as Error | undefined)?.message === 'aborted' || (req.destroyed && !req.complete);
}

function writeAudit(log: Logger, out: number, req: IncomingMessage, status: number, extra: Record<string, string | number | boolean | null | undefined>, pattern: string, remote: string | null = null): void {
  const fields = {
    action: pattern.includes(' ') ? pattern : `${req.method} ${pattern}`,
    status,
    remote,
    ...extra,
  };
  log.info('audit', fields);
  try {
    writeSync(out, JSON.stringify({ time: new Date().toISOString(), ...fields }) + '\n');
  } catch (e) {
    log.error('Cannot write the audit log', { error: (e as Error).message });
  }
}

async function distributionHandler(dir: string, baseUrl: string | undefined): Promise<((req: IncomingMessage, res: ServerResponse) => boolean) | undefined> {
  const { createDistributionHandler } = await import('./distribution.ts');
  return createDistributionHandler({ dir, ...(baseUrl ? { baseUrl } : {}) });
}
