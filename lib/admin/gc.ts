// `launcher admin gc [--dry-run]`: retention on demand. Says what it removes
// (or, with --dry-run, would remove) and how many bytes.
import { parseDuration } from '../duration.ts';
import { ConfigError } from '../errors.ts';
import { parseRetention } from '../retention/policy.ts';
import { flag, str, write, type Command } from './command.ts';
import { byteSize, json } from './format.ts';
import type { GcReport, GcRequest } from '../protocol.ts';

const listed = (items: string[], total: number): string =>
  items.length === 0 ? '' : `: ${items.slice(0, 10).join(', ')}${total > 10 ? `, … (${total - 10} more)` : ''}`;

export function gcText(r: GcReport): string {
  const verb = r.dryRun ? 'Would remove' : 'Removed';
  const lines: string[] = [];
  if (r.runsEndedBefore === null) lines.push('Runs: kept (no --retain-runs on the server or on this command)');
  else {
    lines.push(`${verb} ${r.runs.count} runs that ended before ${r.runsEndedBefore}: ${byteSize(r.runs.logBytes)} of logs, ${byteSize(r.runs.workspaceBytes)} of sealed workspaces` +
      (r.runs.count > 0 ? ` (ended ${r.runs.oldestEndedAt} to ${r.runs.newestEndedAt})` : ''));
  }
  lines.push(`${verb} ${r.workers.count} workers OFFLINE or gone past the limit${listed(r.workers.ids, r.workers.count)}`);
  lines.push(`${verb} ${r.orphans.files} orphaned files (${byteSize(r.orphans.bytes)})${listed(r.orphans.paths, r.orphans.files)}`);
  lines.push(`${r.dryRun ? 'Would free' : 'Freed'} ${byteSize(r.bytes)} in all`);
  return lines.join('\n') + '\n';
}

function check(text: string, name: string): void {
  try { parseRetention(text, name, parseDuration); } catch (e) { throw new ConfigError((e as Error).message); }
}

export const gc: Command = {
  usage: 'gc [--dry-run] [--retain-runs DURATION] [--retain-offline-workers DURATION]',
  summary: 'remove finished runs, their logs and workspaces, and workers past the retention; say how many bytes',
  options: {
    'dry-run': { type: 'boolean', help: 'only say what would be removed' },
    'retain-runs': { type: 'string', arg: 'DURATION', help: 'runs that ended longer ago go (e.g. 30d, 720h; default: the server\'s --retain-runs)' },
    'retain-offline-workers': { type: 'string', arg: 'DURATION', help: 'workers OFFLINE longer go (default: the server\'s --retain-offline-workers)' },
  },
  async run(ctx, args) {
    const body: GcRequest = { dryRun: flag(args, 'dry-run') };
    const runs = str(args, 'retain-runs');
    const workers = str(args, 'retain-offline-workers');
    // Checked here too, so the message names the flag rather than the API field.
    if (runs !== undefined) { check(runs, '--retain-runs'); body.retainRuns = runs; }
    if (workers !== undefined) { check(workers, '--retain-offline-workers'); body.retainOfflineWorkers = workers; }
    const r = await ctx.client().post<GcReport>('/v1/gc', body);
    return write(ctx.out, ctx.json ? json(r) : gcText(r));
  },
};
