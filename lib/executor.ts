// The executor: one phase = one fresh container. Pull if needed, create with
// our labels, fill /workspace from a tar stream, attach before start (so an
// instant exit loses nothing), stream demultiplexed output to the caller, stop
// on the logs timeout, the run timeout or cancellation (SIGTERM, a grace
// period, SIGKILL), read the workspace back, and always remove the container.
//
// The result separates the user's failure (the script's exit code) from a
// system failure (pull, engine, workspace transfer), and names the timeout or
// the cancellation that stopped a phase. Masking is the caller's business: the
// executor hands over raw bytes through onOutput.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { DockerError, type DockerClient } from './docker/client.ts';
import { inspectImage, pullImage } from './docker/images.ts';
import {
  attachContainer, containerLogs, createContainer, inspectContainer, killContainer,
  listContainers, removeContainer, startContainer, waitContainer, type ContainerSpec, type Mount,
} from './docker/containers.ts';
import { getArchive, putArchive } from './docker/archive.ts';
import { Demuxer, type StdStream } from './docker/stream.ts';
import { dockerSince, resumeFrames } from './docker/logs.ts';
import { safeArchive } from './workspace.ts';
import { isLauncherError } from './errors.ts';
import type { ReportableOutcome } from './protocol.ts';

/** Every container the launcher creates carries labels under this prefix. */
export const LABEL_PREFIX = 'io.spacelift.launcher.';
export const LABELS = {
  managed: `${LABEL_PREFIX}managed`,
  runId: `${LABEL_PREFIX}run-id`,
  phase: `${LABEL_PREFIX}phase`,
  workerId: `${LABEL_PREFIX}worker-id`,
} as const;

export const DEFAULT_WORKING_DIR = '/workspace';
export const DEFAULT_KILL_GRACE_MS = 10_000;
export const DEFAULT_CLEANUP_TIMEOUT_MS = 30_000;

export type PullPolicy = 'if-not-present' | 'always';
/** A phase's result as the launcher reports it (the wire's reportable outcomes). */
export type PhaseOutcome = ReportableOutcome;

export interface PhaseMount {
  hostPath: string;
  containerPath: string;
  readOnly?: boolean;
}

export interface PhaseOutputOptions {
  /** Raw output bytes in the order the container wrote them. */
  onOutput: (chunk: Uint8Array, stream: StdStream) => void;
  /** Nothing printed for this long → stop (SIGTERM, grace, SIGKILL). */
  logsTimeoutMs: number;
  /** The phase ran longer than this since its container started → stop. */
  runTimeoutMs: number;
  /** Between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  /** Bound on removing the container, which also runs after cancellation. */
  cleanupTimeoutMs?: number;
  signal?: AbortSignal;
  /** Receives the workspace as a tar (relative names) after a run that exited by itself. */
  workspaceOut?: (tar: Readable) => Promise<void>;
  /**
   * Runs after the container stopped for any reason it was supervised through
   * (exit, failure, timeout, cancel) and before it is removed: the last chance
   * to read files from it (a tool's partial state). Must not throw.
   */
  collect?: (containerId: string, outcome: PhaseOutcome) => Promise<void>;
  workingDir?: string;
}

export interface PhaseSpec extends PhaseOutputOptions {
  runId: string;
  phase: string;
  workerId: string;
  image: string;
  script: string;
  /** The container's whole environment (phase env plus whitelisted launcher variables). */
  env: Record<string, string>;
  /** Read-only (proposed) run; recorded in a label, the caller picks mounts and env by it. */
  readOnly: boolean;
  /** A fresh tar stream of the workspace to restore before start. */
  workspaceIn?: () => Readable;
  /** More files to put into the working directory after the workspace (e.g. a tool's state). */
  extraIn?: () => Readable;
  mounts?: PhaseMount[];
  network?: string;
  runtime?: string;
  pullPolicy?: PullPolicy;
  /** X-Registry-Auth header for this image's registry (see docker/auth.ts). */
  registryAuth?: string;
  onPullProgress?: (line: string) => void;
}

export interface PhaseResult {
  outcome: PhaseOutcome;
  exitCode?: number;
  error?: { code: string; message: string };
  containerId?: string;
}

export interface ExecutorDeps {
  docker: DockerClient;
  /** The launcher's own log lines (never the run's output). */
  log?: (message: string) => void;
  now?: () => number;
}

/** `[a-zA-Z0-9][a-zA-Z0-9_.-]*` is all the engine accepts in a name. */
function nameSafe(s: string, max: number): string {
  const t = s.replace(/[^a-zA-Z0-9_.-]+/g, '-').replace(/^[^a-zA-Z0-9]+/, '').slice(0, max);
  return t || 'x';
}

