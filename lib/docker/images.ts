// Images: inspect, pull (with progress and registry credentials), import from
// a rootfs tar, tag, push and remove. Pull, import and push answer 200 and then
// report failures inside their JSON-lines progress stream, so the stream is
// read to the end and an `error` line becomes a DockerError like any other.
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { DockerError, isNotFound, type DockerClient } from './client.ts';
import { imageRegistry } from './auth.ts';

export interface ImageInfo {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Config?: { Env?: string[]; WorkingDir?: string; Entrypoint?: string[] | null; Cmd?: string[] | null };
}

/** Image references go into URL paths; keep their slashes, escape the rest. */
export function encodeRef(ref: string): string {
  return ref.split('/').map(encodeURIComponent).join('/');
}

/** `busybox` → `busybox:latest`; references with a tag or digest stay as they are. */
export function withDefaultTag(image: string): string {
  if (image.includes('@')) return image;
  const lastSlash = image.lastIndexOf('/');
  return image.slice(lastSlash + 1).includes(':') ? image : `${image}:latest`;
}

export async function inspectImage(docker: DockerClient, image: string): Promise<ImageInfo | undefined> {
  try {
    return await docker.json<ImageInfo>(`inspect image ${image}`, { path: `/images/${encodeRef(image)}/json` });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

interface ProgressLine {
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: unknown;
}

/** Reads a JSON-lines progress body; calls onLine per message; throws on an `error` line. */
async function readProgress(call: string, res: Dispatcher.ResponseData, onLine?: (p: ProgressLine) => void): Promise<ProgressLine[]> {
  const seen: ProgressLine[] = [];
  let buf = '';
  const handle = (line: string) => {
    if (line.trim() === '') return;
    let p: ProgressLine;
    try { p = JSON.parse(line) as ProgressLine; } catch { return; }
    if (p.error !== undefined || p.errorDetail?.message !== undefined) {
      throw new DockerError('DOCKER_ENGINE_ERROR', call, `Docker ${call} failed: ${p.errorDetail?.message ?? p.error}`);
    }
    if (seen.length < 64) seen.push(p);
    onLine?.(p);
  };
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      handle(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  handle(buf);
  return seen;
}

/** Progress bars update many times a second; only state changes reach the log. */
function progressText(p: ProgressLine): string | undefined {
  if (!p.status || p.status === 'Downloading' || p.status === 'Extracting' || p.status === 'Waiting') return undefined;
  return p.id ? `${p.id}: ${p.status}` : p.status;
}

export interface PullOptions {
  /** X-Registry-Auth header value (see auth.ts). */
  registryAuth?: string;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export async function pullImage(docker: DockerClient, image: string, opts: PullOptions = {}): Promise<void> {
  const ref = withDefaultTag(image);
  const call = `pull image ${ref}`;
  try {
    const res = await docker.request(call, {
      method: 'POST',
      path: '/images/create',
      query: { fromImage: ref },
      headers: opts.registryAuth ? { 'X-Registry-Auth': opts.registryAuth } : {},
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await readProgress(call, res, (p) => {
      const t = progressText(p);
      if (t !== undefined) opts.onProgress?.(t);
    });
  } catch (e) {
    throw explainPullError(e, ref, opts.registryAuth !== undefined);
  }
}

/** Registry refusals read like engine internals; say what the user can fix. */
function explainPullError(e: unknown, ref: string, hadCredentials: boolean): unknown {
  if (!(e instanceof DockerError)) return e;
  if (/unauthorized|no basic auth credentials|authentication required|denied/i.test(e.message)) {
    const registry = imageRegistry(ref);
    const hint = hadCredentials
      ? `the credentials for ${registry} in SPACELIFT_DOCKER_CONFIG_DIR/config.json were refused`
      : `no credentials for ${registry} (add them to "auths" in SPACELIFT_DOCKER_CONFIG_DIR/config.json)`;
    return new DockerError('DOCKER_PULL_UNAUTHORIZED', e.call, `${e.message}: ${hint}`, { ...(e.status !== undefined ? { status: e.status } : {}), cause: e });
  }
  return e;
}

/** Imports a rootfs tar as `repo:tag` (`POST /images/create?fromSrc=-`); returns the image id. */
export async function importImage(docker: DockerClient, tar: Readable, repo: string, tag = 'latest'): Promise<string> {
  const call = `import image ${repo}:${tag}`;
  const res = await docker.request(call, {
    method: 'POST',
    path: '/images/create',
    query: { fromSrc: '-', repo, tag },
    headers: { 'Content-Type': 'application/x-tar' },
    body: tar,
  });
  const lines = await readProgress(call, res);
  return lines.map((l) => l.status ?? '').find((s) => s.startsWith('sha256:')) ?? '';
}

export async function tagImage(docker: DockerClient, image: string, repo: string, tag: string): Promise<void> {
  await docker.call(`tag image ${image}`, { method: 'POST', path: `/images/${encodeRef(image)}/tag`, query: { repo, tag } });
}

export async function pushImage(docker: DockerClient, repo: string, tag: string, registryAuth: string): Promise<void> {
  const call = `push image ${repo}:${tag}`;
  const res = await docker.request(call, {
    method: 'POST',
    path: `/images/${encodeRef(repo)}/push`,
    query: { tag },
    headers: { 'X-Registry-Auth': registryAuth },
  });
  await readProgress(call, res);
}

/** Removes an image; a missing image counts as removed. */
export async function removeImage(docker: DockerClient, image: string): Promise<void> {
  try {
    await docker.call(`remove image ${image}`, { method: 'DELETE', path: `/images/${encodeRef(image)}`, query: { force: true, noprune: false } });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}
