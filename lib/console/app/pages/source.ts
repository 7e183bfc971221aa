// Where a stack's files come from: uploaded with each trigger, or a Git
// repository and branch the worker fetches at the run's exact commit (the
// server never sees the code). The repository credential is sealed in this
// browser to the pool's keys, like secrets; the webhook that queues runs on
// push is shown with its secret for the Git host's settings.
import type { CommitView, StackRequest, StackView, WebhookReply } from '../../../protocol.ts';
import { enc } from '../api.ts';
import { Code, ErrorNote, html, useGet } from '../ui.ts';

export interface SourceForm {
  git: boolean;
  repo: string;
  branch: string;
  username: string;
  password: string;
  clearCredential: boolean;
  triggerPaths: string;
  proposeBranches: boolean;
}

export const NO_SOURCE: SourceForm = { git: false, repo: '', branch: '', username: '', password: '', clearCredential: false, triggerPaths: '', proposeBranches: true };

export function sourceForm(s: StackView | undefined): SourceForm {
  if (!s?.repo) return NO_SOURCE;
  return { ...NO_SOURCE, git: true, repo: s.repo, branch: s.branch ?? '', triggerPaths: s.triggerPaths.join('\n'), proposeBranches: s.proposeBranches };
}

export function SourceFields({ f, set, stack, sealedTo }: { f: SourceForm; set: (f: SourceForm) => void; stack: StackView | undefined; sealedTo: number }) {
  const up = (p: Partial<SourceForm>) => set({ ...f, ...p });
  const input = (id: string, label: string, key: 'repo' | 'branch' | 'username' | 'password', extra: Record<string, string | boolean> = {}) => html`<div class="field"><label for=${id}>${label}</label>
    <input id=${id} spellcheck=${false} autocomplete="off" value=${f[key]} onInput=${(e: Event) => up({ [key]: (e.target as HTMLInputElement).value })} ...${extra} /></div>`;
  return html`<fieldset class="source"><legend>Source</legend>
    <div class="field"><label for="stack-source">Files come from</label>
      <select id="stack-source" value=${f.git ? 'git' : 'upload'} onChange=${(e: Event) => up({ git: (e.target as HTMLSelectElement).value === 'git' })}>
        <option value="upload">A workspace uploaded with each trigger (launcher admin run trigger --workspace)</option>
        <option value="git">A Git repository</option>
      </select></div>
    ${f.git ? html`
      ${input('stack-repo', 'Repository URL', 'repo', { placeholder: 'https://git.example.com/infra.git', required: true })}
      ${input('stack-branch', 'Branch', 'branch', { placeholder: 'main' })}
      <div class="pair">
        ${input('repo-username', 'Credential user (optional)', 'username', { placeholder: 'git' })}
        ${input('repo-password', 'Credential token or password', 'password', { type: 'password', autocomplete: 'new-password' })}
      </div>
      <p class="muted small">The credential is sealed in this browser to the pool's keys: only workers can open it.
        ${stack?.repoCredential ? html` <span class="sealed-status">Stored credential: sealed to ${sealedTo} key${sealedTo === 1 ? '' : 's'}.</span>` : ''}</p>
      ${stack?.repoCredential ? html`<label class="check"><input type="checkbox" checked=${f.clearCredential} onChange=${(e: Event) => up({ clearCredential: (e.target as HTMLInputElement).checked })} /> Remove the stored credential</label>` : null}
      <div class="field"><label for="stack-paths">Trigger paths (one pattern per line; a push must touch one to queue a run; empty: any change)</label>
        <textarea id="stack-paths" rows="2" spellcheck=${false} placeholder="infra/**" value=${f.triggerPaths} onInput=${(e: Event) => up({ triggerPaths: (e.target as HTMLTextAreaElement).value })}></textarea></div>
      <label class="check"><input type="checkbox" checked=${f.proposeBranches} onChange=${(e: Event) => up({ proposeBranches: (e.target as HTMLInputElement).checked })} /> Pushes to other branches queue proposed runs</label>` : null}
  </fieldset>`;
}

/** The body fields for the form (only what applies); `sealCredential` seals {"username", "password"}. */
export async function sourceFields(f: SourceForm, stack: StackView | undefined, sealCredential: (json: string) => Promise<string>): Promise<StackRequest> {
  if (!f.git) return stack?.repo ? { repo: null } : {};
  const out: StackRequest = {
    repo: f.repo.trim(),
    ...(f.branch.trim() ? { branch: f.branch.trim() } : {}),
    triggerPaths: f.triggerPaths.split('\n').map((l) => l.trim()).filter(Boolean),
    proposeBranches: f.proposeBranches,
  };
  if (f.password) out.repoCredential = await sealCredential(JSON.stringify({ username: f.username.trim() || 'git', password: f.password }));
  else if (f.clearCredential) out.repoCredential = null;
  return out;
}

export function Webhook({ stack }: { stack: StackView }) {
  const hook = useGet<WebhookReply>(`/v1/stacks/${enc(stack.id)}/webhook`);
  if (!hook.data) return html`<${ErrorNote} error=${hook.error} />`;
  const w = hook.data.webhook;
  return html`<p class="muted small">In the Git host's webhook settings for <code>${w.repo}</code>: payload URL, content type <code>${w.contentType}</code>,
      events ${w.events.join(', ')}, and this secret (shared by ${w.stacks.join(', ')}).</p>
    <${Code} text=${w.url} label="Webhook URL" />
    <${Code} text=${w.secret} label="Webhook secret" />`;
}

export function CommitFacts({ commit }: { commit: CommitView | null | undefined }) {
  if (!commit) return null;
  return html`<dt>Commit</dt><dd>${commit.sha ? html`<code title=${commit.sha}>${commit.sha.slice(0, 12)}</code>` : html`<span class="muted">resolving${commit.branch ? ` ${commit.branch}` : ''}…</span>`}
    ${commit.branch ? html` on <code>${commit.branch}</code>` : null}${commit.author ? ` by ${commit.author}` : ''}
    ${commit.message ? html`<div class="muted small">${commit.message.split('\n')[0]}</div>` : null}
    <div class="muted small">${commit.repo}</div></dd>`;
}
