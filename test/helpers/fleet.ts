// One real server, one pool and the launchers a test starts against it, with
// everything cleaned up at the end: the setup the end-to-end tests (e2e,
// launcher-control, launcher-restart, terraform-e2e, terraform-recovery) used
// to copy into each file.
import { DockerClient } from '../../lib/docker/client.ts';
import { ensureTestImage, removeWorkerContainers } from './docker.ts';
import { createPool, runLogs, seedPoolKey, startLauncher, tempDir, type LauncherProcess, type PoolKey } from './launcher.ts';
import { startTestServer, type TestServer } from './server.ts';

export interface LaunchOptions {
  env?: Record<string, string>;
  /** SPACELIFT_METADATA_* tags. */
  metadata?: Record<string, string>;
  /** Another token (e.g. an old one after a reset); default the pool's. */
  token?: string;
  /** Reuse a state directory (a restart); default a fresh one. */
  stateDir?: string;
}

export interface FleetOptions {
  /** Makes sure the runner image the tests use exists; default the busybox test image. */
  image?: (docker: DockerClient) => Promise<unknown>;
  /** RSA size of the pool key; default 4096, as the seed makes it. */
  keyBits?: number;
  /** Extra `launcher server` flags (e.g. short leases). */
  serverArgs?: string[];
}

export class LauncherFleet {
  readonly docker = new DockerClient();
  srv!: TestServer;
  key!: PoolKey;
  pool!: { poolId: string; token: string };
  readonly launchers: LauncherProcess[] = [];
  readonly workerIds = new Set<string>();
  readonly #dirs: Array<{ remove(): void }> = [];
  readonly #name: string;
  readonly #o: FleetOptions;

  /** `name` names the pool and the temporary directories. */
  constructor(name: string, o: FleetOptions = {}) { this.#name = name; this.#o = o; }

  async start(): Promise<void> {
    await (this.#o.image ?? ensureTestImage)(this.docker);
    this.key = seedPoolKey(this.#o.keyBits ?? 4096);
    this.srv = await startTestServer(this.#o.serverArgs ? { args: this.#o.serverArgs } : {});
    this.pool = await createPool(this.srv, this.#name, this.key.csrPem);
  }

  /** A fresh directory (by default for a launcher's state), removed at close(). */
  stateDir(what = 'state'): string {
    const d = tempDir(`launcher-${this.#name}-${what}-`);
    this.#dirs.push(d);
    return d.path;
  }

  launch(o: LaunchOptions = {}): LauncherProcess {
    const tags = Object.fromEntries(Object.entries(o.metadata ?? {}).map(([k, v]) => [`SPACELIFT_METADATA_${k}`, v]));
    const l = startLauncher({ token: o.token ?? this.pool.token, keyB64: this.key.keyB64, stateDir: o.stateDir ?? this.stateDir(), env: { ...tags, ...o.env } });
    this.launchers.push(l);
    return l;
  }

  /** The worker id the launcher registered as (its containers are removed at close()). */
  async registered(l: LauncherProcess): Promise<string> {
    const id = (JSON.parse(await l.waitFor(/Registered with the server/)) as { workerId: string }).workerId;
    this.workerIds.add(id);
    return id;
  }

  /** Waits until the run's stored logs match `re` (the server has them, not just the container). */
  async waitLogs(runId: string, re: RegExp, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!re.test(await runLogs(this.srv, runId).catch(() => ''))) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${re} in the logs of ${runId}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM to every launcher started so far, and wait for each to exit. */
  async stopAll(): Promise<void> {
    for (const l of this.launchers.splice(0)) { l.kill('SIGTERM'); await l.exitCode(60_000); }
  }

  async close(): Promise<void> {
    await this.stopAll();
    for (const id of this.workerIds) await removeWorkerContainers(this.docker, id).catch(() => {});
    await this.srv?.stop();
    this.key?.dir.cleanup();
    for (const d of this.#dirs) d.remove();
    await this.docker.close();
  }
}
