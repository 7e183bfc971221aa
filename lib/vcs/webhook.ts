// Push webhooks from Git servers, without sockets: which server sent it, how
// it is signed, and what it says (repository, branch, commit, changed paths).
//
// Understood senders:
//   GitHub          X-GitHub-Event: push,   X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body), X-GitHub-Delivery
//   Gitea/Forgejo   X-Gitea-Event / X-Forgejo-Event: push, the same X-Hub-Signature-256, X-Gitea-Delivery / X-Forgejo-Delivery
//   GitLab          X-Gitlab-Event: Push Hook, X-Gitlab-Token: SECRET (sent as is), X-Gitlab-Event-UUID
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SHA_RE, ZERO_SHA } from './repo.ts';

export type Headers = Record<string, string | string[] | undefined>;

const header = (h: Headers, name: string): string | undefined => {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

export type Sender = 'github' | 'gitea' | 'forgejo' | 'gitlab' | 'unknown';

export interface Delivery {
  sender: Sender;
  /** The event name as sent ("push", "Push Hook", "ping"…). */
  event: string | undefined;
  /** The sender's delivery id, when it sends one. */
  id: string | undefined;
}

export function deliveryOf(h: Headers): Delivery {
  if (header(h, 'x-gitlab-event') !== undefined) {
    return { sender: 'gitlab', event: header(h, 'x-gitlab-event'), id: header(h, 'x-gitlab-event-uuid') ?? header(h, 'idempotency-key') };
  }
  if (header(h, 'x-forgejo-event') !== undefined) return { sender: 'forgejo', event: header(h, 'x-forgejo-event'), id: header(h, 'x-forgejo-delivery') };
  if (header(h, 'x-gitea-event') !== undefined) return { sender: 'gitea', event: header(h, 'x-gitea-event'), id: header(h, 'x-gitea-delivery') };
  if (header(h, 'x-github-event') !== undefined) return { sender: 'github', event: header(h, 'x-github-event'), id: header(h, 'x-github-delivery') };
  return { sender: 'unknown', event: undefined, id: undefined };
}

/** The signature a delivery carries, or undefined when it carries none. */
export function signatureOf(h: Headers): { kind: 'hmac-sha256'; hex: string } | { kind: 'token'; token: string } | undefined {
  const sig = header(h, 'x-hub-signature-256');
  if (sig !== undefined) {
    const m = /^sha256=([0-9a-fA-F]{64})$/.exec(sig.trim());
    return { kind: 'hmac-sha256', hex: m ? m[1]!.toLowerCase() : '' };
  }
  const token = header(h, 'x-gitlab-token');
  if (token !== undefined) return { kind: 'token', token };
  return undefined;
}

/** Constant-time check of a delivery's signature against one secret. */
export function verifySignature(sig: ReturnType<typeof signatureOf>, body: Uint8Array, secret: string): boolean {
  if (!sig || secret === '') return false;
  if (sig.kind === 'hmac-sha256') {
    if (sig.hex.length !== 64) return false;
    const want = createHmac('sha256', secret).update(body).digest();
    return timingSafeEqual(want, Buffer.from(sig.hex, 'hex'));
  }
  // Hash both sides so the comparison does not depend on the token's length.
  const a = createHmac('sha256', 'gitlab-token').update(sig.token).digest();
  const b = createHmac('sha256', 'gitlab-token').update(secret).digest();
  return timingSafeEqual(a, b);
}

/** The GitHub-style signature header value for a body (for tests and docs). */
export function signBody(body: Uint8Array | string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface CommitInfo { sha: string; author: string | null; message: string | null }

export interface PushEvent {
  /** Every URL the payload gives for the repository (clone, web, SSH). */
  repoUrls: string[];
  /** The branch name (refs/heads/ stripped); undefined for a tag push. */
  branch: string | undefined;
  ref: string;
  /** The pushed commit; undefined when the push deleted the branch. */
  after: string | undefined;
  deleted: boolean;
  head: CommitInfo | undefined;
  /** Paths the pushed commits added, changed or removed; undefined when the payload does not say for sure. */
  changed: string[] | undefined;
}

export class PayloadError extends Error {
  constructor(message: string) { super(message); this.name = 'PayloadError'; }
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Obj : {});
const s = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** First line of a commit message, at most 500 characters. */
export function firstLine(message: string | null | undefined): string | null {
  if (message == null) return null;
  const line = message.split('\n', 1)[0]!.trim();
  return line.length > 500 ? `${line.slice(0, 499)}…` : line;
}

function author(c: Obj): string | null {
  const a = obj(c.author);
  const name = s(a.name) ?? s(a.username);
  const email = s(a.email);
  if (!name && !email) return null;
  return email ? `${name ?? ''} <${email}>`.trim() : name!;
}

/**
 * Reads a push payload (GitHub, Gitea, Forgejo and GitLab share enough of a
 * shape: ref, before, after, repository/project, commits with added/modified/
 * removed). Throws PayloadError naming what is missing.
 */
export function parsePush(payload: unknown, sender: Sender): PushEvent {
  const p = obj(payload);
  const ref = s(p.ref);
  if (!ref) throw new PayloadError('Push payload without "ref": expected a push event (refs/heads/BRANCH)');
  const repo = obj(p.repository);
  const project = obj(p.project);
  const urls = [
    repo.clone_url, repo.html_url, repo.ssh_url, repo.git_url, repo.url, repo.homepage, repo.git_http_url, repo.git_ssh_url,
    project.git_http_url, project.git_ssh_url, project.web_url, project.http_url, project.ssh_url,
  ].map(s).filter((u): u is string => u !== undefined);
  if (urls.length === 0) throw new PayloadError('Push payload without a repository URL: expected "repository.clone_url" (GitHub, Gitea) or "project.git_http_url" (GitLab)');
  const afterRaw = s(p.checkout_sha) ?? s(p.after);
  const deleted = p.deleted === true || s(p.after) === ZERO_SHA || (sender === 'gitlab' && p.checkout_sha === null);
  const after = !deleted && afterRaw && SHA_RE.test(afterRaw) ? afterRaw : undefined;
  if (!deleted && !after) throw new PayloadError('Push payload without a commit: expected "after" to be a 40-character commit SHA');
  const commits = Array.isArray(p.commits) ? p.commits.map(obj) : [];
  const headObj = obj(p.head_commit);
  const headRaw = s(headObj.id) ? headObj : commits.find((c) => c.id === after) ?? commits[commits.length - 1];
  const head = after && headRaw ? { sha: after, author: author(headRaw), message: firstLine(s(headRaw.message)) } : undefined;
  // The file lists are complete only when every pushed commit is listed
  // (GitHub and GitLab list at most 20 with files, GitLab says how many there were).
  const total = typeof p.total_commits_count === 'number' ? p.total_commits_count : commits.length;
  const changed = commits.length > 0 && total <= commits.length && p.forced !== true ? changedPaths(commits) : undefined;
  return { repoUrls: urls, branch: branchOf(ref), ref, after, deleted, head, changed };
}

function changedPaths(commits: Obj[]): string[] | undefined {
  const set = new Set<string>();
  for (const c of commits) {
    for (const k of ['added', 'modified', 'removed']) {
      const list = c[k];
      if (!Array.isArray(list)) return undefined;
      for (const f of list) if (typeof f === 'string') set.add(f);
    }
  }
  return [...set];
}

function branchOf(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

/** True for the events that are pushes. */
export function isPushEvent(d: Delivery): boolean {
  const e = (d.event ?? '').toLowerCase();
  return e === 'push' || e === 'push hook';
}

/**
 * The key a delivery's run is deduplicated on when the sender's delivery id
 * is missing or new: one run per stack, commit and kind (tracked or proposed).
 */
export function dedupeKey(stackId: string, sha: string, proposed: boolean): string {
  return `${stackId}:${sha}:${proposed ? 'proposed' : 'tracked'}`;
}
