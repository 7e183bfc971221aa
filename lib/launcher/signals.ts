// How the launcher answers signals (documented in docs/launcher.md):
// - first SIGTERM or SIGINT: graceful; take no new run, finish the current
//   one, deregister, exit 0;
// - second SIGTERM or SIGINT: cancel the current run (SIGTERM to its
//   container, grace, SIGKILL), report it, deregister, exit 0;
// - SIGQUIT: leave at once (exit 131) without touching the container; the
//   next launcher on the same state directory picks the phase up again.
import type { Logger } from './phase.ts';
import type { StopMode } from './worker.ts';
import { EXIT_QUIT } from './exit-codes.ts';


export interface Stoppable {
  stop(mode: StopMode): void;
}

export interface SignalSource {
  on(event: NodeJS.Signals, fn: () => void): unknown;
  off(event: NodeJS.Signals, fn: () => void): unknown;
}

/** Installs the handlers; returns a function that removes them. */
export function handleSignals(proc: SignalSource, target: Stoppable, log: Logger, quit: (code: number) => void): () => void {
  let count = 0;
  const onStop = (name: NodeJS.Signals) => () => {
    count++;
    log.info(`Received ${name}`, { count });
    target.stop(count === 1 ? 'graceful' : 'cancel');
  };
  const term = onStop('SIGTERM');
  const int = onStop('SIGINT');
  const onQuit = () => {
    log.warn('Received SIGQUIT: leaving now; a running phase is picked up by the next start', {});
    quit(EXIT_QUIT);
  };
  proc.on('SIGTERM', term);
  proc.on('SIGINT', int);
  proc.on('SIGQUIT', onQuit);
  return () => {
    proc.off('SIGTERM', term);
    proc.off('SIGINT', int);
    proc.off('SIGQUIT', onQuit);
  };
}
