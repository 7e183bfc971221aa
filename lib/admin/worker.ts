// `launcher admin worker …`: list, drain and undrain by id or by metadata tag
// (an autoscaler that knows only its instance id drains that machine's worker),
// and `--wait` until the drained workers have finished their runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../errors.ts';
import type { WorkerList, WorkerSelector, WorkerView } from '../protocol.ts';
import type { AdminClient } from './client.ts';
import { keyValues } from '../key-values.ts';
import { flag, list, str, write, type Args, type Command, type Noun, type OptionSpec } from './command.ts';
import { ago, cell, json, table, tags } from './format.ts';


/**
 * How often `drain --wait` looks again. The admin API has no long-poll for
 * worker status, so this is a plain poll; one second is invisible next to a
 * run's length and costs the server one small query per waiting admin.
 */
export const DRAIN_WAIT_INTERVAL_MS = 1000;

function hostText(host: WorkerView['host'] | null): string {
  if (host === null || typeof host !== 'object') return cell(host);
  const h = host;
  return [h.hostname, h.os && h.arch ? `${h.os}/${h.arch}` : undefined, h.docker ? `docker ${h.docker}` : undefined]
    .filter(Boolean).join(' ') || '-';
}

export function workerRows(workers: WorkerView[], now: number): string {
  return table(
    ['ID', 'POOL', 'STATUS', 'TAGS', 'VERSION', 'HOST', 'REGISTERED', 'LAST SEEN', 'IDLE SINCE', 'RUN'],
    workers.map((w) => [
      cell(w.id), cell(w.pool), cell(w.status), tags(w.metadata), cell(w.version), hostText(w.host),
      ago(w.registeredAt, now), ago(w.lastSeen, now),
      w.status === 'IDLE' ? ago(w.idleSince, now) : '-', cell(w.currentRun),
    ]),
  );
}

const listCmd: Command = {
  usage: 'worker list [--pool ID] [--metadata K=V]…',
  summary: 'workers with status, tags, version, host and current run',
  options: {
    pool: { type: 'string', arg: 'ID', help: 'only this pool\'s workers' },
    metadata: { type: 'string', multiple: true, arg: 'K=V', help: 'only workers with this tag (repeatable: all must match)' },
  },
  async run(ctx, args) {
    const metadata = keyValues(list(args, 'metadata'), 'metadata');
    const poolRef = str(args, 'pool');
    const pool = poolRef;
    const answer = await ctx.client().get<WorkerList>('/v1/workers', {
      pool, metadata: Object.entries(metadata).map(([k, v]) => `${k}=${v}`),
    });
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, workerRows(answer.workers ?? [], ctx.now()));
  },
};

/** The drain/undrain body: ids, or a metadata selector with an optional pool. */
function selector(args: Args, verb: string): WorkerSelector {
  const ids = args.positionals;
  const metadata = keyValues(list(args, 'metadata'), 'metadata');
  const hasMeta = Object.keys(metadata).length > 0;
  if (ids.length > 0 && hasMeta) throw new ConfigError(`Cannot use worker ids and --metadata together: worker ${verb} takes ID… or --metadata K=V`);
  if (ids.length === 0 && !hasMeta) throw new ConfigError(`Missing the workers to ${verb}: expected launcher admin worker ${verb} ID… or --metadata K=V [--pool ID]`);
  if (ids.length > 0) {
    if (str(args, 'pool') !== undefined) throw new ConfigError(`Cannot use --pool with worker ids: --pool only narrows a --metadata selector`);
    return { ids };
  }
  const poolRef = str(args, 'pool');
  return poolRef === undefined ? { metadata } : { metadata, pool: poolRef };
}

/** Wait until none of `ids` is BUSY; `onWait` hears which ones are still busy. */
export async function waitUntilNotBusy(
  client: AdminClient, ids: string[], opts: { signal?: AbortSignal; intervalMs?: number; onWait?: (busy: WorkerView[]) => void } = {},
): Promise<WorkerView[]> {
  const want = new Set(ids);
  let announced = '';
  for (;;) {
    // Only BUSY workers come back, so a large fleet costs little per look.
    const { workers: busyNow } = await client.get<WorkerList>('/v1/workers', { status: 'BUSY' });
    const busy = (busyNow ?? []).filter((w) => want.has(w.id) && w.status === 'BUSY');
    if (busy.length === 0) break;
    const key = busy.map((w) => w.id).join(',');
    if (key !== announced) { opts.onWait?.(busy); announced = key; }
    await sleep(opts.intervalMs ?? DRAIN_WAIT_INTERVAL_MS, undefined, { signal: opts.signal });
  }
  const { workers } = await client.get<WorkerList>('/v1/workers');
  return (workers ?? []).filter((w) => want.has(w.id));
}

function drainCommand(verb: 'drain' | 'undrain'): Command {
  return {
    usage: `worker ${verb} ID…|--metadata K=V [--pool ID]${verb === 'drain' ? ' [--wait]' : ''}`,
    summary: verb === 'drain'
      ? 'finish the current run and accept no more; --wait blocks until none is busy'
      : 'accept runs again',
    positionals: ['ID...'],
    options: {
      metadata: { type: 'string', multiple: true, arg: 'K=V', help: 'select workers by tag (repeatable: all must match)' },
      pool: { type: 'string', arg: 'ID', help: 'only in this pool (with --metadata)' },
      ...(verb === 'drain' ? { wait: { type: 'boolean', help: `block until the drained workers are no longer BUSY (checks every ${DRAIN_WAIT_INTERVAL_MS / 1000}s)` } } : {}),
    } as Record<string, OptionSpec>,
    async run(ctx, args) {
      const body = selector(args, verb);
      const answer = await ctx.client().post<WorkerList>(`/v1/workers/${verb}`, body);
      const affected = answer.workers ?? [];
      if (verb === 'drain' && flag(args, 'wait') && affected.length > 0) {
        const final = await waitUntilNotBusy(ctx.client(), affected.map((w) => w.id), {
          signal: ctx.signal,
          onWait: (busy) => ctx.err.write(`Waiting for ${busy.length} busy worker(s) to finish: ${busy.map((w) => `${cell(w.id)} (${cell(w.currentRun)})`).join(', ')}\n`),
        });
        if (ctx.json) return write(ctx.out, json({ workers: final }));
        return write(ctx.out, workerRows(final, ctx.now()));
      }
      if (ctx.json) return write(ctx.out, json(answer));
      if (affected.length === 0) {
        ctx.err.write(`No worker matched: nothing to ${verb}\n`);
        return;
      }
      return write(ctx.out, workerRows(affected, ctx.now()));
    },
  };
}

export const worker: Noun = { list: listCmd, drain: drainCommand('drain'), undrain: drainCommand('undrain') };
