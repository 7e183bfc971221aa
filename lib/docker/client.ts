// The Docker Engine API client: plain HTTP over the engine's unix socket with
// undici, nothing else. Every call is named ("create container", "pull image")
// so an engine error says which step failed along with the engine's own status
// and message. The API version is negotiated once, lazily, on the first call.
import { Pool, type Dispatcher } from 'undici';
import type { Duplex, Readable } from 'node:stream';
import { LauncherError, isLauncherError } from '../errors.ts';
import { parseDockerHost, type DockerEndpoint } from './host.ts';


/**
 * Oldest Engine API version we speak: 1.41 is Docker Engine 20.10, the engine
 * in Debian 12 and RHEL 8/9 derived distributions, and the first version with
 * cgroup v2 support and the `wait?condition=` semantics we rely on.
 */
export const MIN_API_VERSION = '1.41';
/** Newest version whose API documentation this client was checked against. */
export const MAX_API_VERSION = '1.47';

/** An Engine API failure; `status` is the engine's HTTP status when it answered. */
export class DockerError extends LauncherError {
  readonly status: number | undefined;
  readonly call: string;
  constructor(code: string, call: string, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause });
    this.name = 'DockerError';
    this.status = opts.status;
    this.call = call;
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof DockerError && e.status === 404;
}

/** Stable codes by HTTP status, so callers match on meaning rather than numbers. */
function codeForStatus(status: number): string {
  if (status === 404) return 'DOCKER_NOT_FOUND';
  if (status === 409) return 'DOCKER_CONFLICT';
  if (status === 401 || status === 403) return 'DOCKER_UNAUTHORIZED';
  if (status === 400) return 'DOCKER_BAD_REQUEST';
  return 'DOCKER_ENGINE_ERROR';
}

function versionNumber(v: string): number {
  const [maj, min] = v.split('.').map(Number);
  return (maj ?? 0) * 1000 + (min ?? 0);
}

export interface EngineInfo {
  apiVersion: string;
  engineVersion: string;
  engineApiVersion: string;
  engineMinApiVersion: string;
  os: string;
  arch: string;
}

/** Picks the version to speak, or explains why this engine cannot be used. Pure. */
export function negotiateVersion(engineApi: string, engineMinApi: string | undefined): string {
  if (versionNumber(engineApi) < versionNumber(MIN_API_VERSION)) {
    throw new DockerError('DOCKER_API_TOO_OLD', 'negotiate API version',
      `Docker Engine API ${engineApi} is too old: the launcher needs API ${MIN_API_VERSION} or newer (Docker Engine 20.10+)`);
  }
  const chosen = versionNumber(engineApi) < versionNumber(MAX_API_VERSION) ? engineApi : MAX_API_VERSION;
  if (engineMinApi !== undefined && versionNumber(engineMinApi) > versionNumber(chosen)) {
    throw new DockerError('DOCKER_API_TOO_NEW', 'negotiate API version',
      `Docker Engine accepts API ${engineMinApi} or newer but this launcher speaks at most ${MAX_API_VERSION}: upgrade the launcher`);
  }
  return chosen;
}

export interface RequestOptions {
  method?: Dispatcher.HttpMethod;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
  body?: string | Uint8Array | Readable | null;
  signal?: AbortSignal;
  /** Statuses that are not errors for this call (e.g. 304 for start). */
  okStatuses?: number[];
}

export interface DockerClientOptions {
  /** DOCKER_HOST value; default unix:///var/run/docker.sock. */
  host?: string;
  /** Skip negotiation and speak this version (tests, doctor). */
  apiVersion?: string;
}

export class DockerClient {
  readonly endpoint: DockerEndpoint;
  #pool: Pool;
  #ready: Promise<EngineInfo> | undefined;
  #apiVersion: string | undefined;

