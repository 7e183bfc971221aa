// One assignment, start to result: open the sealed secret environment with
// the pool key, restore the sealed workspace, run the phase with the executor
// while masked output goes to the log shipper, seal the workspace to every
// recipient and upload it, then report the result once every log chunk is
// stored. Restart recovery (recover.ts) comes through here too, with `resume`.
import type { KeyObject } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createOpenStream, openBuffer, sealBuffer, sshRsaIdentity, sshRsaRecipient, type Identity } from '../age/index.ts';
import type { DockerClient } from '../docker/client.ts';
import { containerLogs } from '../docker/containers.ts';
import { dockerSince } from '../docker/logs.ts';
import { listManagedContainers, resumePhase, runPhase, type PhaseMount, type PhaseOutcome, type PhaseResult, type PullPolicy } from '../executor.ts';
import { CheckpointTracker, startCheckpoints, type LogCheckpoint } from './logcheckpoint.ts';
import { collectToolStep, prepareToolState, type Collected, type ToolStepDeps } from './toolstep.ts';
import { sealAndUpload } from './seal-upload.ts';
import { Masker, type Secret } from '../mask.ts';
import type { Assignment, PhaseReport } from '../protocol.ts';
import { isPermanent, type WorkerApi } from './api.ts';
import { LogShipper } from './logship.ts';
import { packDirectory } from '../workspace.ts';
import { fetchSource, type RepoCredential } from '../vcs/source.ts';
import { retryTransient } from './retry.ts';
import type { StateDir } from './statedir.ts';
import type { Metrics } from './metrics.ts';

/** The launcher's structured log (never run output, never secrets). */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** What a phase takes from the launcher's configuration. */
export interface PhaseSettings {
  defaultRunnerImage: string;
  network: string;
  runtime?: string | undefined;
  logsTimeoutMs: number;
  runTimeoutMs: number;
  killGraceMs?: number;
  pullPolicy?: PullPolicy;
  /** Bind mounts for a read-only (proposed) or write run. */
  mounts(readOnly: boolean): PhaseMount[];
  /** Whitelisted launcher variables for a read-only or write run. */
  env(readOnly: boolean): Record<string, string>;
  /** Values of SPACELIFT_MASK_ENVS variables. */
  masks: Secret[];
  registryAuth?: (image: string) => string | undefined;
  runLogsOnStdout: boolean;
}

export interface PhaseContext {
  api: WorkerApi;
  docker: DockerClient;
  state: StateDir;
  poolKey: KeyObject;
  workerId: string;
  settings: PhaseSettings;
  log: Logger;
  metrics: Metrics;
  /** Where run logs go as structured lines when SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED. */
  stdout?: Writable;
  /** Aborts retries when the launcher leaves at once. */
  leaving?: AbortSignal;
}

/** The in-flight record in the state directory (run.json). */
export interface InFlight {
  workerId: string;
  assignment: Assignment;
  stage: 'starting' | 'finished';
  startedAt: string;
  result?: PhaseReport;
}

export interface ResumeFrom {
  containerId: string;
  /** Masked bytes the server already stored: output is re-masked from the start (or the checkpoint) and the rest of this skipped. */
  storedBytes: number;
  nextSeq: number;
  /** Where to pick the container's output up, when a checkpoint was written (lib/launcher/logcheckpoint.ts). */
  checkpoint?: LogCheckpoint;
}

function secretsOf(env: Record<string, string>, where: string): Secret[] {
  return Object.entries(env).map(([name, value]) => ({ name: `${where} ${name}`, value }));
}

/** Prints masked run output as one JSON object per line. */
function stdoutLines(out: Writable, a: Assignment): { write(b: Uint8Array): void; end(): void } {
  let carry = '';
  const dec = new TextDecoder();
  const emit = (line: string) => out.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: line, runId: a.runId, phase: a.phase, phaseName: a.phaseName, source: 'run' }) + '\n');
  return {
    write(b) {
      carry += dec.decode(b, { stream: true });
      const lines = carry.split('\n');
      carry = lines.pop()!;
      for (const l of lines) emit(l);
    },
    end() {
      carry += dec.decode();
      if (carry !== '') emit(carry);
      carry = '';
    },
  };
}

