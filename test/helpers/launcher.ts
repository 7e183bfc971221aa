// Launchers as real subprocesses for tests: pool keys from the openssl CLI
// exactly as the seed says, the key passed as `base64 -w 0 spacelift.key`,
// and helpers to wait for log lines and exit codes.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpensslDir } from './openssl.ts';
import { TEST_IMAGE } from './docker.ts';
import { createCertificateAuthority, issuePoolCertificate } from '../../lib/pki.ts';
import { encodeToken } from '../../lib/token.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;

export interface PoolKey {
  dir: OpensslDir;
  keyPath: string;
  keyPem: string;
  csrPem: string;
  /** `base64 -w 0 spacelift.key`, from the base64 CLI. */
  keyB64: string;
}

/** The seed's `openssl req -new -newkey rsa:BITS -nodes -keyout spacelift.key -out spacelift.csr`. */
export function seedPoolKey(bits = 4096, name = 'spacelift'): PoolKey {
  const dir = new OpensslDir();
  const { key, csr } = dir.seedKeyAndCsr(name, bits);
  const keyPath = dir.path(`${name}.key`);
  const keyB64 = execFileSync('base64', ['-w', '0', keyPath], { encoding: 'utf8' });
  return { dir, keyPath, keyPem: key, csrPem: csr, keyB64 };
}

/** A token issued by a throwaway CA for a server that is not there (start-up tests). */
export function offlineToken(csrPem: string, serverUrl: string): string {
  const ca = createCertificateAuthority({ bits: 2048 });
  const cert = issuePoolCertificate(ca, csrPem, { poolId: 'pool_offline' });
  return encodeToken({ serverUrl, poolId: 'pool_offline', certificate: cert.certPem, caCertificate: ca.certPem });
}

export interface LauncherOptions {
  token: string;
  keyB64: string;
  stateDir: string;
  env?: Record<string, string>;
  args?: string[];
  /** Run this executable (e.g. the built dist/launcher-linux-x64) instead of launcher.ts from source. */
  executable?: string;
}

export class LauncherProcess {
  readonly child: ChildProcess;
  out = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<() => void> = [];

  constructor(child: ChildProcess) {
    this.child = child;
    const on = (b: Buffer) => {
      this.out += b.toString();
      for (const w of this.#waiters.splice(0)) w();
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => {
      for (const w of this.#waiters.splice(0)) w();
      resolve({ code, signal });
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first output line matching `re`; rejects after `ms` or on exit. */
  async waitFor(re: RegExp, ms = 60_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const line = this.out.split('\n').find((l) => re.test(l));
      if (line !== undefined) return line;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`Launcher exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${re}:\n${this.out}`);
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${re}:\n${this.out}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(1000, Math.max(1, deadline - Date.now())));
        this.#waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** Log lines as JSON objects (non-JSON lines skipped). */
  json(): Array<Record<string, unknown>> {
    return this.out.split('\n').flatMap((l) => {
      try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; }
    });
  }

  kill(sig: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(sig);
  }

  async exitCode(ms = 120_000): Promise<number | null> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), ms);
    const r = await this.exited;
    clearTimeout(t);
    return r.code;
  }
}

/** The environment every test launcher gets: test image, no network, quick timeouts. */
export function launcherEnv(o: LauncherOptions): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: o.stateDir,
    NO_COLOR: '1',
    SPACELIFT_TOKEN: o.token,
    SPACELIFT_POOL_PRIVATE_KEY: o.keyB64,
    SPACELIFT_LAUNCHER_STATE_DIR: o.stateDir,
    SPACELIFT_WORKER_NETWORK: 'none',
    SPACELIFT_DEFAULT_RUNNER_IMAGE: TEST_IMAGE,
    SPACELIFT_DEBUG: 'true',
    ...o.env,
  };
}

