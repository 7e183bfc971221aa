// The worker loop: register, keep one long-poll open at all times (it is the
// heartbeat and carries drain, cycle and cancel), run the one assignment this
// worker slot holds, and leave the way it was asked to.
//
//   register ─▶ recover (restart safety) ─▶ poll ⟲ ─▶ exit
//                                            │ assignment
//                                            ▼
//                                   runAssignment (phase.ts)
//
// Every server failure that can pass is retried with full-jitter backoff; a
// refused certificate ends the launcher (exit 3). The poll is aborted and
// re-sent whenever what it says changes (busy → idle), so a finished worker is
// offered the next run at once instead of after the poll's wait.
import { hostname } from 'node:os';
import { Backoff, sleep } from './backoff.ts';
import type { Assignment, Control, HostFacts } from '../protocol.ts';
import { isPermanent, ServerError, type WorkerApi } from './api.ts';
import { runAssignment, type InFlight, type PhaseContext, type ResumeFrom } from './phase.ts';
import { recover } from './recover.ts';
import { retryTransient } from './retry.ts';
import { VERSION } from '../version.ts';
import { LauncherError } from '../errors.ts';
import { EXIT_CYCLED, EXIT_OK } from './exit-codes.ts';


export type StopMode = 'graceful' | 'cancel';

export interface WorkerOptions extends Omit<PhaseContext, 'workerId' | 'leaving'> {
  poolId: string;
  metadata: Record<string, string>;
  dockerVersion: string;
  /** Long-poll wait to ask for (the server caps it). */
  pollSeconds?: number;
}

interface Current {
  runId: string;
  phase: number;
  cancel: AbortController;
  done: Promise<void>;
}

export class Worker {
  readonly #o: WorkerOptions;
  #workerId: string | undefined;
  #pollSeconds: number;
  #current: Current | undefined;
  #pollAbort: AbortController | undefined;
  #control: Control = { drain: false, cycle: false, cancel: [] };
  #stopping: StopMode | undefined;
  #fatal: unknown;
  readonly #leaving = new AbortController();
  #wake: AbortController = new AbortController();

  constructor(opts: WorkerOptions) {
    this.#o = opts;
    this.#pollSeconds = opts.pollSeconds ?? 25;
  }

  get workerId(): string | undefined {
    return this.#workerId;
  }
  get busy(): boolean {
    return this.#current !== undefined;
  }

  /** First call: graceful (finish the current run); second: cancel it too. */
  stop(mode: StopMode): void {
    if (mode === 'cancel' || this.#stopping === 'graceful') {
      this.#stopping = 'cancel';
      if (this.#current) {
        this.#o.log.warn('Stopping now: canceling the current run', { runId: this.#current.runId, phase: this.#current.phase });
        this.#current.cancel.abort();
      }
    } else {
      this.#stopping = 'graceful';
      this.#o.log.info(this.#current ? 'Stopping after the current run (signal again to cancel it)' : 'Stopping', {});
    }
    this.#repoll();
  }

