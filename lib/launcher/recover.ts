// Restart safety. After kill -9 (or a host reboot) the next launcher on the
// same state directory finds what the last one left:
// - its phase container still running, or exited but not yet removed: picked
//   up again (resume), so the run finishes with complete logs; output is
//   read again from the last checkpoint (lib/launcher/logcheckpoint.ts), or
//   from the container's start when there is none, masked again, and the bytes
//   the server already stored are skipped, so no line is lost or doubled;
// - no container, but a result written before the crash: reported again;
// - no container and no result: the phase may or may not have run, and a
//   write phase is never re-run by itself, so it is reported as a system error;
// - any other container labelled with this worker: removed.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { killContainer, waitContainer } from '../docker/containers.ts';
import { sshRsaIdentity, sshRsaRecipient } from '../age/index.ts';
import { collectToolStep } from './toolstep.ts';
import type { RetryOptions } from './retry.ts';
import { listManagedContainers, removeManagedContainers } from '../executor.ts';
import type { Assignment, PhaseReport } from '../protocol.ts';
import { isPermanent, ServerError } from './api.ts';
import type { LogCheckpoint } from './logcheckpoint.ts';
import type { InFlight, Logger, PhaseContext, ResumeFrom } from './phase.ts';
import { retryTransient } from './retry.ts';

export interface Resumable {
  assignment: Assignment;
  from: ResumeFrom;
}

/**
 * The server gave up on the phase (the launcher was away past the grace
 * period) but its container is still here: stop it, then seal and upload the
 * state it wrote. The server takes it if nothing else wrote the stack's state
 * meanwhile, and otherwise keeps it beside the run (STATE_CONFLICT).
 */
async function salvageToolState(a: Assignment, containerId: string, ctx: PhaseContext, log: Logger, retry: RetryOptions): Promise<void> {
  const fields = { runId: a.runId, phase: a.phase, phaseName: a.phaseName };
  const workDir = join(ctx.state.path, 'work', `${a.runId.replace(/[^A-Za-z0-9_-]/g, '_')}-${a.phase}-salvage`);
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  try {
    await killContainer(ctx.docker, containerId, 'SIGTERM').catch(() => {});
    const timer = setTimeout(() => { void killContainer(ctx.docker, containerId, 'SIGKILL').catch(() => {}); }, 10_000);
    await waitContainer(ctx.docker, containerId).catch(() => {});
    clearTimeout(timer);
    const got = await collectToolStep(a, containerId, 'canceled', {
      api: ctx.api, docker: ctx.docker, identity: sshRsaIdentity(ctx.poolKey), recipients: a.recipients.map((pem) => sshRsaRecipient(pem)),
      workDir, retry, note: (line) => log.info(line, fields),
    });
    if (got.stateVersion) log.info('Stored the state of a phase the server had given up on', { ...fields, version: got.stateVersion });
    if (got.error) log.warn('Could not store the state of a phase the server had given up on', { ...fields, error: got.error });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

export async function recover(ctx: PhaseContext, log: Logger): Promise<Resumable | undefined> {
  const { api, state, docker, workerId } = ctx;
  const inflight = state.readRun<InFlight>();
  // Containers are labelled with the worker id they were started for; after a
  // restart the server gives us back the same id (it is in the state dir).
  const ids = new Set([workerId, inflight?.workerId].filter((x): x is string => !!x));
  const containers = (await Promise.all([...ids].map((w) => listManagedContainers(docker, { workerId: w })))).flat();
  const a = inflight?.assignment;
  const mine = a ? containers.find((c) => c.runId === a.runId && c.phase === String(a.phase)) : undefined;
  // The executor owns container removal (at once, each bounded by its timeout).
  const say = (m: string): void => log.info(m);
  await removeManagedContainers(docker, containers.filter((c) => c !== mine), say);
  if (!inflight || !a) {
    state.clearSpill();
    return undefined;
  }
  const fields = { runId: a.runId, phase: a.phase, phaseName: a.phaseName };
  const retry = { onRetry: (e: unknown) => { ctx.metrics.reconnects++; log.warn('Server call failed during recovery; retrying', { ...fields, error: (e as Error).message }); } };
  let st;
  try {
    st = await retryTransient(() => api.phaseState(a.runId, a.phase), retry);
  } catch (e) {
    if (isPermanent(e)) throw e;
    log.warn('The server no longer has the interrupted phase; dropping it', { ...fields, error: (e as Error).message });
    if (mine) await removeManagedContainers(docker, [mine], say);
    state.clearRun();
    return undefined;
  }
  if (st.state !== 'RUNNING') {
    log.info('The interrupted phase is already over on the server', { ...fields, state: st.state });
    // A tool step's state is real infrastructure's record: store it before the container goes.
    if (mine && a.tool?.writesState) await salvageToolState(a, mine.id, ctx, log, retry);
    if (mine) await removeManagedContainers(docker, [mine], say);
    state.clearRun();
    state.clearSpill();
    return undefined;
  }
  if (mine) {
    // A checkpoint is usable when it is this phase's and the server has every
    // masked byte up to it (shipping may lag behind the anchor).
    const cp = state.readCheckpoint<LogCheckpoint>();
    const checkpoint = cp && cp.runId === a.runId && cp.phase === a.phase && cp.maskedBytes <= st.logs.bytes ? cp : undefined;
    log.info('Found the interrupted phase container; resuming it', {
      ...fields, container: mine.name, state: mine.state, storedLogBytes: st.logs.bytes, nextSeq: st.logs.nextSeq,
      logsFrom: checkpoint ? 'checkpoint' : 'start',
    });
    state.clearSpill();
    return { assignment: a, from: { containerId: mine.id, storedBytes: st.logs.bytes, nextSeq: st.logs.nextSeq, ...(checkpoint ? { checkpoint } : {}) } };
  }
  const report: PhaseReport = inflight.stage === 'finished' && inflight.result
    ? { ...inflight.result, logSeq: st.logs.nextSeq }
    : {
        workerId, outcome: 'system-error', exitCode: null, logSeq: st.logs.nextSeq, workspaceUploaded: false,
        error: 'LAUNCHER_RESTARTED: The launcher restarted and the phase container was gone, so the result is unknown; the phase is not re-run by itself',
      };
  log.warn('Reporting the interrupted phase', { ...fields, outcome: report.outcome });
  try {
    await retryTransient(() => api.result(a.runId, a.phase, { ...report, workerId }), retry);
  } catch (e) {
    if (isPermanent(e) || !(e instanceof ServerError)) throw e;
    log.warn('The server did not take the interrupted phase result', { ...fields, error: e.message });
  }
  state.clearRun();
  state.clearSpill();
  return undefined;
}
