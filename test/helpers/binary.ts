// The set-up every end-to-end test of the built executable shares: its server
// on a free loopback port, a pool from an openssl key, a launcher joined to it
// as the seed configures one, the admin API with the data directory's token,
// the admin CLI, and waiting for a run to reach a state. The binary, Git and console e2e tests
// each had their own copy of these steps.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForOutput, type Started } from './processes.ts';
import { httpsRequest, opensslCsr, type HttpResult } from './server.ts';

/** Starts the binary with `args` and `env` (a test file's `started`, which records the child for clean-up). */
export type Start = (args: string[], env?: Record<string, string>) => Started;

export interface BinaryServer {
  process: Started;
  url: string;
  data: string;
  adminToken: string;
  /** The server's CA certificate (PEM), to pin it. */
  ca: string;
  /** A call to the admin API with the data directory's admin token. */
  api<T = any>(method: string, path: string, body?: unknown): Promise<HttpResult<T>>;
}

/** `launcher server --data DATA` on a free loopback port; resolves once it listens, with its URL. */
export async function startBinaryServer(start: Start, data: string, args: string[] = []): Promise<BinaryServer> {
  const proc = start(['server', '--data', data, '--listen', '127.0.0.1:0', ...args]);
  const url = (await waitForOutput(proc, /"msg":"Server listening","url":"(https:\/\/127\.0\.0\.1:\d+)"/, 'server'))[1]!;
  const adminToken = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  const ca = readFileSync(join(data, 'ca.crt'), 'utf8');
  return {
    process: proc, url, data, adminToken, ca,
    api: (method, path, body) => httpsRequest(url, method, path, { ca, headers: { authorization: `Bearer ${adminToken}` }, body }),
  };
}

/** A pool `name` created over the admin API from a key and CSR made by the seed's openssl command in `dir` (spacelift.key, 2048 bits). */
export async function createPool(server: BinaryServer, dir: string, name: string): Promise<{ id: string; token: string; keyPath: string }> {
  const { keyPath, csrPem } = opensslCsr(dir, 'spacelift');
  const created = await server.api('POST', '/v1/pools', { name, csr: csrPem });
  if (created.status !== 201) throw new Error(`Cannot create the pool ${name}: ${created.status} ${created.text}`);
  return { id: created.body.pool.id, token: created.body.token, keyPath };
}

/**
 * `launcher` for a pool, configured as the seed says (the token, the key file
 * base64-encoded), its state in `stateDir` and run containers on no network;
 * resolves once it has registered. `env` adds or overrides variables.
 */
export async function startBinaryLauncher(start: Start, o: { token: string; keyPath: string; stateDir: string; env?: Record<string, string> }): Promise<Started> {
  const launcher = start([], {
    SPACELIFT_TOKEN: o.token,
    SPACELIFT_POOL_PRIVATE_KEY: readFileSync(o.keyPath).toString('base64'),
    SPACELIFT_LAUNCHER_STATE_DIR: o.stateDir,
    SPACELIFT_WORKER_NETWORK: 'none',
    ...o.env,
  });
  await waitForOutput(launcher, /Registered with the server/, 'launcher');
  return launcher;
}

export interface AdminCli {
  /** `launcher admin ARGS` as a person reads it; throws with its stderr when it fails. */
  text(args: string[], input?: string): string;
  /** `launcher admin ARGS --json`, parsed. */
  json(args: string[], input?: string): any;
}

/** The binary's admin CLI against a server and its data directory (for the admin token). */
export function adminCli(binary: string, server: Pick<BinaryServer, 'data' | 'url'>): AdminCli {
  const text = (args: string[], input?: string): string => {
    const r = spawnSync(binary, ['admin', ...args, '--data', server.data, '--server', server.url], { encoding: 'utf8', timeout: 60_000, ...(input !== undefined ? { input } : {}) });
    if (r.status !== 0) throw new Error(`admin ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
  return { text, json: (args, input) => JSON.parse(text([...args, '--json'], input)) };
}

/** Polls `admin run show` until the run is in one of `states`; fails at once when it ends in another. */
export async function waitRunState(admin: AdminCli, runId: string, states: string[], ms = 120_000): Promise<any> {
  const deadline = Date.now() + ms;
  for (;;) {
    const answer = admin.json(['run', 'show', runId]);
    const run = answer.run ?? answer;
    if (states.includes(run.state)) return run;
    if (['FAILED', 'CANCELED', 'DISCARDED'].includes(run.state) || Date.now() > deadline) {
      throw new Error(`run ${runId} is ${run.state}, waiting for ${states.join('/')}: ${JSON.stringify(run)}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}