  #accepting(): boolean {
    return this.#current === undefined && this.#stopping === undefined && !this.#control.drain && !this.#control.cycle && this.#fatal === undefined;
  }

  /** Aborts the open poll so the next one says what changed, and wakes a backoff sleep. */
  #repoll(): void {
    this.#pollAbort?.abort();
    this.#wake.abort();
  }

  #ctx(): PhaseContext {
    return { ...this.#o, workerId: this.#workerId!, leaving: this.#leaving.signal };
  }

  async #register(): Promise<void> {
    const { api, state, log } = this.#o;
    const saved = state.readWorker();
    const reuse = saved && saved.poolId === this.#o.poolId && saved.serverUrl === api.serverUrl ? saved.workerId : null;
    const host: HostFacts = { hostname: hostname(), os: process.platform, arch: process.arch, docker: this.#o.dockerVersion };
    const b = new Backoff({ baseMs: 200 });
    for (;;) {
      try {
        const r = await api.register({ workerId: reuse, metadata: this.#o.metadata, version: VERSION, host });
        this.#workerId = r.workerId;
        if (r.pollSeconds > 0) this.#pollSeconds = Math.min(this.#pollSeconds, r.pollSeconds);
        state.writeWorker({ workerId: r.workerId, poolId: this.#o.poolId, serverUrl: api.serverUrl });
        log.info('Registered with the server', { workerId: r.workerId, server: api.serverUrl, pool: this.#o.poolId, reused: reuse === r.workerId, metadata: this.#o.metadata });
        return;
      } catch (e) {
        if (!(e instanceof ServerError) || !e.transient) throw e;
        this.#o.metrics.reconnects++;
        const delay = b.next();
        log.warn('Cannot register yet; retrying', { error: e.message, delayMs: delay });
        await sleep(delay, this.#wakeSignal()); // stop() wakes it
        if (this.#stopping) throw new LauncherError('STOPPED', 'Stopped before registering', { exitCode: 0 });
      }
    }
  }

  /** Runs until told to leave; resolves with the exit code. */
  async run(): Promise<number> {
    const { log } = this.#o;
    try {
      await this.#register();
    } catch (e) {
      if (e instanceof LauncherError && e.code === 'STOPPED') return EXIT_OK;
      throw e;
    }
    const resume = await recover(this.#ctx(), log);
    if (resume) this.#startPhase(resume.assignment, resume.from);
    await this.#pollLoop();
    if (this.#fatal !== undefined) {
      this.#leaving.abort();
      // Give the canceled phase a moment to stop its container; whatever is
      // left is removed by the next start.
      if (this.#current) await Promise.race([this.#current.done, sleep(15_000)]);
      throw this.#fatal;
    }
    if (this.#control.cycle && this.#stopping === undefined) {
      log.info('Cycled by the server: exiting so the supervisor starts a fresh launcher', { exitCode: EXIT_CYCLED });
      await this.#deregister();
      return EXIT_CYCLED;
    }
    await this.#deregister();
    log.info('Stopped', { workerId: this.#workerId });
    return EXIT_OK;
  }

  async #deregister(): Promise<void> {
    try {
      await this.#o.api.deregister(this.#workerId!);
    } catch (e) {
      this.#o.log.warn('Could not deregister (the server will mark this worker offline)', { error: (e as Error).message });
    }
  }

  #shouldExit(): boolean {
    if (this.#fatal !== undefined) return true;
    if (this.#current) return false;
    return this.#stopping !== undefined || this.#control.cycle;
  }

  async #pollLoop(): Promise<void> {
    const { api, log, metrics } = this.#o;
    const b = new Backoff({ baseMs: 200 });
    let last = '';
    while (!this.#shouldExit()) {
      const ac = new AbortController();
      this.#pollAbort = ac;
      const accept = this.#accepting();
      const sent = Date.now();
      try {
        const ans = await api.poll({ workerId: this.#workerId!, accept, runId: this.#current?.runId ?? null }, this.#pollSeconds, ac.signal);
        b.reset();
        metrics.contact();
        this.#applyControl(ans.control);
        if (ans.assignment) this.#onAssignment(ans.assignment, accept);
        // A server that answers at once with nothing new would make this loop
        // spin; pause briefly in that case only.
        const sig = JSON.stringify(ans.control) + (ans.assignment?.runId ?? '');
        if (!ans.assignment && sig === last && Date.now() - sent < 50) await sleep(250, this.#wakeSignal());
        last = sig;
      } catch (e) {
        if (ac.signal.aborted) continue; // we cut it short to say something new
        if (isPermanent(e)) {
          this.#fail(e);
          break;
        }
        if (e instanceof ServerError && e.status === 404) {
          log.warn('The server does not know this worker any more; registering again', { workerId: this.#workerId });
          try {
            await this.#register();
          } catch (re) {
            if (isPermanent(re)) this.#fail(re);
            else log.error('Registering again failed', { error: (re as Error).message });
          }
          continue;
        }
        metrics.reconnects++;
        const delay = b.next();
        log.warn('Lost the server; reconnecting', { error: (e as Error).message, attempt: b.attempt, delayMs: delay });
        await sleep(delay, this.#wakeSignal());
      } finally {
        this.#pollAbort = undefined;
      }
    }
  }

  #wakeSignal(): AbortSignal {
    if (this.#wake.signal.aborted) this.#wake = new AbortController();
    return this.#wake.signal;
  }

  #fail(e: unknown): void {
    this.#fatal ??= e;
    this.#o.log.error('The server refused this launcher', { error: (e as Error).message });
    this.#current?.cancel.abort();
    this.#leaving.abort();
  }

  #applyControl(c: Control): void {
    const { log, metrics } = this.#o;
    if (c.drain !== this.#control.drain) log.info(c.drain ? 'Drained: finishing the current run, taking no new one' : 'Undrained: taking runs again', {});
    if (c.cycle && !this.#control.cycle) log.info(this.#current ? 'Cycle requested: exiting after the current run' : 'Cycle requested', {});
    metrics.draining = c.drain;
    this.#control = c;
    if (this.#current && c.cancel.includes(this.#current.runId) && !this.#current.cancel.signal.aborted) {
      log.info('Run canceled by the server: stopping its container', { runId: this.#current.runId, phase: this.#current.phase });
      this.#current.cancel.abort();
    }
  }

  #onAssignment(a: Assignment, accepted: boolean): void {
    this.#o.log.debug('Assignment received', { runId: a.runId, phase: a.phase, phaseName: a.phaseName });
    if (this.#current) {
      if (this.#current.runId !== a.runId || this.#current.phase !== a.phase) {
        this.#o.log.warn('Ignoring an assignment while busy', { runId: a.runId, phase: a.phase, busyWith: this.#current.runId });
      }
      return; // a re-sent copy of what we are already doing
    }
    if (!accepted && this.#stopping) {
      this.#o.log.warn('Ignoring an assignment while stopping', { runId: a.runId });
      return;
    }
    this.#startPhase(a);
  }

  #startPhase(a: Assignment, resume?: ResumeFrom): void {
    const { api, state, log, metrics } = this.#o;
    const cancel = new AbortController();
    if (this.#stopping === 'cancel') cancel.abort();
    const current: Current = { runId: a.runId, phase: a.phase, cancel, done: Promise.resolve() };
    this.#current = current;
    metrics.busy = true;
    this.#repoll(); // say accept:false and our runId right away
    const ctx = this.#ctx();
    current.done = (async () => {
      try {
        if (!resume) {
          // The acknowledgement goes out while the in-flight record is written:
          // either order ends the same way after a crash (the phase fails, it
          // is never run twice), and this saves a disk flush on dispatch.
          const started = retryStart(api, a, ctx);
          started.catch(() => {});
          state.writeRun({ workerId: ctx.workerId, assignment: a, stage: 'starting', startedAt: new Date().toISOString() } satisfies InFlight);
          try {
            await started;
          } catch (e) {
            if (isPermanent(e)) throw e;
            // 404/409: the run was canceled or reassigned before we began.
            log.warn('The server withdrew the assignment before it started', { runId: a.runId, phase: a.phase, error: (e as Error).message });
            return;
          }
        }
        await runAssignment(a, ctx, cancel.signal, resume);
      } catch (e) {
        if (isPermanent(e)) this.#fail(e);
        else log.error('Could not finish the phase', { runId: a.runId, phase: a.phase, error: (e as Error).message });
      } finally {
        state.clearRun();
        this.#current = undefined;
        metrics.busy = false;
        this.#repoll();
      }
    })();
  }
}

async function retryStart(api: WorkerApi, a: Assignment, ctx: PhaseContext): Promise<void> {
  await retryTransient(() => api.start(a.runId, a.phase, ctx.workerId), {
    ...(ctx.leaving ? { signal: ctx.leaving } : {}),
    onRetry: (e) => { ctx.metrics.reconnects++; ctx.log.warn('Phase start not acknowledged yet; retrying', { runId: a.runId, error: (e as Error).message }); },
  });
}
