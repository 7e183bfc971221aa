// `launcher admin run …` and `queue …`: trigger (the workspace is tarred and
// sealed locally, streamed), list, show, logs (optionally following until the
// run ends), confirm, cancel, discard; the pool's queue and prioritize.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ConfigError } from '../errors.ts';
import { RUN_STATES, type CommitView, type RunAction, type RunList, type RunReply, type RunView, type StackReply, type TriggerRequest } from '../protocol.ts';
import { seg } from './client.ts';
import { actionOf, changesText } from '../tool/plan.ts';
import { flag, str, write, type Command, type Noun } from './command.ts';
import { ago, cell, fields, json, table } from './format.ts';
import { activeKeyPems, getPool } from './pool.ts';
import { recipientsFor, sealedWorkspace } from './seal.ts';

const STATES: readonly string[] = RUN_STATES;

export function runRows(runs: RunView[], now: number): string {
  return table(
    ['ID', 'STACK', 'POOL', 'STATE', 'PHASE', 'MODE', 'COMMIT', 'CHANGES', 'WORKER', 'CREATED', 'REASON'],
    runs.map((r) => [
      cell(r.id), cell(r.stackName ?? r.stack), cell(r.pool), cell(r.status ?? r.state), phaseText(r), r.proposed ? 'proposed' : 'tracked',
      commitShort(r.commit), r.changes ? changesText(r.changes) + (r.drifted ? ' drift' : '') : '-', cell(r.worker), ago(r.createdAt, now), cell(r.reason),
    ]),
  );
}

/** "main@1a2b3c4d5e6f" (or "main@(tip)" until a worker resolved it); "-" for uploaded workspaces. */
function commitShort(c: CommitView | null): string {
  if (c === null) return '-';
  const o = c;
  return `${o.branch == null ? '' : `${String(o.branch)}@`}${typeof o.sha === 'string' ? o.sha.slice(0, 12) : '(tip)'}`;
}

function commitLines(c: CommitView | null): Array<[string, string]> {
  if (c === null) return [['commit', '- (uploaded workspace)']];
  const o = c;
  return [
    ['repository', cell(o.repo)],
    ['branch', cell(o.branch)],
    ['commit', typeof o.sha === 'string' ? o.sha : '(branch tip, not fetched yet)'],
    ['author', cell(o.author)],
    ['message', cell(o.message)],
  ];
}

function phaseText(r: RunView): string {
  const name = r.phases[r.phase]?.name;
  return `${r.phase}${name ? ` ${name}` : ''} (of ${r.phaseCount})`;
}

export function runFields(r: RunView, now: number): string {
  const phases = r.phases;
  return fields([
    ['id', cell(r.id)],
    ['stack', `${cell(r.stackName)} (${cell(r.stack)})`],
    ['pool', cell(r.pool)],
    ['state', cell(r.status ?? r.state) + (r.cancelRequested && r.state === 'RUNNING' ? ' (cancel requested)' : '')],
    ['changes', r.changes ? `${changesText(r.changes)}${r.changes.hasChanges ? '' : ' (no changes)'}${r.drifted ? ' (drift: found by a scheduled run)' : ''}` : '-'],
    ['phase', phaseText(r)],
    ['mode', r.proposed ? 'proposed (read-only)' : 'tracked (write)'],
    ['trigger', cell(r.trigger)],
    ...commitLines(r.commit),
    ['worker', cell(r.worker)],
    ['workspace', r.workspace ? 'sealed' : '-'],
    ['reason', cell(r.reason)],
    ['created', ago(r.createdAt, now)],
    ['ended', ago(r.endedAt, now)],
  ]) + '\n' + table(
    ['#', 'PHASE', 'STATE', 'WORKER', 'EXIT', 'LOG BYTES', 'ERROR'],
    phases.map((p, i) => [String(p.index ?? i), cell(p.name) + (p.confirm ? ' (confirm)' : ''), cell(p.state), cell(p.worker), cell(p.exitCode), cell(p.logBytes), cell(p.error)]),
  ) + resourceRows(r);
}

/** The planned resource addresses with their actions (never values). */
function resourceRows(r: RunView): string {
  const list = r.changes?.resources ?? [];
  if (list.length === 0) return '';
  return '\n' + table(['ACTION', 'RESOURCE'], list.map((x) => [actionOf(x.actions), x.address])) +
    (r.changes?.truncated ? '(more resources changed than listed)\n' : '');
}

