// POST /v1/gc (admin token): retention on demand, or a dry run that only
// reports. Body: {"dryRun": bool, "retainRuns": "30d", "retainOfflineWorkers": "24h"};
// periods not given are the server's own (--retain-runs, --retain-offline-workers).
import { parseDuration } from '../duration.ts';
import { BackupInProgress, type Collector } from '../retention/collector.ts';
import { parseRetention, type RetentionPolicy } from '../retention/policy.ts';
import { bool, str } from './fields.ts';
import { HttpError, readJson, sendJson, type Router } from './http.ts';
import { badField } from './refusal.ts';

function period(body: Record<string, unknown>, name: string): number | undefined {
  const v = str(body, name, { optional: true, max: 32, hint: 'a duration such as "30d", "720h" or "90m"' });
  if (v === undefined) return undefined;
  try { return parseRetention(v, name, parseDuration); } catch {
    throw badField(name, 'a duration more than zero, such as "30d", "720h" or "90m"');
  }
}

export function addGcRoutes(r: Router, collector: Collector): void {
  r.add('POST', '/v1/gc', async (ctx) => {
    const body = await readJson(ctx.req);
    const dryRun = bool(body, 'dryRun', false);
    const policy: RetentionPolicy = {};
    const runs = period(body, 'retainRuns');
    const workers = period(body, 'retainOfflineWorkers');
    if (runs !== undefined) policy.retainRunsMs = runs;
    if (workers !== undefined) policy.retainOfflineWorkersMs = workers;
    let report;
    try {
      report = await collector.collect({ dryRun, policy });
    } catch (e) {
      if (e instanceof BackupInProgress) throw new HttpError(409, 'BACKUP_RUNNING', 'A backup is being written: gc removes nothing until it ends (try again, or use dryRun)');
      throw e;
    }
    ctx.audit = { ...ctx.audit, dryRun, runs: report.runs.count, workers: report.workers.count, orphans: report.orphans.files, bytes: report.bytes };
    sendJson(ctx.res, 200, report);
  });
}
