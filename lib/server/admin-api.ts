// The admin API (/v1/*, bearer token): thin HTTP glue over AdminOps, plus the
// log stream that follows a run until it ends by waiting on run events.
import { once } from 'node:events';
import { HttpError, Router, readJson, sendJson, type Ctx } from './http.ts';
import { badField } from './refusal.ts';
import type { AdminOps } from './admin-ops.ts';
import { sealedField } from './admin-ops.ts';
import { RUN_ACTIONS, isTerminal, type RunReply } from '../protocol.ts';
import type { Service } from './service.ts';
import { streamRunEvents } from './run-events.ts';
import { streamFile } from './worker-api.ts';

export function adminRoutes(s: Service, ops: AdminOps): Router {
  const r = new Router();
  const p = (ctx: Ctx, k: string): string => ctx.params[k]!;
  const json = (status: number, fn: (ctx: Ctx, body: Record<string, unknown>) => unknown, audit?: (out: unknown) => Record<string, string>) =>
    async (ctx: Ctx): Promise<void> => {
      const body = ctx.req.method === 'GET' || ctx.req.method === 'HEAD' || ctx.req.method === 'DELETE' ? {} : await readJson(ctx.req);
      const out = await fn(ctx, body);
      if (audit) ctx.audit = { ...ctx.audit, ...audit(out) };
      sendJson(ctx.res, status, out);
    };
  const poolId = (out: unknown): Record<string, string> => ({ pool: String(((out as { pool?: { id?: string } }).pool ?? {}).id ?? '') });

  r.add('GET', '/v1/pools', json(200, () => ops.listPools()));
  r.add('POST', '/v1/pools', json(201, (_c, b) => ops.createPool(b), poolId));
  r.add('GET', '/v1/pools/{pool}', json(200, (c) => ({ pool: ops.poolView(ops.pool(p(c, 'pool'))) })));
  r.add('PATCH', '/v1/pools/{pool}', json(200, (c, b) => ops.updatePool(p(c, 'pool'), b), poolId));
  r.add('DELETE', '/v1/pools/{pool}', json(200, (c) => ops.deletePool(p(c, 'pool')), poolId));
  r.add('POST', '/v1/pools/{pool}/reset', json(200, (c, b) => ops.resetPool(p(c, 'pool'), b), poolId));
  r.add('POST', '/v1/pools/{pool}/cycle', json(200, (c) => ops.cyclePool(p(c, 'pool')), poolId));
  r.add('POST', '/v1/pools/{pool}/keys', json(201, (c, b) => ops.addKey(p(c, 'pool'), b), (o) => ({ key: String((o as { key: { id: string } }).key.id) })));
  r.add('POST', '/v1/pools/{pool}/keys/{key}/retire', json(200, (c) => ops.retireKey(p(c, 'pool'), p(c, 'key'))));
  r.add('GET', '/v1/pools/{pool}/queue', json(200, (c) => ops.queue(p(c, 'pool'))));

  r.add('GET', '/v1/workers', json(200, (c) => ops.listWorkers(c.query)));
  const workerIds = (o: unknown): Record<string, string> => ({ workers: (o as { workers: { id: string }[] }).workers.map((w) => w.id).join(',') });
  r.add('POST', '/v1/workers/drain', json(200, (_c, b) => ops.setDrained(b, true), workerIds));
  r.add('POST', '/v1/workers/undrain', json(200, (_c, b) => ops.setDrained(b, false), workerIds));

  const stackId = (o: unknown): Record<string, string> => ({ stack: (o as { stack: { id: string } }).stack.id });
  r.add('GET', '/v1/stacks', json(200, (c) => ops.listStacks(c.query)));
  r.add('POST', '/v1/stacks', json(201, (_c, b) => ops.createStack(b), stackId));
  r.add('GET', '/v1/stacks/{stack}', json(200, (c) => ({ stack: ops.stackView(ops.stack(p(c, 'stack'))) })));
  r.add('PATCH', '/v1/stacks/{stack}', json(200, (c, b) => ops.updateStack(p(c, 'stack'), b), stackId));
  r.add('DELETE', '/v1/stacks/{stack}', json(200, (c) => ops.deleteStack(p(c, 'stack'), flag(c.query.get('purgeState'), 'purgeState')), stackId));

  r.add('GET', '/v1/stacks/{stack}/state', json(200, (c) => ops.stateList(p(c, 'stack'))));
  r.add('GET', '/v1/stacks/{stack}/state/{version}', async (ctx) => {
    const arg = p(ctx, 'version');
    const v = arg === 'current' ? undefined : Number(arg);
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw badField('version', 'a state version number from 1, or "current"');
    const st = ops.stateStack(p(ctx, 'stack'));
    const f = await s.states.openVersion(st, v);
    ctx.res.setHeader('x-state-version', String(f.row.version));
    ctx.res.setHeader('x-state-sha256', f.row.sha256);
    ctx.audit = { ...ctx.audit, stack: st.id, stateVersion: String(f.row.version) };
    streamFile(ctx, f);
  });
  r.add('PUT', '/v1/stacks/{stack}/state', async (ctx) => {
    const declared = Number(ctx.req.headers['content-length'] ?? NaN);
    const out = await ops.statePush(p(ctx, 'stack'), ctx.req, declared, ctx.query);
    ctx.audit = { ...ctx.audit, stack: p(ctx, 'stack') };
    sendJson(ctx.res, 201, out);
  });
  r.add('GET', '/v1/stacks/{stack}/schedules', json(200, (c) => ops.listSchedules(p(c, 'stack'))));
  r.add('POST', '/v1/stacks/{stack}/schedules', json(201, (c, b) => ops.addSchedule(p(c, 'stack'), b)));
  r.add('DELETE', '/v1/schedules/{schedule}', json(200, (c) => ops.deleteSchedule(p(c, 'schedule'))));
  r.add('POST', '/v1/stacks/{stack}/state/rollback', json(201, (c, b) => ops.stateRollback(p(c, 'stack'), b)));
  r.add('GET', '/v1/stacks/{stack}/webhook', json(200, (c) => ops.webhook(p(c, 'stack'))));

  r.add('POST', '/v1/stacks/{stack}/runs', async (ctx) => {
    const type = String(ctx.req.headers['content-type'] ?? '');
    let out: RunReply;
    if (/^application\/octet-stream\b/i.test(type)) {
      const proposed = flag(ctx.query.get('proposed'), 'proposed');
      ops.stack(p(ctx, 'stack'));
      const declared = Number(ctx.req.headers['content-length'] ?? NaN);
      const got = await s.workspaces.receive(ctx.req, declared);
      try {
        out = await ops.trigger(p(ctx, 'stack'), proposed, got ? { tmp: got.tmp } : undefined);
      } catch (e) {
        if (got) await s.opts.blobs.discard(got.tmp);
        throw e;
      }
    } else {
      const body = await readJson(ctx.req);
      if (body.proposed !== undefined && typeof body.proposed !== 'boolean') throw badField('proposed', 'true or false');
      const ws = sealedField(body, 'workspace', s.opts.maxWorkspaceBytes);
      const opt = (k: string): string | undefined => {
        const v = body[k];
        if (v === undefined || v === null) return undefined;
        if (typeof v !== 'string') throw badField(k, k === 'commit' ? 'a 40-character commit SHA' : 'a branch name');
        return v;
      };
      const commit = opt('commit');
      const branch = opt('branch');
      out = await ops.trigger(p(ctx, 'stack'), body.proposed === true, ws ? Buffer.from(ws) : undefined, {
        ...(commit !== undefined ? { commit } : {}), ...(branch !== undefined ? { branch } : {}),
      });
    }
    ctx.audit = { ...ctx.audit, run: out.run.id };
    sendJson(ctx.res, 201, out);
  });

  r.add('GET', '/v1/runs', json(200, (c) => ops.listRuns(c.query)));
  r.add('GET', '/v1/runs/{run}', json(200, (c) => ({ run: ops.runView(ops.run(p(c, 'run'))) })));
  for (const action of RUN_ACTIONS) {
    r.add('POST', `/v1/runs/{run}/${action}`, json(200, (c) => ops.act(p(c, 'run'), action)));
  }
  r.add('GET', '/v1/runs/{run}/events', async (ctx) => {
    const id = ops.run(p(ctx, 'run')).id;
    await streamRunEvents(s, ctx, id, () => ops.runView(ops.run(id)));
  });
  r.add('GET', '/v1/runs/{run}/workspace', async (ctx) => {
    streamFile(ctx, await s.workspaces.open(ops.run(p(ctx, 'run'))));
  });
  r.add('GET', '/v1/runs/{run}/state', async (ctx) => {
    // A state upload refused for a conflict, kept sealed beside its run (nothing is lost).
    const run = ops.run(p(ctx, 'run'));
    const row = s.store.states.latestConflict(run.id);
    const f = row ? await s.opts.blobs.open(s.states.conflictPath(run.id, row.phase)) : undefined;
    if (!row || !f) throw new HttpError(404, 'NO_STATE_CONFLICT', `Run ${run.id} has no kept state: its state uploads were all stored as versions (see GET /v1/stacks/{id}/state)`);
    ctx.res.setHeader('x-state-base', String(row.base ?? 'none'));
    ctx.res.setHeader('x-state-current', String(row.current ?? 'none'));
    streamFile(ctx, f);
  });
  r.add('GET', '/v1/runs/{run}/logs', async (ctx) => {
    const run = ops.run(p(ctx, 'run'));
    const phaseArg = ctx.query.get('phase');
    let phases = Array.from({ length: run.phase_count }, (_, i) => i);
    if (phaseArg !== null) {
      const n = Number(phaseArg);
      if (!Number.isInteger(n) || n < 0 || n >= run.phase_count) throw badField('phase', `a phase number from 0 to ${run.phase_count - 1}`);
      phases = [n];
    }
    await streamLogs(s, ctx, run.id, phases, flag(ctx.query.get('follow'), 'follow'));
  });
  return r;
}

