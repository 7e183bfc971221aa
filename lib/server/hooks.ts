// POST /v1/hooks/git: pushes from Git servers. No client certificate and no
// admin token: a delivery is authenticated by the webhook secret of the stacks
// on the repository it names (GitHub-style HMAC signature, or GitLab's token),
// and queues runs only for stacks whose secret verified it. The parsing and
// signature checks are lib/vcs/webhook.ts; this file decides what to queue.
import type { AdminOps } from './admin-ops.ts';
import { transaction } from './db.ts';
import { HttpError, readBody, sendJson, type Ctx } from './http.ts';
import { iso, newId } from './ids.ts';
import type { Service } from './service.ts';
import type { StackRow } from './store.ts';
import type { HookReply } from '../protocol.ts';
import { pathsMatch } from '../vcs/paths.ts';
import { repoKey } from '../vcs/repo.ts';
import { PayloadError, deliveryOf, isPushEvent, parsePush, signatureOf, verifySignature } from '../vcs/webhook.ts';

export const HOOK_BODY_LIMIT = 1024 * 1024;

export interface HookAnswer {
  status: number;
  body: HookReply;
  /** Fields for the audit line (never the secret or the payload). */
  audit: Record<string, string | number | boolean | null>;
}

/** Repository URLs a payload names (push, ping and other events share this part). */
function repoUrls(payload: Record<string, unknown>): string[] {
  const o = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? v as Record<string, unknown> : {});
  const r = o(payload.repository);
  const p = o(payload.project);
  return [r.clone_url, r.html_url, r.ssh_url, r.git_url, r.url, r.homepage, r.git_http_url, r.git_ssh_url, p.git_http_url, p.git_ssh_url, p.web_url, p.http_url, p.ssh_url]
    .filter((u): u is string => typeof u === 'string' && u !== '');
}

export async function receiveGitHook(s: Service, ops: AdminOps, ctx: Ctx): Promise<HookAnswer> {
  const body = await readBody(ctx.req, HOOK_BODY_LIMIT, () => new HttpError(413, 'BODY_TOO_LARGE', `Webhook body too large: the limit is ${HOOK_BODY_LIMIT} bytes (send push events only)`));
  const delivery = deliveryOf(ctx.req.headers);
  const audit: HookAnswer['audit'] = { sender: delivery.sender, event: delivery.event ?? null, delivery: delivery.id ?? null };
  let payload: Record<string, unknown>;
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    payload = v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'INVALID_JSON', 'Invalid webhook body: expected a JSON push payload (set the webhook\'s content type to application/json)');
  }
  const urls = repoUrls(payload);
  const keys = [...new Set(urls.map(repoKey).filter((k): k is string => k !== undefined))];
  const candidates = s.store.stacks.byRepoKey(keys);
  audit.repo = urls[0] ?? null;
  if (candidates.length === 0) {
    return { status: 202, body: { message: 'no stack uses this repository', runs: [], skipped: [] }, audit: { ...audit, outcome: 'no stack' } };
  }
  const sig = signatureOf(ctx.req.headers);
  const verified = candidates.filter((st) => verifySignature(sig, body, st.webhook_secret ?? ''));
  if (verified.length === 0) {
    throw new HookRefused(sig === undefined
      ? 'Webhook refused: no signature; configure the webhook with the secret from launcher admin stack webhook STACK (sent as X-Hub-Signature-256 or X-Gitlab-Token)'
      : 'Webhook refused: the signature does not match the secret of any stack on this repository (launcher admin stack webhook STACK prints it)', audit);
  }
  audit.stacks = verified.map((st) => st.id).join(',');
  if (!isPushEvent(delivery)) {
    return { status: 202, body: { message: `event "${delivery.event ?? 'unknown'}" ignored: only push events queue runs`, runs: [], skipped: [] }, audit: { ...audit, outcome: 'ignored event' } };
  }
  let push: ReturnType<typeof parsePush>;
  try { push = parsePush(payload, delivery.sender); } catch (e) {
    if (e instanceof PayloadError) throw new HttpError(400, 'INVALID_PAYLOAD', e.message);
    throw e;
  }
  audit.ref = push.ref;
  audit.commit = push.after ?? null;

  const runs: HookReply['runs'] = [];
  const skipped: HookReply['skipped'] = [];
  const now = iso();
  transaction(s.store.db, () => {
    if (delivery.id !== undefined && !s.store.runs.addDelivery(`${delivery.sender}:${delivery.id}`, now)) {
      for (const st of verified) skipped.push({ stack: st.id, reason: 'delivery already received' });
      return;
    }
    for (const st of verified) {
      const why = skipReason(st, push);
      if (why) { skipped.push({ stack: st.id, reason: why }); continue; }
      const proposed = push.branch !== st.branch;
      if (s.store.runs.pushRun(st.id, push.after!, proposed)) {
        skipped.push({ stack: st.id, reason: `a push already queued a ${proposed ? 'proposed' : 'tracked'} run at ${push.after}` });
        continue;
      }
      const id = newId('run');
      ops.insertRun(id, st, ops.triggerPool(st), proposed, false, {
        repo: st.repo!, branch: push.branch!, sha: push.after!, author: push.head?.author ?? null, message: push.head?.message ?? null,
      }, 'push');
      runs.push({ id, stack: st.id, stackName: st.name, proposed, commit: push.after! });
    }
  });
  audit.runs = runs.map((r) => r.id).join(',');
  s.log.info('Git push received', { repo: audit.repo as string, ref: push.ref, commit: push.after ?? null, runs: runs.length, skipped: skipped.length });
  return { status: 202, body: { message: runs.length > 0 ? `queued ${runs.length} run(s)` : 'nothing queued', runs, skipped }, audit: { ...audit, outcome: `queued ${runs.length}` } };
}

function skipReason(st: StackRow, push: ReturnType<typeof parsePush>): string | undefined {
  if (push.branch === undefined) return `${push.ref} is not a branch`;
  if (push.deleted) return `branch ${push.branch} was deleted`;
  if (!st.pool_id) return 'the stack is not attached to a worker pool';
  if (push.branch !== st.branch && st.propose_branches === 0) return `branch ${push.branch} is not the stack's branch (${st.branch}) and proposed runs on push are off`;
  const filters = JSON.parse(st.trigger_paths) as string[];
  if (!pathsMatch(filters, push.changed)) return `no changed path matches the trigger paths (${filters.join(', ')})`;
  return undefined;
}

/** A 401 that still carries its audit fields. */
export class HookRefused extends HttpError {
  readonly audit: HookAnswer['audit'];
  constructor(message: string, audit: HookAnswer['audit']) {
    super(401, 'WEBHOOK_SIGNATURE_INVALID', message);
    this.audit = audit;
  }
}

export function sendHook(ctx: Ctx, a: HookAnswer): void { sendJson(ctx.res, a.status, a.body); }