  constructor(opts: DockerClientOptions = {}) {
    this.endpoint = parseDockerHost(opts.host);
    this.#apiVersion = opts.apiVersion;
    // Several connections: an attach or a wait holds one for a phase's whole life.
    // No body/headers timeouts: waits and log streams last as long as the run;
    // the executor applies its own timeouts and aborts through signals.
    this.#pool = new Pool(this.endpoint.origin, {
      socketPath: this.endpoint.socketPath,
      connections: 16,
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 10_000,
    });
  }

  static fromEnv(env: Record<string, string | undefined>): DockerClient {
    return new DockerClient({ host: env.DOCKER_HOST });
  }

  /** The negotiated API version (negotiating on first use). */
  async apiVersion(): Promise<string> {
    if (this.#apiVersion) return this.#apiVersion;
    return (await this.engine()).apiVersion;
  }

  /** Engine version facts; negotiates the API version once and remembers it. */
  engine(): Promise<EngineInfo> {
    this.#ready ??= (async () => {
      const res = await this.#send('read engine version', { path: '/version' }, false);
      const v = await res.body.json() as { ApiVersion: string; MinAPIVersion?: string; Version: string; Os: string; Arch: string };
      const apiVersion = this.#apiVersion ?? negotiateVersion(v.ApiVersion, v.MinAPIVersion);
      this.#apiVersion = apiVersion;
      return { apiVersion, engineVersion: v.Version, engineApiVersion: v.ApiVersion, engineMinApiVersion: v.MinAPIVersion ?? '', os: v.Os, arch: v.Arch };
    })();
    this.#ready.catch(() => { this.#ready = undefined; });
    return this.#ready;
  }

  async ping(signal?: AbortSignal): Promise<void> {
    const res = await this.#send('ping', { path: '/_ping', ...(signal ? { signal } : {}) }, false);
    await res.body.dump();
  }

  /** One Engine API call; statuses ≥ 400 become a DockerError naming `call`. */
  async request(call: string, opts: RequestOptions): Promise<Dispatcher.ResponseData> {
    await this.apiVersion();
    return this.#send(call, opts, true);
  }

  async json<T>(call: string, opts: RequestOptions): Promise<T> {
    const res = await this.request(call, opts);
    const text = await res.body.text();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** A call whose body we do not need. */
  async call(call: string, opts: RequestOptions): Promise<number> {
    const res = await this.request(call, opts);
    await res.body.dump();
    return res.statusCode;
  }

  /**
   * An HTTP upgrade (the engine hijacks the connection), as `docker attach`
   * does: the socket is the raw multiplexed stream and ends when the container
   * exits. Resolves once the engine answered 101, i.e. once we are attached.
   */
  async upgrade(call: string, opts: RequestOptions): Promise<Duplex> {
    const version = await this.apiVersion();
    try {
      const { socket } = await this.#pool.upgrade({
        path: this.#path(opts, version),
        method: opts.method ?? 'POST',
        protocol: 'tcp',
        headers: opts.headers ?? {},
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return socket;
    } catch (e) {
      throw this.#wrap(call, e);
    }
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  #path(opts: RequestOptions, version: string | undefined): string {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    const q = qs.size > 0 ? `?${qs}` : '';
    return `${version ? `/v${version}` : ''}${opts.path}${q}`;
  }

  async #send(call: string, opts: RequestOptions, versioned: boolean): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#pool.request({
        path: this.#path(opts, versioned ? this.#apiVersion : undefined),
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        body: opts.body ?? null,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (e) {
      throw this.#wrap(call, e);
    }
    if (res.statusCode >= 400 && !(opts.okStatuses ?? []).includes(res.statusCode)) {
      const text = await res.body.text().catch(() => '');
      let msg = text.trim();
      try { msg = (JSON.parse(text) as { message?: string }).message ?? msg; } catch { /* plain text body */ }
      throw new DockerError(codeForStatus(res.statusCode), call, `Docker ${call} failed: ${res.statusCode} ${msg || 'no message from the engine'}`, { status: res.statusCode });
    }
    return res;
  }

  #wrap(call: string, e: unknown): unknown {
    // A request body that failed (a workspace archive refused mid-upload)
    // names the real fault; wrapping it as a transport error would hide it.
    if (isLauncherError(e)) return e;
    const err = e as { code?: string; name?: string; message?: string };
    if (err?.name === 'AbortError' || err?.code === 'UND_ERR_ABORTED' || err?.code === 'ABORT_ERR') {
      return new DockerError('DOCKER_ABORTED', call, `Docker ${call} was aborted`, { cause: e });
    }
    if (err?.code === 'ECONNREFUSED' || err?.code === 'ENOENT' || err?.code === 'EACCES') {
      return new DockerError('DOCKER_UNREACHABLE', call,
        `Cannot reach the Docker Engine at ${this.endpoint.host}: ${err.code} (is dockerd running and is DOCKER_HOST right? e.g. unix:///var/run/docker.sock)`, { cause: e });
    }
    return new DockerError('DOCKER_TRANSPORT', call, `Docker ${call} failed: ${err?.message ?? String(e)}`, { cause: e });
  }
}