/** Opens the stack's sealed repository credential (base64 age file of {"username", "password"}). */
export async function openCredential(sealed: string | null | undefined, identity: Identity): Promise<RepoCredential | undefined> {
  if (sealed === null || sealed === undefined || sealed === '') return undefined;
  const plain = await openBuffer(Buffer.from(sealed, 'base64'), [identity]);
  const obj = JSON.parse(plain.toString('utf8')) as { username?: unknown; password?: unknown };
  if (typeof obj.username !== 'string' || typeof obj.password !== 'string') throw new Error('the sealed repository credential is not {"username", "password"}');
  return { username: obj.username, password: obj.password };
}

function credentialSecrets(c: RepoCredential | undefined): Secret[] {
  if (!c) return [];
  return [
    { name: 'repository credential', value: c.password },
    { name: 'repository credential', value: `${c.username}:${c.password}` },
  ];
}

/** Opens the stack's sealed secret environment (base64 age file of a JSON object). */
export async function openSecretEnv(sealed: string | null, identity: Identity): Promise<Record<string, string>> {
  if (sealed === null || sealed === '') return {};
  const plain = await openBuffer(Buffer.from(sealed, 'base64'), [identity]);
  const obj = JSON.parse(plain.toString('utf8')) as unknown;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error('the sealed secret environment is not a JSON object');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) env[k] = String(v);
  return env;
}

function failure(a: Assignment, workerId: string, code: string, message: string, logSeq: number): PhaseReport {
  return { workerId, outcome: 'system-error', exitCode: null, error: `${code}: ${message}`, logSeq, workspaceUploaded: false };
}

/**
 * Runs (or, with `resume`, picks up) one phase and reports its result.
 * `cancel` stops the container (SIGTERM, grace, SIGKILL). Resolves with the
 * report the server accepted; throws only for permanent refusals.
 */
