// Copying files into and out of a container as tar streams (the engine's
// archive endpoints). Bodies stream through: a workspace is never held whole
// in memory.
import type { Readable } from 'node:stream';
import type { DockerClient } from './client.ts';

/** Extracts `tar` into directory `path` of the container (which must exist in the image or be created by the engine). */
export async function putArchive(docker: DockerClient, id: string, path: string, tar: Readable, signal?: AbortSignal): Promise<void> {
  await docker.call('copy into container', {
    method: 'PUT',
    path: `/containers/${id}/archive`,
    query: { path, noOverwriteDirNonDir: true },
    headers: { 'Content-Type': 'application/x-tar' },
    body: tar,
    ...(signal ? { signal } : {}),
  });
}

/**
 * A tar of `path` inside the container. The engine names entries after the
 * last path element (`workspace/…` for `/workspace`); see workspace.ts for
 * rebasing them.
 */
export async function getArchive(docker: DockerClient, id: string, path: string, signal?: AbortSignal): Promise<Readable> {
  const res = await docker.request('copy from container', {
    path: `/containers/${id}/archive`,
    query: { path },
    ...(signal ? { signal } : {}),
  });
  return res.body;
}
