// Connection limits: what keeps a server that faces its network alive when
// clients misbehave. A cap on open connections (sized from the file-descriptor
// limit), a cap per remote address on connections that have not authenticated
// yet, a TLS handshake timeout (set on the server by app.ts), and watchdogs
// on request bodies: a JSON body must arrive whole within the body timeout; an
// upload may take as long as it needs but must not stall.
//
// At the global cap a new connection first evicts the oldest connection that
// has not authenticated; only when every open connection belongs to a launcher
// or an admin is the new one refused. So idle sockets opened by anyone cannot
// lock out the launchers already connected, nor the ones that come next.
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from './log.ts';

export interface ConnectionLimits {
  /** Open connections at most (authenticated or not). */
  maxConnections: number;
  /** Connections not yet authenticated, per remote address. */
  maxPendingPerAddress: number;
  /** A connection that has not finished TLS by then is closed (ms). */
  handshakeTimeoutMs: number;
  /** Request headers must arrive within this (ms). */
  headersTimeoutMs: number;
  /** A JSON body must arrive whole within this; an upload must not stall longer than this (ms). */
  bodyTimeoutMs: number;
}

/** File descriptors the server keeps for itself (database, logs, uploads, dist files). */
export const FD_RESERVE = 1024;
export const DEFAULT_PENDING_PER_ADDRESS = 256;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;