export async function runAssignment(a: Assignment, ctx: PhaseContext, cancel: AbortSignal, resume?: ResumeFrom): Promise<PhaseReport> {
  const { api, state, log, settings, workerId } = ctx;
  const fields = { runId: a.runId, phase: a.phase, phaseName: a.phaseName };
  const retry = { ...(ctx.leaving ? { signal: ctx.leaving } : {}), onRetry: (e: unknown, n: number, ms: number) => {
    ctx.metrics.reconnects++;
    log.warn('Server call failed; retrying', { ...fields, error: (e as Error).message, attempt: n, delayMs: ms });
  } };
  const identity = sshRsaIdentity(ctx.poolKey);
  const readOnly = a.proposed;
  const workDir = join(state.path, 'work', `${a.runId.replace(/[^A-Za-z0-9_-]/g, '_')}-${a.phase}`);
  mkdirSync(workDir, { recursive: true, mode: 0o700 });

  // Logs: raw output → masker → (skip what the server has, after a restart) → shipper.
  const shipper = new LogShipper({
    upload: (seq, bytes) => api.uploadLogs(a.runId, a.phase, seq, bytes),
    spillDir: state.spillDir(a.runId, a.phase),
    startSeq: resume?.nextSeq ?? a.logs.nextSeq,
    isPermanent,
    onRetry: (e, n) => { ctx.metrics.reconnects++; if (n === 0 || n % 10 === 0) log.warn('Log upload failed; keeping output and retrying', { ...fields, error: (e as Error).message }); },
    onShipped: (_s, n) => { ctx.metrics.logBytes += n; },
    ...(ctx.leaving ? { signal: ctx.leaving } : {}),
  });
  const cp = resume?.checkpoint;
  let skip = (resume?.storedBytes ?? 0) - (cp?.maskedBytes ?? 0);
  // Raw output and masked bytes since the start of the log (or the checkpoint), for the next checkpoint.
  const tracker = new CheckpointTracker(cp ?? null);
  const printer = settings.runLogsOnStdout && ctx.stdout ? stdoutLines(ctx.stdout, a) : undefined;
  const emit = (masked: Uint8Array) => {
    if (masked.length === 0) return;
    tracker.addMasked(masked.length);
    if (skip > 0) {
      if (masked.length <= skip) { skip -= masked.length; return; }
      masked = masked.subarray(skip);
      skip = 0;
    }
    shipper.write(masked);
    printer?.write(masked);
  };

  let report: PhaseReport;
  let masker: Masker | undefined;
  let stopCheckpoints = (): void => {};
  try {
    let secretEnv: Record<string, string>;
    try {
      secretEnv = await openSecretEnv(a.secretEnv, identity);
    } catch (e) {
      // Sealed to a key this launcher does not hold (rotation), or damaged.
      return await finishReport(a, ctx, shipper, failure(a, workerId, 'SECRET_ENV_UNREADABLE',
        `Cannot open the stack's sealed secret environment with this pool key: ${(e as Error).message}`, 0), retry);
    }
    const fetching = a.source && !a.workspace && !resume ? a.source : undefined;
    let credential: RepoCredential | undefined;
    try {
      credential = fetching ? await openCredential(fetching.credential, identity) : undefined;
    } catch (e) {
      return await finishReport(a, ctx, shipper, failure(a, workerId, 'SOURCE_CREDENTIAL_UNREADABLE',
        `Cannot open the stack's sealed repository credential with this pool key: ${(e as Error).message}`, 0), retry);
    }
    // Values the script added with ::add-mask:: before a restart come back from the checkpoint.
    const added: string[] = [];
    if (cp?.addedMasks) {
      try {
        added.push(...(JSON.parse((await openBuffer(Buffer.from(cp.addedMasks, 'base64'), [identity])).toString('utf8')) as string[]));
      } catch (e) {
        return await finishReport(a, ctx, shipper, failure(a, workerId, 'CHECKPOINT_UNREADABLE',
          `Cannot open the masks the phase added before the restart: ${(e as Error).message}`, resume?.nextSeq ?? 0), retry);
      }
    }
    masker = new Masker({
      secrets: [...settings.masks, ...secretsOf(secretEnv, 'secret'), ...credentialSecrets(credential), ...added.map((value) => ({ name: 'a value added at run time', value }))],
      onWarning: (m) => log.warn(m, fields),
      onAdd: (value) => { added.push(value); },
    });
    const m = masker;

    let sourceDir: string | undefined;
    if (fetching) {
      // The run's files come from Git: fetch exactly its commit here, on the
      // worker (the server never sees the code), and start the phase with it.
      const say = (line: string) => emit(m.write(Buffer.from(`[launcher] ${line}\n`)));
      const started = Date.now();
      try {
        const got = await fetchSource(
          { repo: fetching.repo, branch: fetching.branch, commit: fetching.commit },
          { dir: join(workDir, 'source'), credential, signal: cancel },
        );
        sourceDir = join(workDir, 'source');
        say(`Fetched ${fetching.repo} ${fetching.branch ?? ''} at ${got.sha}: ${got.files} files, ${got.bytes} bytes in ${Date.now() - started} ms`.replace('  ', ' '));
        if (got.message !== null) say(`Commit ${got.sha.slice(0, 12)} by ${got.author ?? 'unknown'}: ${got.message}`);
        await retryTransient(() => api.commit(a.runId, a.phase, { workerId, sha: got.sha, author: got.author, message: got.message }), retry);
      } catch (e) {
        if (isPermanent(e)) throw e;
        const code = (e as { code?: string }).code ?? 'SOURCE_FETCH_FAILED';
        const message = m.redact((e as Error).message);
        say(message);
        emit(m.end());
        log.warn('Source fetch failed', { ...fields, code, error: message });
        return await finishReport(a, ctx, shipper, failure(a, workerId, code.startsWith('SOURCE_') ? code : 'SOURCE_FETCH_FAILED', message, 0), retry);
      }
    }

    let workspaceFile: string | undefined;
    if (a.workspace && !resume) {
      workspaceFile = join(workDir, 'in.age');
      const file = workspaceFile;
      // Spool to disk first so a server restart mid-download is retried
      // rather than failing the phase; memory stays flat for any size.
      const found = await retryTransient(async () => {
        const body = await api.downloadWorkspace(a.runId);
        if (body === null) return false;
        await pipeline(body, createWriteStream(file, { mode: 0o600 }));
        return true;
      }, retry);
      if (!found) {
        // Running a later phase (an apply) without what the earlier one left
        // would be worse than not running it.
        return await finishReport(a, ctx, shipper, failure(a, workerId, 'WORKSPACE_MISSING',
          'Cannot restore the workspace: the assignment says the run has one but the server has none', 0), retry);
      }
    }

    let uploaded = false;
    const outFile = join(workDir, 'out.age');
    const recipients = a.recipients.map((pem) => sshRsaRecipient(pem));

    // A tool step: the stack's state goes in before, the new state and the plan's changes come out after.
    const toolDeps: ToolStepDeps = {
      api, docker: ctx.docker, identity, recipients, workDir, retry,
      note: (line) => emit(m.write(Buffer.from(`[launcher] ${line}\n`))),
    };
    let extraIn: (() => Readable) | undefined;
    let collected: Collected = {};
    if (a.tool && !resume) {
      try {
        extraIn = await prepareToolState(a, toolDeps);
      } catch (e) {
        if (isPermanent(e)) throw e;
        return await finishReport(a, ctx, shipper, failure(a, workerId, 'STATE_UNREADABLE',
          `Cannot restore the stack's state version ${a.tool.state?.version ?? ''} with this pool key: ${(e as Error).message}`, 0), retry);
      }
    }
    const common = {
      onOutput: (chunk: Uint8Array) => { emit(m.write(chunk)); tracker.observe(chunk, m.atRest); },
      logsTimeoutMs: settings.logsTimeoutMs,
      runTimeoutMs: settings.runTimeoutMs,
      ...(settings.killGraceMs !== undefined ? { killGraceMs: settings.killGraceMs } : {}),
      signal: cancel,
      workspaceOut: async (tar: Readable) => {
        await sealAndUpload(tar, outFile, recipients, (body) => api.uploadWorkspace(a.runId, a.phase, body), retry);
        uploaded = true;
        log.debug('Workspace sealed and uploaded', { ...fields, recipients: recipients.length });
      },
      ...(a.tool ? { collect: async (id: string, outcome: PhaseOutcome) => { collected = await collectToolStep(a, id, outcome, toolDeps); } } : {}),
    };
    const execDeps = { docker: ctx.docker, log: (msg: string) => log.debug(msg, fields) };
    const recipientsSealed = { count: -1, sealed: null as string | null };
    stopCheckpoints = startCheckpoints({
      tracker,
      container: async () => resume?.containerId ?? (await listManagedContainers(ctx.docker, { workerId }))
        .find((c) => c.runId === a.runId && c.phase === String(a.phase))?.id,
      fetch: (id, since) => containerLogs(ctx.docker, id, { follow: false, timestamps: true, ...(since ? { since: dockerSince(since) } : {}), signal: cancel }),
      sealedAdded: async () => {
        if (added.length === 0) return null;
        if (recipientsSealed.count !== added.length) {
          recipientsSealed.sealed = (await sealBuffer(Buffer.from(JSON.stringify(added)), recipients)).toString('base64');
          recipientsSealed.count = added.length;
        }
        return recipientsSealed.sealed;
      },
      save: (c) => state.writeCheckpoint({ ...c, runId: a.runId, phase: a.phase } satisfies LogCheckpoint),
      onError: (e) => log.debug('Log checkpoint skipped', { ...fields, error: e.message }),
    });
    let result: PhaseResult;
    if (resume) {
      log.info('Re-attached to the phase container after a restart', {
        ...fields, container: resume.containerId.slice(0, 12), storedBytes: resume.storedBytes,
        logsFrom: cp ? 'checkpoint' : 'start', skippedRawBytes: cp?.rawBytes ?? 0,
      });
      result = await resumePhase(resume.containerId, { ...common, skipBytes: 0, ...(cp ? { logsFrom: { since: cp.since, skipEntries: cp.skipEntries } } : {}) }, execDeps);
    } else {
      const image = a.image || settings.defaultRunnerImage;
      const auth = settings.registryAuth?.(image);
      log.info('Starting phase', { ...fields, image, proposed: a.proposed });
      result = await runPhase({
        ...common,
        runId: a.runId,
        phase: String(a.phase),
        workerId,
        image,
        script: a.script,
        // Stack env wins over whitelisted launcher variables; secrets win over both.
        env: { ...settings.env(readOnly), ...a.env, ...secretEnv },
        readOnly,
        ...(workspaceFile ? { workspaceIn: () => openedTar(workspaceFile!, identity) } : {}),
        ...(sourceDir ? { workspaceIn: () => packDirectory(sourceDir!) } : {}),
        ...(extraIn ? { extraIn } : {}),
        mounts: settings.mounts(readOnly),
        network: settings.network,
        ...(settings.runtime ? { runtime: settings.runtime } : {}),
        ...(settings.pullPolicy ? { pullPolicy: settings.pullPolicy } : {}),
        ...(auth ? { registryAuth: auth } : {}),
      }, execDeps);
    }
    emit(m.end());
    printer?.end();
    report = {
      workerId,
      outcome: result.outcome,
      exitCode: result.exitCode ?? null,
      error: result.error ? `${result.error.code}: ${result.error.message}` : null,
      logSeq: 0,
      workspaceUploaded: uploaded,
      ...(collected.plan ? { plan: collected.plan } : {}),
    };
    if (collected.error && report.outcome === 'succeeded') {
      // The step ran, but what it produced could not be recorded: the run must not go on.
      report.outcome = 'system-error';
      report.error = collected.error;
    } else if (collected.error) {
      report.error = report.error ? `${report.error}; ${collected.error}` : collected.error;
    }
    if (result.outcome === 'system-error') log.error('Phase failed on this host', { ...fields, error: result.error?.message });
    state.writeRun({ ...(state.readRun<InFlight>() ?? { workerId, assignment: a, startedAt: new Date().toISOString() }), stage: 'finished', result: report } satisfies InFlight);
  } catch (e) {
    if (isPermanent(e)) throw e;
    report = failure(a, workerId, 'LAUNCHER_ERROR', `The launcher failed while running the phase: ${(e as Error).message}`, 0);
    log.error('Phase failed on this host', { ...fields, error: (e as Error).message });
  } finally {
    stopCheckpoints();
    rmSync(workDir, { recursive: true, force: true });
  }
  return finishReport(a, ctx, shipper, report, retry);
}

async function finishReport(a: Assignment, ctx: PhaseContext, shipper: LogShipper, report: PhaseReport, retry: Parameters<typeof retryTransient>[1]): Promise<PhaseReport> {
  const logSeq = await shipper.close();
  const final = { ...report, logSeq };
  await retryTransient(() => ctx.api.result(a.runId, a.phase, final), retry);
  ctx.metrics.phaseFinished(final.outcome);
  ctx.log.info('Phase finished', { runId: a.runId, phase: a.phase, phaseName: a.phaseName, outcome: final.outcome, exitCode: final.exitCode, logChunks: logSeq });
  return final;
}

/** A tar stream of the sealed workspace file, opened (and authenticated) on the fly. */
function openedTar(file: string, identity: Identity): Readable {
  const out = new PassThrough();
  pipeline(createReadStream(file), createOpenStream([identity]), out).catch((e) => out.destroy(e as Error));
  return out;
}