/** A unique name that says which run and phase the container belongs to. */
export function containerName(runId: string, phase: string): string {
  return `launcher-${nameSafe(runId, 64)}-${nameSafe(phase, 32)}-${randomBytes(3).toString('hex')}`;
}

/** The create body for a phase (pure, so tests can read what we ask of the engine). */
export function containerSpec(spec: PhaseSpec): ContainerSpec {
  const mounts: Mount[] = (spec.mounts ?? []).map((m) => ({
    Type: 'bind', Source: m.hostPath, Target: m.containerPath, ReadOnly: m.readOnly === true,
  }));
  return {
    Image: spec.image,
    Entrypoint: ['sh', '-c'],
    Cmd: [spec.script],
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: spec.workingDir ?? DEFAULT_WORKING_DIR,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    Labels: {
      [LABELS.managed]: 'true',
      [LABELS.runId]: spec.runId,
      [LABELS.phase]: spec.phase,
      [LABELS.workerId]: spec.workerId,
      [`${LABEL_PREFIX}read-only`]: String(spec.readOnly),
    },
    HostConfig: {
      NetworkMode: spec.network ?? 'bridge',
      ...(spec.runtime ? { Runtime: spec.runtime } : {}),
      Mounts: mounts,
      // A tiny init as PID 1 forwards SIGTERM to the script: a shell as PID 1
      // ignores it, which would turn every stop into a SIGKILL after the grace.
      Init: true,
    },
  };
}

/** Host paths of bind mounts must exist: the engine would otherwise fail late or create root-owned dirs. */
export function checkMounts(mounts: PhaseMount[]): void {
  for (const m of mounts) {
    try {
      statSync(m.hostPath);
    } catch {
      throw new DockerError('MOUNT_HOST_PATH_MISSING', 'check mounts',
        `Extra mount ${m.hostPath}:${m.containerPath} is unusable: host path ${m.hostPath} does not exist (create it or fix SPACELIFT_WORKER_*EXTRA_MOUNTS)`);
    }
  }
}

function errorOf(e: unknown): { code: string; message: string } {
  if (isLauncherError(e)) return { code: e.code, message: e.message };
  return { code: 'EXECUTOR_ERROR', message: e instanceof Error ? e.message : String(e) };
}

class Canceled extends Error {}

/** Runs one phase in a fresh container; never throws for engine or script failures. */
export async function runPhase(spec: PhaseSpec, deps: ExecutorDeps): Promise<PhaseResult> {
  const { docker } = deps;
  const log = deps.log ?? (() => {});
  let containerId: string | undefined;
  const throwIfCanceled = () => { if (spec.signal?.aborted) throw new Canceled(); };
  try {
    throwIfCanceled();
    checkMounts(spec.mounts ?? []);
    await ensureImage(docker, spec, log);
    throwIfCanceled();
    containerId = await createContainer(docker, containerName(spec.runId, spec.phase), containerSpec(spec));
    if (spec.workspaceIn) {
      await putArchive(docker, containerId, spec.workingDir ?? DEFAULT_WORKING_DIR, safeArchive(spec.workspaceIn()), spec.signal);
    }
    if (spec.extraIn) {
      await putArchive(docker, containerId, spec.workingDir ?? DEFAULT_WORKING_DIR, spec.extraIn(), spec.signal);
    }
    throwIfCanceled();
    const output = await attachContainer(docker, containerId, spec.signal);
    try {
      await startContainer(docker, containerId);
    } catch (e) {
      output.destroy();
      throw e;
    }
    const now = deps.now ?? Date.now;
    const r = await supervise(docker, containerId, output, 0, spec, now(), now, log);
    return await finish(docker, containerId, r, spec);
  } catch (e) {
    if (e instanceof Canceled || (spec.signal?.aborted && e instanceof DockerError && e.code === 'DOCKER_ABORTED')) {
      return { outcome: 'canceled', ...(containerId ? { containerId } : {}) };
    }
    return { outcome: 'system-error', error: errorOf(e), ...(containerId ? { containerId } : {}) };
  } finally {
    if (containerId) await cleanup(docker, containerId, spec.cleanupTimeoutMs ?? DEFAULT_CLEANUP_TIMEOUT_MS, log);
  }
}

export interface ResumeOptions extends PhaseOutputOptions {
  /** Output bytes (both streams together) already shipped before the restart. */
  skipBytes?: number;
  /** Read the log from this entry on, not from the start (lib/launcher/logcheckpoint.ts): entries at or after `since`, the first `skipEntries` dropped. */
  logsFrom?: { since: string; skipEntries: number };
}