function flag(v: string | null, name: string): boolean {
  if (v === null || v === '' || v === '0' || v === 'false') return false;
  if (v === '1' || v === 'true') return true;
  throw badField(name, '1 or 0');
}

/**
 * Streams stored log bytes phase after phase. With `follow`, it waits for the
 * run's next event (a chunk stored, a state change) instead of re-reading on a
 * timer, and ends when the run (or the requested phase) has ended.
 */
async function streamLogs(s: Service, ctx: Ctx, runId: string, phases: number[], follow: boolean): Promise<void> {
  const { res } = ctx;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  if (follow) res.flushHeaders();
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  try {
    for (const idx of phases) {
      let offset = 0;
      for (;;) {
        if (res.destroyed) return;
        const run = s.store.runs.get(runId)!;
        const ph = s.store.runs.phase(runId, idx)!;
        if (ph.log_bytes > offset) {
          const end = ph.log_bytes;
          await s.opts.logs.copy(runId, idx, offset, end, res);
          offset = end;
          continue;
        }
        if (ph.outcome !== null || isTerminal(run.state) || !follow) break;
        // Nothing new yet: wait for this run's next event. Registered in the
        // same tick as the check above, so no event can slip between them.
        await once(s.events, runId, { signal: gone.signal });
      }
    }
  } catch (e) {
    if ((e as Error).name === 'AbortError') return;
    throw e;
  } finally {
    if (!res.destroyed) res.end();
  }
}
