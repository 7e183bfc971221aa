// A real `launcher server` for tests: a subprocess on 127.0.0.1 with a temp
// data directory, plus small HTTPS clients for its admin and worker APIs.
//
//   const srv = await startTestServer({ args: ['--worker-lease', '1s'] });
//   const { status, body } = await srv.admin('POST', '/v1/pools', { name: 'p', csr });
//   await srv.kill9(); await srv.restart();     // same data dir, same port
//   await srv.stop();                           // SIGTERM, then removes the data dir
//
// By default the data directory is seeded with a 2048-bit CA made once per test
// process (the server's own first start makes a 4096-bit one, which is slow);
// pass `realCa: true` to exercise that path.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, type CertificateAuthority } from '../../lib/pki.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');

let sharedCa: CertificateAuthority | undefined;
/** A 2048-bit CA made once per test process. */
export function testCa(): CertificateAuthority {
  sharedCa ??= createCertificateAuthority({ bits: 2048, commonName: 'launcher test CA' });
  return sharedCa;
}

export interface TestServerOptions {
  /** Extra `launcher server` flags, e.g. ['--worker-lease', '1s']. */
  args?: string[];
  /** Reuse this data directory (it is not removed by stop()). */
  dataDir?: string;
  /** Let the server create its own 4096-bit CA on first start. */
  realCa?: boolean;
  /** Milliseconds to wait for "Server listening" (default 60 s). */
  startTimeoutMs?: number;
}

export interface HttpResult<T = any> { status: number; headers: Record<string, string | string[] | undefined>; body: T; text: string; raw: Buffer }

export interface ClientCert { certPem: string; keyPem: string }

export class TestServer {
  readonly dataDir: string;
  readonly caPath: string;
  readonly ownsDir: boolean;
  readonly args: string[];
  port = 0;
  url = '';
  adminToken = '';
  proc: ChildProcess | undefined;
  /** Everything the current process wrote to stdout / stderr. */
  stdout = '';
  stderr = '';
  private exitPromise: Promise<number | null> | undefined;
  private readonly timeoutMs: number;

  constructor(o: TestServerOptions) {
    this.ownsDir = o.dataDir === undefined;
    this.dataDir = o.dataDir ?? join(mkdtempSync(join(tmpdir(), 'launcher-server-test-')), 'data');
    this.caPath = join(this.dataDir, 'ca.crt');
    this.args = o.args ?? [];
    this.timeoutMs = o.startTimeoutMs ?? 60_000;
    if (!o.realCa) {
      mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
      const ca = testCa();
      try { readFileSync(join(this.dataDir, 'ca.key')); } catch {
        writeFileSync(join(this.dataDir, 'ca.key'), ca.keyPem, { mode: 0o600 });
        writeFileSync(this.caPath, ca.certPem);
      }
    }
  }

  get caPem(): string { return readFileSync(this.caPath, 'utf8'); }