/**
 * Picks up a phase container after the launcher restarted (kill -9): follows
 * its logs from the start (skipping what was already shipped), or collects the
 * logs and exit code of one that already exited, then finishes it like
 * runPhase: timeouts, workspace read-back, removal.
 */
export async function resumePhase(containerId: string, opts: ResumeOptions, deps: ExecutorDeps): Promise<PhaseResult> {
  const { docker } = deps;
  const log = deps.log ?? (() => {});
  const now = deps.now ?? Date.now;
  try {
    const info = await inspectContainer(docker, containerId);
    if (!info) {
      return { outcome: 'system-error', containerId, error: { code: 'CONTAINER_GONE', message: `Cannot resume phase: container ${containerId} no longer exists` } };
    }
    const started = Date.parse(info.State.StartedAt);
    const from = opts.logsFrom;
    const logs = await containerLogs(docker, containerId, {
      follow: true, ...(opts.signal ? { signal: opts.signal } : {}),
      ...(from ? { timestamps: true, since: dockerSince(from.since) } : {}),
    });
    const output = from ? logs.pipe(resumeFrames(from.skipEntries)) : logs;
    if (from) logs.on('error', (e) => output.destroy(e));
    const r = await supervise(docker, containerId, output, opts.skipBytes ?? 0, opts, Number.isNaN(started) ? now() : started, now, log);
    return await finish(docker, containerId, r, opts);
  } catch (e) {
    if (opts.signal?.aborted) return { outcome: 'canceled', containerId };
    return { outcome: 'system-error', error: errorOf(e), containerId };
  } finally {
    await cleanup(docker, containerId, opts.cleanupTimeoutMs ?? DEFAULT_CLEANUP_TIMEOUT_MS, log);
  }
}

async function ensureImage(docker: DockerClient, spec: PhaseSpec, log: (m: string) => void): Promise<void> {
  if ((spec.pullPolicy ?? 'if-not-present') === 'if-not-present' && await inspectImage(docker, spec.image)) return;
  log(`Pulling image ${spec.image}`);
  await pullImage(docker, spec.image, {
    ...(spec.registryAuth ? { registryAuth: spec.registryAuth } : {}),
    onProgress: (l) => spec.onPullProgress?.(l),
    ...(spec.signal ? { signal: spec.signal } : {}),
  });
}

interface Supervised {
  outcome: PhaseOutcome;
  exitCode: number;
}

/**
 * Delivers the output stream and waits for the exit code, enforcing both
 * timeouts and cancellation. Resolves only once every output byte was handed
 * to onOutput.
 */
async function supervise(
  docker: DockerClient, id: string, output: Readable, skipBytes: number,
  opts: PhaseOutputOptions, startedAt: number, now: () => number, log: (m: string) => void,
): Promise<Supervised> {
  let stopReason: PhaseOutcome | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const grace = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const stop = (reason: PhaseOutcome) => {
    if (stopReason) return;
    stopReason = reason;
    log(`Stopping container ${id.slice(0, 12)}: ${reason} (SIGTERM, then SIGKILL after ${grace} ms)`);
    killContainer(docker, id, 'SIGTERM').catch((e) => log(`Sending SIGTERM failed: ${(e as Error).message}`));
    killTimer = setTimeout(() => {
      killContainer(docker, id, 'SIGKILL').catch((e) => log(`Sending SIGKILL failed: ${(e as Error).message}`));
    }, grace);
  };

  const logsTimer = setTimeout(() => stop('logs-timeout'), opts.logsTimeoutMs);
  const runTimer = setTimeout(() => stop('run-timeout'), Math.max(0, startedAt + opts.runTimeoutMs - now()));
  const onAbort = () => stop('canceled');
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort);

  let skip = skipBytes;
  const demux = new Demuxer((chunk, stream) => {
    if (skip > 0) {
      if (chunk.length <= skip) { skip -= chunk.length; return; }
      chunk = chunk.subarray(skip);
      skip = 0;
    }
    opts.onOutput(chunk, stream);
  });

  try {
    const delivered = new Promise<void>((resolve, reject) => {
      output.on('data', (c: Uint8Array) => {
        logsTimer.refresh();
        demux.push(c);
      });
      output.once('end', resolve);
      output.once('close', resolve);
      output.once('error', (e) => (stopReason ? resolve() : reject(e)));
    });
    // The wait must not be aborted by the caller's signal: after a cancel we
    // still want the container to die and its output to drain.
    const [, exitCode] = await Promise.all([delivered, waitContainer(docker, id)]);
    return { outcome: stopReason ?? (exitCode === 0 ? 'succeeded' : 'failed'), exitCode };
  } finally {
    clearTimeout(logsTimer);
    clearTimeout(runTimer);
    if (killTimer) clearTimeout(killTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    output.destroy();
  }
}

