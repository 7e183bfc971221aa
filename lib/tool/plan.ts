// Planned changes from `terraform show -json PLAN`: counts and the resource
// addresses with their actions, never attribute values. This summary is all the
// server ever learns of a plan. Pure.

import type { PlanSummary } from '../protocol.ts';
export type { PlanSummary, PlannedResource } from '../protocol.ts';

export const MAX_RESOURCES = 10_000;
const MAX_ADDRESS = 1024;

function isActions(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((a) => typeof a === 'string');
}

/** The action a list stands for: create, update, delete, replace, or the single action as given. */
export function actionOf(actions: string[]): string {
  const s = [...actions].sort().join(',');
  if (s === 'create,delete') return 'replace';
  return actions.length === 1 ? actions[0]! : s;
}

/** Summarises a parsed plan JSON document; throws a clear error for something that is not one. */
export function summarisePlan(plan: unknown): PlanSummary {
  if (typeof plan !== 'object' || plan === null || typeof (plan as Record<string, unknown>).format_version !== 'string') {
    throw new Error('not a Terraform plan JSON document (no "format_version"): expected the output of `terraform show -json PLANFILE`');
  }
  const p = plan as { resource_changes?: unknown; output_changes?: unknown };
  const out: PlanSummary = { add: 0, change: 0, destroy: 0, replace: 0, resources: [], truncated: false, hasChanges: false };
  const changes = Array.isArray(p.resource_changes) ? p.resource_changes as Array<Record<string, unknown>> : [];
  for (const rc of changes) {
    const actions = (rc.change as Record<string, unknown> | undefined)?.actions;
    if (!isActions(actions) || typeof rc.address !== 'string') continue;
    const action = actionOf(actions);
    if (action === 'no-op' || action === 'read') continue;
    if (action === 'create') out.add++;
    else if (action === 'update') out.change++;
    else if (action === 'delete') out.destroy++;
    else if (action === 'replace') out.replace++;
    out.hasChanges = true;
    if (out.resources.length < MAX_RESOURCES) out.resources.push({ address: rc.address.slice(0, MAX_ADDRESS), actions: [...actions] });
    else out.truncated = true;
  }
  if (typeof p.output_changes === 'object' && p.output_changes !== null) {
    for (const oc of Object.values(p.output_changes as Record<string, Record<string, unknown>>)) {
      const actions = oc?.actions;
      if (isActions(actions) && actionOf(actions) !== 'no-op') out.hasChanges = true;
    }
  }
  return out;
}

/** `+2 ~0 -1`, with `±N` when something is replaced. */
export function changesText(s: Pick<PlanSummary, 'add' | 'change' | 'destroy' | 'replace'>): string {
  return `+${s.add} ~${s.change} -${s.destroy}${s.replace ? ` ±${s.replace}` : ''}`;
}

/** Checks a summary sent by a worker (the server stores only what passes). */
export function parsePlanSummary(v: unknown): PlanSummary {
  const bad = (what: string) => new Error(`Invalid field "plan${what}": expected {add, change, destroy, replace, resources: [{address, actions}], truncated, hasChanges}`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('');
  const o = v as Record<string, unknown>;
  const count = (k: string): number => {
    const n = o[k];
    if (!Number.isInteger(n) || (n as number) < 0) throw bad(`.${k}`);
    return n as number;
  };
  if (!Array.isArray(o.resources) || o.resources.length > MAX_RESOURCES) throw bad('.resources');
  const resources = o.resources.map((r, i) => {
    const rr = r as Record<string, unknown>;
    if (typeof rr?.address !== 'string' || rr.address.length === 0 || rr.address.length > MAX_ADDRESS || !isActions(rr.actions) || rr.actions.length > 4) throw bad(`.resources[${i}]`);
    return { address: rr.address, actions: rr.actions.map((a) => a.slice(0, 32)) };
  });
  return {
    add: count('add'), change: count('change'), destroy: count('destroy'), replace: count('replace'),
    resources, truncated: o.truncated === true, hasChanges: o.hasChanges === true,
  };
}
