// `launcher admin stack schedule add|list|delete`: drift detection on a cron
// schedule (UTC). Each due slot queues a proposed run; one that plans changes
// marks the stack as drifted, and with --reconcile queues a tracked run.
import { ConfigError } from '../errors.ts';
import type { ScheduleList, ScheduleReply, ScheduleRequest } from '../protocol.ts';
import { parseCron, CronError } from '../schedule/cron.ts';
import { seg } from './client.ts';
import { flag, need, write, type Command } from './command.ts';
import { ago, cell, json, table } from './format.ts';

const ACTIONS = ['add', 'list', 'delete'];

export const schedule: Command = {
  usage: 'stack schedule add STACK --cron "EXPR" [--reconcile] | list STACK | delete SCHEDULE',
  summary: 'drift detection: a proposed run at every slot of a UTC cron expression; --reconcile queues a tracked run when it finds drift',
  positionals: ['ACTION', 'STACK|SCHEDULE'],
  options: {
    cron: { type: 'string', arg: 'EXPR', help: 'UTC cron expression: minute hour day-of-month month day-of-week (e.g. "0 3 * * *"), or six fields with seconds first' },
    reconcile: { type: 'boolean', help: 'when a scheduled run finds drift, queue a tracked run' },
  },
  async run(ctx, args) {
    const [action, ref] = args.positionals as [string, string];
    if (!ACTIONS.includes(action)) throw new ConfigError(`Unknown schedule action "${action}": expected one of ${ACTIONS.join(', ')} (usage: launcher admin ${this.usage})`);
    if (action === 'add') {
      const cron = need(args, 'cron', 'the UTC cron expression, e.g. --cron "0 3 * * *"', this.usage);
      try { parseCron(cron); } catch (e) {
        if (e instanceof CronError) throw new ConfigError(`Cannot use --cron "${cron}": ${e.message}`);
        throw e;
      }
      const answer = await ctx.client().post<ScheduleReply>(`/v1/stacks/${seg(ref)}/schedules`, { cron, reconcile: flag(args, 'reconcile') } satisfies ScheduleRequest);
      if (ctx.json) return write(ctx.out, json(answer));
      return write(ctx.out, `${answer.schedule.id} (next slot ${answer.schedule.nextSlot ?? 'none'} UTC)\n`);
    }
    if (args.values.cron !== undefined || args.values.reconcile !== undefined) throw new ConfigError(`--cron and --reconcile go with schedule add, not schedule ${action}`);
    if (action === 'list') {
      const answer = await ctx.client().get<ScheduleList>(`/v1/stacks/${seg(ref)}/schedules`);
      if (ctx.json) return write(ctx.out, json(answer));
      return write(ctx.out, table(['ID', 'CRON (UTC)', 'RECONCILE', 'LAST SLOT', 'NEXT SLOT', 'CREATED'],
        answer.schedules.map((s) => [s.id, s.cron, s.reconcile ? 'yes' : 'no', cell(s.lastSlot), cell(s.nextSlot), ago(s.createdAt, ctx.now())])));
    }
    const answer = await ctx.client().call<ScheduleReply>('DELETE', `/v1/schedules/${seg(ref)}`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `Deleted schedule ${answer.schedule.id}\n`);
  },
};
