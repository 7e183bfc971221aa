// Retention on demand, as `launcher admin gc`: the same POST /v1/gc, first as
// a dry run that says what would go, then for real. Periods left empty are the
// server's own (--retain-runs, --retain-offline-workers); a period is checked
// here with the CLI's own rule before anything is sent.
import { useState } from 'preact/hooks';
import type { GcReport, GcRequest } from '../../../protocol.ts';
import { parseDuration } from '../../../duration.ts';
import { parseRetention } from '../../../retention/policy.ts';
import { post } from '../api.ts';
import { byteSize } from '../../../admin/format.ts';
import { ErrorNote, Page, html, useAction } from '../ui.ts';


function Listed({ items, total }: { items: string[]; total: number }) {
  if (items.length === 0) return null;
  return html`<ul class="small">${items.slice(0, 20).map((i) => html`<li><code>${i}</code></li>`)}${total > 20 ? html`<li>… ${total - 20} more</li>` : null}</ul>`;
}

function Report({ r }: { r: GcReport }) {
  const verb = r.dryRun ? 'Would remove' : 'Removed';
  return html`<div class="panel" role="status" aria-label=${r.dryRun ? 'Dry run' : 'Removed'}>
    <h2>${r.dryRun ? 'Dry run: nothing was removed' : 'Removed'}</h2>
    <ul>
      <li>${r.runsEndedBefore === null ? 'Runs: kept (the server has no --retain-runs and none was given here)'
        : `${verb} ${r.runs.count} runs that ended before ${r.runsEndedBefore}: ${byteSize(r.runs.logBytes)} of logs, ${byteSize(r.runs.workspaceBytes)} of sealed workspaces`}</li>
      <li>${verb} ${r.workers.count} workers OFFLINE or gone past the limit<${Listed} items=${r.workers.ids} total=${r.workers.count} /></li>
      <li>${verb} ${r.orphans.files} orphaned files (${byteSize(r.orphans.bytes)})<${Listed} items=${r.orphans.paths} total=${r.orphans.files} /></li>
    </ul>
    <p><strong>${r.dryRun ? 'Would free' : 'Freed'} ${byteSize(r.bytes)} in all.</strong></p>
  </div>`;
}

/** The CLI's check of a period (empty: the server's own); a message naming the field, or ''. */
function periodProblem(text: string, label: string): string {
  if (text.trim() === '') return '';
  try { parseRetention(text, label, parseDuration); return ''; } catch (e) { return (e as Error).message; }
}

export function GcPage() {
  const [runs, setRuns] = useState('');
  const [workers, setWorkers] = useState('');
  const [report, setReport] = useState<GcReport | undefined>(undefined);
  const act = useAction();
  const runsProblem = periodProblem(runs, '"Remove runs that ended more than"');
  const workersProblem = periodProblem(workers, '"Remove workers OFFLINE for more than"');
  const go = (dryRun: boolean) => async (e?: Event): Promise<void> => {
    e?.preventDefault();
    if (runsProblem || workersProblem) return;
    if (!dryRun && !confirm('Remove these runs (with their logs and sealed workspaces), workers and orphaned files for good?')) return;
    const body: GcRequest = { dryRun, ...(runs.trim() ? { retainRuns: runs.trim() } : {}), ...(workers.trim() ? { retainOfflineWorkers: workers.trim() } : {}) };
    await act.run(async () => setReport(await post<GcReport>('/v1/gc', body)));
  };
  const field = (id: string, label: string, value: string, set: (v: string) => void, problem: string, help: string) => html`
    <div class="field"><label for=${id}>${label}</label>
      <input id=${id} class="short" autocomplete="off" spellcheck=${false} placeholder="the server's" value=${value} aria-invalid=${problem ? 'true' : undefined}
        aria-describedby=${`${id}-help`} onInput=${(e: Event) => { set((e.target as HTMLInputElement).value); setReport(undefined); }} />
      <p id=${`${id}-help`} class=${problem ? 'error small' : 'muted small'} role=${problem ? 'alert' : undefined}>${problem || help}</p></div>`;
  return html`<${Page} title="Retention">
    <p>Finished runs (with their logs and sealed workspaces) and workers that stayed OFFLINE go once they are older
      than the retention periods; files nothing refers to any more go too. The server applies its own periods
      (<code>--retain-runs</code>, <code>--retain-offline-workers</code>) on its own; here you can run it now, with
      those periods or others. Runs still queued, running or waiting for confirmation are never removed.</p>
    <form class="form" onSubmit=${go(true)} aria-label="Retention">
      ${field('gc-runs', 'Remove runs that ended more than', runs, setRuns, runsProblem, 'ago: a duration such as 30d, 720h or 90m; empty: the server\'s --retain-runs')}
      ${field('gc-workers', 'Remove workers OFFLINE for more than', workers, setWorkers, workersProblem, 'a duration such as 24h; empty: the server\'s --retain-offline-workers')}
      <div class="actions">
        <button type="submit" disabled=${act.busy || Boolean(runsProblem || workersProblem)}>Dry run</button>
        <button type="button" class="danger" disabled=${act.busy || Boolean(runsProblem || workersProblem)} onClick=${go(false)}>Remove now</button>
      </div>
    </form>
    <${ErrorNote} error=${act.error} />
    ${report ? html`<${Report} r=${report} />` : null}
    <p class="muted small">The same from a terminal: <code>launcher admin gc --dry-run --retain-runs 30d</code>, then without <code>--dry-run</code>.</p>
  </${Page}>`;
}