/** Reads the workspace back after a phase that exited by itself, and builds the result. */
async function finish(docker: DockerClient, id: string, r: Supervised, opts: PhaseOutputOptions): Promise<PhaseResult> {
  const result: PhaseResult = { outcome: r.outcome, exitCode: r.exitCode, containerId: id };
  if (r.outcome === 'logs-timeout' || r.outcome === 'run-timeout') {
    const which = r.outcome === 'logs-timeout'
      ? `logs timeout: nothing printed for ${opts.logsTimeoutMs} ms (SPACELIFT_LAUNCHER_LOGS_TIMEOUT)`
      : `run timeout: ran longer than ${opts.runTimeoutMs} ms (SPACELIFT_LAUNCHER_RUN_TIMEOUT)`;
    result.error = { code: r.outcome === 'logs-timeout' ? 'LOGS_TIMEOUT' : 'RUN_TIMEOUT', message: `Phase stopped by the ${which}` };
  }
  if (opts.collect) await opts.collect(id, r.outcome).catch(() => {});
  if ((r.outcome === 'succeeded' || r.outcome === 'failed') && opts.workspaceOut) {
    const dir = opts.workingDir ?? DEFAULT_WORKING_DIR;
    try {
      const raw = await getArchive(docker, id, dir, opts.signal);
      const safe = safeArchive(raw, { stripPrefix: posix.basename(dir) });
      try {
        await opts.workspaceOut(safe);
      } finally {
        // A consumer that failed without reading to the end (an upload refused
        // up front) would leave the engine's response unread: its connection
        // stays taken for good, and DockerClient.close() never returns.
        safe.destroy();
        raw.destroy();
      }
    } catch (e) {
      const err = errorOf(e);
      // An archive the script made unsafe is the run's fault; a failed copy is ours.
      return { ...result, outcome: err.code === 'WORKSPACE_UNSAFE' ? 'failed' : 'system-error', error: err };
    }
  }
  return result;
}

async function cleanup(docker: DockerClient, id: string, timeoutMs: number, log: (m: string) => void): Promise<void> {
  try {
    await removeContainer(docker, id, AbortSignal.timeout(timeoutMs));
  } catch (e) {
    log(`Removing container ${id.slice(0, 12)} failed (it will be removed as a leftover at next start): ${(e as Error).message}`);
  }
}

export interface ManagedContainer {
  id: string;
  name: string;
  runId: string;
  phase: string;
  workerId: string;
  state: string;
  created: number;
}

/** Containers this launcher created (optionally one worker's or one run's), running or not. */
export async function listManagedContainers(docker: DockerClient, filter: { workerId?: string; runId?: string } = {}): Promise<ManagedContainer[]> {
  const labels: Record<string, string | true> = { [LABELS.managed]: 'true' };
  if (filter.workerId !== undefined) labels[LABELS.workerId] = filter.workerId;
  if (filter.runId !== undefined) labels[LABELS.runId] = filter.runId;
  const list = await listContainers(docker, labels);
  return list.map((c) => ({
    id: c.Id,
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    runId: c.Labels[LABELS.runId] ?? '',
    phase: c.Labels[LABELS.phase] ?? '',
    workerId: c.Labels[LABELS.workerId] ?? '',
    state: c.State,
    created: c.Created,
  }));
}

/** Removes every container of this worker left by an earlier launcher process; returns their ids. */
export async function removeLeftovers(docker: DockerClient, workerId: string, log?: (m: string) => void): Promise<string[]> {
  const list = await listManagedContainers(docker, { workerId });
  await removeManagedContainers(docker, list, log);
  return list.map((c) => c.id);
}

/**
 * Removes the given containers at once (not one after another), each bounded by
 * the cleanup timeout; a failure is logged, never thrown: the next start lists
 * the container again.
 */
export async function removeManagedContainers(docker: DockerClient, list: readonly ManagedContainer[], log?: (m: string) => void): Promise<void> {
  await Promise.all(list.map(async (c) => {
    log?.(`Removing leftover container ${c.name} (run ${c.runId}, phase ${c.phase}, ${c.state})`);
    await cleanup(docker, c.id, DEFAULT_CLEANUP_TIMEOUT_MS, log ?? (() => {}));
  }));
}