/** The soft and hard RLIMIT_NOFILE of this process, from /proc (Linux). */
export function fileLimits(text?: string): { soft: number; hard: number } | undefined {
  let t = text;
  try { t ??= readFileSync('/proc/self/limits', 'utf8'); } catch { return undefined; }
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(t);
  if (!m) return undefined;
  const n = (s: string): number => (s === 'unlimited' ? 1 << 20 : Number(s));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/**
 * Raises the soft open-file limit to the hard one. Node already does this at
 * start-up; other runtimes may not, so when the soft limit is still lower,
 * `prlimit` (util-linux) raises it for this process. Returns the limit in force.
 */
export function raiseFileLimit(log: Logger): number {
  const before = fileLimits();
  if (!before) return 1024;
  if (before.soft < before.hard) {
    const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${before.hard}:${before.hard}`], { stdio: 'ignore' });
    if (r.status !== 0) log.warn('Cannot raise the open-file limit', { soft: before.soft, hard: before.hard, hint: 'raise it with ulimit -n or LimitNOFILE= in the service unit' });
  }
  return fileLimits()?.soft ?? before.soft;
}

/** The default connection cap: what the file-descriptor limit leaves after the server's own files. */
export function defaultMaxConnections(fdLimit: number): number {
  return Math.max(64, fdLimit - Math.min(FD_RESERVE, Math.floor(fdLimit / 4)));
}

interface Tracked { sock: Socket; address: string; authed: boolean }

export class ConnectionGuard {
  readonly limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #open = new Map<Socket, Tracked>();
  // Unauthenticated connections only, oldest first (insertion order): the
  // eviction victim is the first entry, found without walking past the
  // thousands of launchers that connected before it.
  readonly #unauthed = new Set<Tracked>();
  readonly #pendingByAddress = new Map<string, number>();
  #pending = 0;
  /** Counters for the log and tests. */
  readonly stats = { refused: 0, evicted: 0, pendingCapped: 0, handshakeTimeouts: 0, bodyTimeouts: 0 };
  readonly #lastWarn = new Map<string, number>();

  constructor(limits: ConnectionLimits, log: Logger) {
    this.limits = limits;
    this.#log = log;
  }

  get open(): number { return this.#open.size; }
  get pending(): number { return this.#pending; }

  /**
   * Hooks the guard into a TLS server: every accepted TCP connection passes
   * through it. The TLS state of a connection (an OpenSSL session, buffers,
   * a TLSSocket) is only created once the client has sent its first bytes: a
   * connection that never speaks costs a plain socket and a timer, nothing
   * more. One deadline runs from accept to the end of the handshake.
   */
  attach(server: Server): void {
    // tls.Server wraps each TCP connection in TLS from its own 'connection'
    // listener; the guard calls it itself, once there is something to wrap.
    const wrap = server.listeners('connection') as Array<(sock: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (sock: Socket) => {
      if (!this.#accept(sock)) return;
      sock.on('error', () => {}); // a reset before TLS is not worth a log line
      const deadline = setTimeout(() => {
        this.stats.handshakeTimeouts++;
        sock.destroy();
      }, this.limits.handshakeTimeoutMs);
      deadline.unref();
      this.#deadlines.set(sock, deadline);
      sock.once('close', () => clearTimeout(deadline));
      sock.once('data', (first: Buffer) => {
        sock.pause();
        sock.unshift(first); // TLSSocket reads what is buffered on the socket first
        for (const l of wrap) l.call(server, sock);
      });
    });
    server.on('secureConnection', (sock: TLSSocket) => {
      const raw = this.#raw(sock);
      clearTimeout(this.#deadlines.get(raw));
      this.#deadlines.delete(raw);
      // A client certificate issued by this server's CA: a launcher. Whether
      // its pool still accepts it is checked per request (revocation).
      if (sock.authorized) this.authenticated(sock);
    });
  }

  readonly #deadlines = new WeakMap<Socket, NodeJS.Timeout>();

  /** Marks a connection as belonging to an authenticated client (launcher or admin). */
  authenticated(sock: Socket): void {
    const t = this.#open.get(this.#raw(sock));
    if (!t || t.authed) return;
    t.authed = true;
    this.#unauthed.delete(t);
    this.#dropPending(t.address);
  }

  // The 'connection' event hands over the TCP socket; later events hand the
  // TLS socket wrapping it. Both map to the same entry.
  readonly #tlsToRaw = new WeakMap<Socket, Socket>();
  #raw(sock: Socket): Socket {
    return this.#tlsToRaw.get(sock) ?? (sock as unknown as { _parent?: Socket })._parent ?? sock;
  }

  /** Admits a new connection (true) or closes it (false), evicting an idle stranger at the cap. */
  #accept(sock: Socket): boolean {
    const address = sock.remoteAddress ?? 'unknown';
    if (this.#open.size >= this.limits.maxConnections) {
      const victim = this.#oldestPending();
      if (victim === undefined) {
        this.stats.refused++;
        this.#warn('Connection refused: at the connection limit and every connection is authenticated', { max: this.limits.maxConnections });
        sock.destroy();
        return false;
      }
      this.stats.evicted++;
      this.#warn('Connection limit reached: closing the oldest unauthenticated connection', { max: this.limits.maxConnections });
      victim.sock.destroy();
      this.#forget(victim.sock);
    }
    const pendingHere = this.#pendingByAddress.get(address) ?? 0;
    if (pendingHere >= this.limits.maxPendingPerAddress) {
      this.stats.pendingCapped++;
      this.#warn('Connection refused: too many unauthenticated connections from one address', { remote: address, max: this.limits.maxPendingPerAddress });
      sock.destroy();
      return false;
    }
    const t: Tracked = { sock, address, authed: false };
    this.#open.set(sock, t);
    this.#unauthed.add(t);
    this.#pendingByAddress.set(address, pendingHere + 1);
    this.#pending++;
    sock.once('close', () => this.#forget(sock));
    return true;
  }

  #oldestPending(): Tracked | undefined {
    for (const t of this.#unauthed) return t;
    return undefined;
  }

  #forget(sock: Socket): void {
    const t = this.#open.get(sock);
    if (!t) return;
    this.#open.delete(sock);
    if (!t.authed) {
      this.#unauthed.delete(t);
      this.#dropPending(t.address);
    }
  }

  #dropPending(address: string): void {
    this.#pending--;
    const n = (this.#pendingByAddress.get(address) ?? 1) - 1;
    if (n <= 0) this.#pendingByAddress.delete(address); else this.#pendingByAddress.set(address, n);
  }

  // Under attack these would be thousands of lines a second: one a second
  // at most of each kind, with the running counts.
  #warn(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - (this.#lastWarn.get(msg) ?? 0) < 1000) return;
    this.#lastWarn.set(msg, now);
    this.#log.warn(msg, { ...fields, open: this.#open.size, pending: this.#pending, ...this.stats });
  }

  /**
   * Watches a request body until it has all arrived. `whole`: it must arrive
   * within the body timeout (JSON, log chunks); otherwise (uploads) it may
   * take any time but must not stall for longer than the body timeout. On
   * expiry `onTimeout` answers (408) and the connection is closed.
   */
  watchBody(req: IncomingMessage, mode: 'whole' | 'stream', onTimeout: () => void): void {
    if (req.complete) return;
    const limit = this.limits.bodyTimeoutMs;
    const sock = req.socket;
    let lastBytes = sock.bytesRead;
    let idleSince = Date.now();
    const started = idleSince;
    const tick = Math.max(50, Math.min(1000, Math.floor(limit / 4)));
    const timer = setInterval(() => {
      if (req.complete || sock.destroyed) { clearInterval(timer); return; }
      const now = Date.now();
      if (sock.bytesRead !== lastBytes) { lastBytes = sock.bytesRead; idleSince = now; }
      const expired = mode === 'whole' ? now - started > limit : now - idleSince > limit;
      if (!expired) return;
      clearInterval(timer);
      this.stats.bodyTimeouts++;
      this.#warn('Request body timed out', { method: req.method, path: req.url?.split('?')[0], remote: sock.remoteAddress ?? null, timeoutMs: limit, mode });
      onTimeout();
      // Give the answer a moment to leave, then close whatever is left. The
      // request itself is destroyed too: once its response has finished,
      // Node no longer aborts it when the socket closes, and whoever reads
      // the body (an upload into tmp/) would wait for the rest forever.
      setTimeout(() => {
        req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
        sock.destroy();
      }, 200).unref();
    }, tick);
    timer.unref();
    req.once('end', () => clearInterval(timer));
    req.once('close', () => clearInterval(timer));
  }
}