const trigger: Command = {
  usage: 'run trigger STACK [--commit SHA | --branch B] [--workspace DIR] [--proposed]',
  summary: 'queue a run; prints its id (a Git stack runs its branch tip, or the commit given; a workspace is tarred and sealed locally)',
  positionals: ['STACK'],
  options: {
    commit: { type: 'string', arg: 'SHA', help: 'run exactly this commit of the stack\'s repository (40 hex characters)' },
    branch: { type: 'string', arg: 'B', help: 'run the tip of this branch (another branch than the stack\'s needs --proposed)' },
    workspace: { type: 'string', arg: 'DIR', help: 'directory to start the run with, sealed to the pool\'s keys (instead of the repository)' },
    proposed: { type: 'boolean', help: 'a read-only (proposed) run instead of a tracked one' },
  },
  async run(ctx, args) {
    const stackRef = args.positionals[0]!;
    const proposed = flag(args, 'proposed');
    const dirArg = str(args, 'workspace');
    const commit = str(args, 'commit');
    const branch = str(args, 'branch');
    if (commit !== undefined && branch !== undefined) throw new ConfigError('Cannot use --commit with --branch: give the exact commit, or the branch whose tip to run');
    if (commit !== undefined && !/^[0-9a-f]{40}$/.test(commit)) throw new ConfigError(`Cannot use --commit ${commit}: expected the full 40-character SHA in lowercase hex (git rev-parse HEAD)`);
    if ((commit !== undefined || branch !== undefined) && dirArg !== undefined) throw new ConfigError('Cannot use --workspace with --commit or --branch: the run starts from the uploaded directory or from the repository, not both');
    let answer: RunReply;
    if (dirArg === undefined) {
      answer = await ctx.client().post<RunReply>(`/v1/stacks/${seg(stackRef)}/runs`, {
        proposed, workspace: null, ...(commit !== undefined ? { commit } : {}), ...(branch !== undefined ? { branch } : {}),
      } satisfies TriggerRequest);
    } else {
      const dir = resolve(ctx.cwd, dirArg);
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) throw new ConfigError(`Cannot use --workspace ${dirArg}: no directory there; expected a directory to tar and seal`);
      const { stack } = await ctx.client().get<StackReply>(`/v1/stacks/${seg(stackRef)}`);
      if (stack.pool == null) throw new ConfigError(`Cannot trigger ${stackRef}: it is not attached to a pool; attach it with launcher admin stack attach ${stackRef} --pool ID`);
      const pool = await getPool(ctx.client(), stack.pool);
      const recipients = recipientsFor(pool.id, activeKeyPems(pool));
      answer = await ctx.client().call<RunReply>('POST', `/v1/stacks/${seg(stack.id)}/runs`, {
        query: { proposed: proposed ? '1' : '0' },
        body: sealedWorkspace(dir, recipients),
      });
    }
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `${cell(answer.run?.id)}\n`);
  },
};

const listCmd: Command = {
  usage: 'run list [--stack ID] [--pool ID] [--state STATE] [--limit N]',
  summary: 'runs, newest first',
  options: {
    stack: { type: 'string', arg: 'ID', help: 'only this stack\'s runs' },
    pool: { type: 'string', arg: 'ID', help: 'only this pool\'s runs' },
    state: { type: 'string', arg: 'STATE', help: `only runs in this state (${STATES.join(', ')})` },
    limit: { type: 'string', arg: 'N', help: 'at most N runs (server default 100, max 1000)' },
  },
  async run(ctx, args) {
    const state = str(args, 'state')?.toUpperCase();
    if (state !== undefined && !STATES.includes(state)) throw new ConfigError(`Cannot use --state ${str(args, 'state')}: expected one of ${STATES.join(', ')}`);
    const limit = str(args, 'limit');
    if (limit !== undefined && !/^[1-9][0-9]{0,3}$/.test(limit)) throw new ConfigError(`Cannot use --limit ${limit}: expected a whole number from 1 to 1000`);
    const answer = await ctx.client().get<RunList>('/v1/runs', { stack: str(args, 'stack'), pool: str(args, 'pool'), state, limit });
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, runRows(answer.runs ?? [], ctx.now()));
  },
};

const show: Command = {
  usage: 'run show RUN',
  summary: 'one run with its phases and results',
  positionals: ['RUN'],
  async run(ctx, args) {
    const answer = await ctx.client().get<RunReply>(`/v1/runs/${seg(args.positionals[0]!)}`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, runFields(answer.run, ctx.now()));
  },
};

const logs: Command = {
  usage: 'run logs RUN [--phase N] [--follow]',
  summary: 'the run\'s stored (masked) logs; --follow streams until the run ends',
  positionals: ['RUN'],
  options: {
    phase: { type: 'string', arg: 'N', help: 'only phase N (numbered from 0)' },
    follow: { type: 'boolean', short: 'f', help: 'keep streaming new output until the run (or the phase) ends' },
  },
  async run(ctx, args) {
    const phase = str(args, 'phase');
    if (phase !== undefined && !/^(0|[1-9][0-9]{0,3})$/.test(phase)) throw new ConfigError(`Cannot use --phase ${phase}: expected a phase number from 0 (see launcher admin run show RUN)`);
    const follow = flag(args, 'follow');
    // Logs are bytes (masked by the launcher), copied as they come: --json does
    // not apply to a byte stream.
    const body = await ctx.client().stream(`/v1/runs/${seg(args.positionals[0]!)}/logs`, {
      query: { phase, follow: follow ? '1' : undefined },
      signal: ctx.signal,
      bodyTimeout: follow ? 0 : undefined,
    });
    await pipeline(body, ctx.out, { end: false });
  },
};

function action(verb: RunAction, summary: string, noun = 'run'): Command {
  return {
    usage: `${noun} ${verb} RUN`,
    summary,
    positionals: ['RUN'],
    async run(ctx, args) {
      const answer = await ctx.client().post<RunReply>(`/v1/runs/${seg(args.positionals[0]!)}/${verb}`);
      if (ctx.json) return write(ctx.out, json(answer));
      const r = answer.run;
      return write(ctx.out, `${cell(r.id)} ${cell(r.state)}${r.cancelRequested && r.state === 'RUNNING' ? ' (cancel requested: the worker stops the phase)' : ''}\n`);
    },
  };
}

export const run: Noun = {
  trigger, list: listCmd, show, logs,
  confirm: action('confirm', 'let an UNCONFIRMED run go on to its next phase'),
  cancel: action('cancel', 'cancel a queued, waiting or running run'),
  discard: action('discard', 'discard an UNCONFIRMED run'),
};

const queueList: Command = {
  usage: 'queue list POOL',
  summary: 'the pool\'s waiting runs in assignment order',
  positionals: ['POOL'],
  async run(ctx, args) {
    const answer = await ctx.client().get<RunList>(`/v1/pools/${seg(args.positionals[0]!)}/queue`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, runRows(answer.runs ?? [], ctx.now()));
  },
};

export const queue: Noun = { list: queueList, prioritize: action('prioritize', 'move a waiting run to the head of its pool\'s queue', 'queue') };