/** Starts `launcher run` from source as a subprocess. */
export function startLauncher(o: LauncherOptions): LauncherProcess {
  const [cmd, ...pre] = o.executable ? [o.executable] : [process.execPath, '--import', 'tsx', join(ROOT, 'launcher.ts')];
  const child = spawn(cmd!, [...pre, ...(o.args ?? ['run'])], {
    cwd: ROOT,
    env: launcherEnv(o),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new LauncherProcess(child);
}

/** Runs a launcher command to completion; returns exit code and all output. */
export async function runLauncher(o: LauncherOptions, ms = 120_000): Promise<{ code: number | null; out: string }> {
  const p = startLauncher(o);
  const code = await p.exitCode(ms);
  return { code, out: p.out };
}

export function tempDir(prefix = 'launcher-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}


// ---------------------------------------------------------------- the admin side

import type { TestServer } from './server.ts';
import { sealBuffer, sshRsaRecipient } from '../../lib/age/index.ts';
import { pack } from 'tar-stream';

/** Creates a pool from the CSR through the admin API; returns its id and token. */
export async function createPool(srv: TestServer, name: string, csrPem: string): Promise<{ poolId: string; token: string }> {
  const r = await srv.admin('POST', '/v1/pools', { name, csr: csrPem });
  if (r.status !== 201) throw new Error(`create pool: ${r.status} ${r.text}`);
  return { poolId: r.body.pool.id, token: r.body.token };
}

export interface PhaseDef { name: string; script: string; confirm?: boolean }

export async function createStack(srv: TestServer, body: { name: string; pool: string; phases: PhaseDef[]; env?: Record<string, string>; secretEnv?: string | null; image?: string }): Promise<string> {
  const r = await srv.admin('POST', '/v1/stacks', { image: TEST_IMAGE, ...body });
  if (r.status !== 201) throw new Error(`create stack: ${r.status} ${r.text}`);
  return r.body.stack.id;
}

export async function trigger(srv: TestServer, stack: string, o: { proposed?: boolean; workspace?: Buffer } = {}): Promise<string> {
  const r = await srv.admin('POST', `/v1/stacks/${stack}/runs`, { proposed: o.proposed ?? false, workspace: o.workspace ? o.workspace.toString('base64') : null });
  if (r.status !== 201) throw new Error(`trigger: ${r.status} ${r.text}`);
  return r.body.run.id;
}

export async function getRun(srv: TestServer, runId: string): Promise<any> {
  const r = await srv.admin('GET', `/v1/runs/${runId}`);
  if (r.status !== 200) throw new Error(`get run: ${r.status} ${r.text}`);
  return r.body.run;
}

/** Polls the run until `pred` holds (the server may be restarting: errors are retried). */
export async function waitRun(srv: TestServer, runId: string, pred: (run: any) => boolean, ms = 90_000): Promise<any> {
  const deadline = Date.now() + ms;
  let last: any;
  for (;;) {
    try {
      last = await getRun(srv, runId);
      if (pred(last)) return last;
    } catch { /* server restarting */ }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for run ${runId}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

export const ended = (run: any) => ['FINISHED', 'FAILED', 'CANCELED', 'DISCARDED'].includes(run.state);

export async function runLogs(srv: TestServer, runId: string, phase?: number): Promise<string> {
  const r = await srv.admin('GET', `/v1/runs/${runId}/logs${phase === undefined ? '' : `?phase=${phase}`}`);
  if (r.status !== 200) throw new Error(`logs: ${r.status} ${r.text}`);
  return r.text;
}

export async function workers(srv: TestServer, poolId: string): Promise<any[]> {
  const r = await srv.admin('GET', `/v1/workers?pool=${poolId}`);
  return r.body.workers;
}

/** Seals bytes to the pool key, as `launcher admin` does before anything leaves the admin's machine. */
export function sealToKey(data: Buffer | string, publicKeyPem: string): Promise<Buffer> {
  return sealBuffer(Buffer.from(data), [sshRsaRecipient(publicKeyPem)]);
}

/** A tar with the given files (relative names), as a trigger's workspace. */
export async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) p.entry({ name, mode: 0o644 }, body);
  p.finalize();
  const parts: Buffer[] = [];
  for await (const c of p) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Every file under `dir` whose bytes contain `needle`. */
export function filesContaining(dir: string, needle: string): string[] {
  const r = spawnSync('grep', ['-rl', '--binary-files=text', '-F', needle, dir], { encoding: 'utf8' });
  if (r.status === 2) throw new Error(`grep failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}