  /** Spawns the server (port 0 the first time, the same port afterwards) and waits until it listens. */
  async start(extraArgs: string[] = []): Promise<void> {
    const listen = `127.0.0.1:${this.port}`;
    this.stdout = '';
    this.stderr = '';
    const proc = spawn(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', '--data', this.dataDir, '--listen', listen, ...this.args, ...extraArgs], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' },
    });
    this.proc = proc;
    this.exitPromise = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : null))));
    proc.stdout!.on('data', (d) => { this.stdout += d; });
    proc.stderr!.on('data', (d) => { this.stderr += d; });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Server did not start in ${this.timeoutMs} ms:\n${this.stderr}`)), this.timeoutMs);
      const check = (): void => {
        const m = /"msg":"Server listening".*?"port":(\d+)/.exec(this.stderr);
        if (m) { clearTimeout(timer); this.port = Number(m[1]); resolve(); }
      };
      proc.stderr!.on('data', check);
      proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`Server exited with ${code} before listening:\n${this.stderr}`)); });
    });
    this.url = `https://127.0.0.1:${this.port}`;
    this.adminToken = readFileSync(join(this.dataDir, 'admin.token'), 'utf8').trim();
  }

  /** Runs `launcher server` on the same data dir expecting it to exit; returns its code and output. */
  async runAnother(extraArgs: string[] = []): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', '--data', this.dataDir, '--listen', '127.0.0.1:0', ...extraArgs], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d) => { err += d; });
      const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.on('exit', (code) => { clearTimeout(t); resolve({ code, stderr: err }); });
    });
  }

  /** kill -9: no cleanup at all, as after a crash. */
  async kill9(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exitPromise;
  }

  /** SIGTERM and wait; resolves with the exit code. */
  async terminate(): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc?.exitCode ?? null;
    this.proc.kill('SIGTERM');
    return this.exitPromise!;
  }

  async restart(extraArgs: string[] = []): Promise<void> {
    await this.terminate();
    await this.start(extraArgs);
  }

  /** Stops the server and removes the data directory it created. */
  async stop(): Promise<void> {
    await this.terminate();
    if (this.ownsDir) rmSync(join(this.dataDir, '..'), { recursive: true, force: true });
  }

  /** JSON lines the server logged (parsed). */
  logLines(): Record<string, unknown>[] {
    return this.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** An admin API call with the bearer token (override with `token`, or null for none). */
  admin<T = any>(method: string, path: string, body?: unknown, o: { token?: string | null; headers?: Record<string, string>; onText?: (soFar: string) => void } = {}): Promise<HttpResult<T>> {
    const token = o.token === undefined ? this.adminToken : o.token;
    const headers: Record<string, string> = { ...o.headers };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    return httpsRequest(this.url, method, path, { ca: this.caPem, headers, body, ...(o.onText ? { onText: o.onText } : {}) });
  }

  /** A worker API call with a client certificate (or none). */
  worker<T = any>(cert: ClientCert | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult<T>> {
    return httpsRequest(this.url, method, path, { ca: this.caPem, headers, body, ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) });
  }

  /** How many worker long-polls the server holds open right now (from its /metrics). */
  async heldPolls(): Promise<number> {
    const r = await this.admin('GET', '/metrics');
    if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}: ${r.text.slice(0, 200)}`);
    const m = /^launcher_long_polls_held (\d+)$/m.exec(r.text);
    if (!m) throw new Error('GET /metrics has no launcher_long_polls_held line');
    return Number(m[1]);
  }

  /**
   * Waits until the server holds at least `count` long-polls: a poll sent
   * without awaiting it has then reached the server and is waiting there, so
   * what the test does next happens while it waits (no guessed sleep).
   */
  async waitHeldPolls(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = await this.heldPolls();
      if (n >= count) return;
      if (Date.now() > deadline) throw new Error(`The server holds ${n} long-polls, not ${count}, after ${timeoutMs} ms`);
      await new Promise((r) => setImmediate(r));
    }
  }
}

export async function startTestServer(o: TestServerOptions = {}): Promise<TestServer> {
  const s = new TestServer(o);
  await s.start();
  return s;
}

/**
 * One HTTPS request. `body`: a Buffer/string is sent as is (octet-stream unless
 * a content-type header says otherwise), anything else as JSON.
 */
export function httpsRequest<T = any>(base: string, method: string, path: string, o: { ca: string; cert?: string; key?: string; headers?: Record<string, string>; body?: unknown; signal?: AbortSignal; onText?: (soFar: string) => void }): Promise<HttpResult<T>> {
  const u = new URL(path, base);
  const headers: Record<string, string> = { ...o.headers };
  let payload: Buffer | undefined;
  if (o.body !== undefined) {
    if (Buffer.isBuffer(o.body) || typeof o.body === 'string') {
      payload = Buffer.from(o.body);
      headers['content-type'] ??= 'application/octet-stream';
    } else {
      payload = Buffer.from(JSON.stringify(o.body));
      headers['content-type'] ??= 'application/json';
    }
    headers['content-length'] = String(payload.length);
  }
  const opts: RequestOptions = {
    method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers,
    ca: o.ca, cert: o.cert, key: o.key, agent: false, signal: o.signal,
  };
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => { chunks.push(c); o.onText?.(Buffer.concat(chunks).toString('utf8')); });
      res.on('error', reject);
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        let body: unknown = text;
        if (String(res.headers['content-type'] ?? '').includes('json')) { try { body = JSON.parse(text); } catch { /* keep text */ } }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text, raw });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** An RSA key and CSR made by the openssl CLI, as the seed's instructions do. */
export function opensslCsr(dir: string, name = 'pool', bits = 2048): { keyPath: string; csrPath: string; keyPem: string; csrPem: string } {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', '-newkey', `rsa:${bits}`, '-nodes', '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${name}`], { stdio: 'ignore' });
  return { keyPath, csrPath, keyPem: readFileSync(keyPath, 'utf8'), csrPem: readFileSync(csrPath, 'utf8') };
}

/** The pool certificate inside a token. */
export function tokenCertificate(token: string): string {
  return (JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { certificate: string }).certificate;
}
