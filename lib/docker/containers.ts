// Containers: the calls one phase needs, each a thin named wrapper over the
// Engine API so errors say which step failed. "Not found" on kill and remove is
// success: the container is already gone, which is what the caller wanted.
import type { Duplex, Readable } from 'node:stream';
import { DockerError, isNotFound, type DockerClient } from './client.ts';

export interface Mount {
  Type: 'bind';
  Source: string;
  Target: string;
  ReadOnly?: boolean;
}

/** The subset of the create body the launcher sets (see the Engine API's ContainerConfig). */
export interface ContainerSpec {
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[] | null;
  Env?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
  User?: string;
  Tty?: boolean;
  OpenStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  HostConfig?: {
    NetworkMode?: string;
    Runtime?: string;
    Mounts?: Mount[];
    Init?: boolean;
    AutoRemove?: boolean;
    LogConfig?: { Type: string; Config?: Record<string, string> };
  };
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  OOMKilled: boolean;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
}

export interface ContainerInfo {
  Id: string;
  Name: string;
  State: ContainerState;
  Config: { Labels: Record<string, string> | null; Env: string[] | null; WorkingDir: string; Image: string };
  HostConfig: { NetworkMode: string; Runtime: string; Mounts?: Mount[] | null; Init?: boolean | null };
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Status: string;
  Labels: Record<string, string>;
  Created: number;
}

export async function createContainer(docker: DockerClient, name: string, spec: ContainerSpec): Promise<string> {
  const r = await docker.json<{ Id: string; Warnings?: string[] }>('create container', {
    method: 'POST',
    path: '/containers/create',
    query: { name },
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(spec),
  });
  return r.Id;
}

export async function startContainer(docker: DockerClient, id: string): Promise<void> {
  // 304: already started, which is the state we asked for.
  await docker.call('start container', { method: 'POST', path: `/containers/${id}/start`, okStatuses: [304] });
}

/**
 * Attaches to stdout and stderr. Done before start, nothing the container
 * prints can be missed, however quickly it exits. The socket carries the
 * multiplexed stream (see stream.ts) and ends when the container stops.
 */
export async function attachContainer(docker: DockerClient, id: string, signal?: AbortSignal): Promise<Duplex> {
  try {
    return await docker.upgrade('attach to container', {
      method: 'POST',
      path: `/containers/${id}/attach`,
      query: { stream: 1, stdout: 1, stderr: 1 },
      ...(signal ? { signal } : {}),
    });
  } catch (e) {
    // A refused upgrade hides the engine's answer; ask again in a form that shows it.
    if (e instanceof DockerError && e.code === 'DOCKER_TRANSPORT') {
      await docker.call('attach to container', { path: `/containers/${id}/json` });
    }
    throw e;
  }
}

/** The container's logs as a multiplexed stream; with follow it lasts until the container stops. */
export async function containerLogs(docker: DockerClient, id: string, opts: { follow: boolean; signal?: AbortSignal; timestamps?: boolean; since?: string }): Promise<Readable> {
  const res = await docker.request('read container logs', {
    path: `/containers/${id}/logs`,
    query: {
      stdout: 1, stderr: 1, follow: opts.follow ? 1 : 0,
      // Each entry prefixed with its timestamp; `since` (seconds.nanoseconds) includes entries at that instant.
      ...(opts.timestamps ? { timestamps: 1 } : {}),
      ...(opts.since ? { since: opts.since } : {}),
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return res.body;
}

/** Waits until the container is not running; resolves to its exit code. */
export async function waitContainer(docker: DockerClient, id: string, signal?: AbortSignal): Promise<number> {
  const r = await docker.json<{ StatusCode: number; Error?: { Message?: string } | null }>('wait for container', {
    method: 'POST',
    path: `/containers/${id}/wait`,
    query: { condition: 'not-running' },
    ...(signal ? { signal } : {}),
  });
  if (r.Error?.Message) throw new DockerError('DOCKER_ENGINE_ERROR', 'wait for container', `Docker wait for container failed: ${r.Error.Message}`);
  return r.StatusCode;
}

/** Sends a signal; a container that is gone or no longer running is not an error. */
export async function killContainer(docker: DockerClient, id: string, signal: string): Promise<void> {
  try {
    await docker.call(`kill container (${signal})`, { method: 'POST', path: `/containers/${id}/kill`, query: { signal }, okStatuses: [409] });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

/** Force-removes a container and its anonymous volumes; "not found" is success. */
export async function removeContainer(docker: DockerClient, id: string, signal?: AbortSignal): Promise<void> {
  try {
    // 409 "removal already in progress": someone else is doing our job.
    await docker.call('remove container', {
      method: 'DELETE', path: `/containers/${id}`, query: { force: 1, v: 1 }, okStatuses: [409],
      ...(signal ? { signal } : {}),
    });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

export async function inspectContainer(docker: DockerClient, id: string): Promise<ContainerInfo | undefined> {
  try {
    return await docker.json<ContainerInfo>('inspect container', { path: `/containers/${id}/json` });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** All containers (running or not) carrying every given label; `true` means "has the label". */
export async function listContainers(docker: DockerClient, labels: Record<string, string | true>): Promise<ContainerSummary[]> {
  const label = Object.entries(labels).map(([k, v]) => (v === true ? k : `${k}=${v}`));
  return docker.json<ContainerSummary[]>('list containers', {
    path: '/containers/json',
    query: { all: 1, filters: JSON.stringify({ label }) },
  });
}
