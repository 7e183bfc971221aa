// Workers: status, metadata tags (filter by tag), version, host facts, last
// seen and current run; drain and undrain one, or every worker with a tag.
import { useState } from 'preact/hooks';
import { WORKER_STATUSES, type PoolList, type WorkerList, type WorkerSelector } from '../../../protocol.ts';
import { enc, post, qs } from '../api.ts';
import { Badge, ErrorNote, Loading, Page, Tags, Time, html, navigate, useAction, useGet, useLocation } from '../ui.ts';

/** "k=v" → ["k", "v"], or undefined when it is not a tag filter. */
export function parseTag(s: string): [string, string] | undefined {
  const i = s.indexOf('=');
  return i > 0 ? [s.slice(0, i).trim(), s.slice(i + 1).trim()] : undefined;
}

export function WorkersTable({ pool, tag, status }: { pool?: string; tag?: string; status?: string }) {
  const workers = useGet<WorkerList>(`/v1/workers${qs({ pool, metadata: tag && parseTag(tag) ? tag : undefined, status })}`, 2000);
  const act = useAction();
  const set = (ids: string[], drain: boolean) => act.run(async () => { await post<WorkerList>(`/v1/workers/${drain ? 'drain' : 'undrain'}`, { ids } satisfies WorkerSelector); workers.reload(); });
  if (!workers.data) return html`<${ErrorNote} error=${workers.error} />${workers.error ? null : html`<${Loading} what="workers" />`}`;
  const list = workers.data.workers;
  if (list.length === 0) return html`<p class="muted">No workers${tag ? ` with the tag ${tag}` : ''}. A launcher started with the pool's token appears here.</p>`;
  return html`<${ErrorNote} error=${act.error} /><div class="table-wrap"><table class="workers">
    <caption class="sr-only">Workers</caption>
    <thead><tr><th scope="col">Worker</th><th scope="col">Status</th><th scope="col">Tags</th><th scope="col">Version</th><th scope="col">Host</th><th scope="col">Last seen</th><th scope="col">Current run</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>${list.map((w) => html`<tr data-worker=${w.id}>
      <td><code>${w.id}</code>${pool ? null : html`<div class="muted small"><a href=${`/pools/${enc(w.pool)}`}>${w.pool}</a></div>`}</td>
      <td><${Badge} state=${w.status} /></td>
      <td><${Tags} tags=${w.metadata} /></td>
      <td>${w.version ?? '–'}</td>
      <td class="small">${w.host?.hostname ?? '–'}<div class="muted">${[w.host?.os, w.host?.arch, w.host?.docker && `docker ${w.host.docker}`].filter(Boolean).join(' · ')}</div></td>
      <td><${Time} iso=${w.lastSeen} /></td>
      <td>${w.currentRun ? html`<a href=${`/runs/${enc(w.currentRun)}`}>${w.currentRun}</a>` : html`<span class="muted">–</span>`}</td>
      <td>${w.drained
        ? html`<button type="button" class="secondary small" disabled=${act.busy} onClick=${() => set([w.id], false)} aria-label=${`Undrain ${w.id}`}>Undrain</button>`
        : html`<button type="button" class="secondary small" disabled=${act.busy} onClick=${() => set([w.id], true)} aria-label=${`Drain ${w.id}`}>Drain</button>`}</td>
    </tr>`)}</tbody></table></div>`;
}

export function WorkersPage() {
  const loc = useLocation();
  const pool = loc.searchParams.get('pool') ?? '';
  const tag = loc.searchParams.get('tag') ?? '';
  const status = loc.searchParams.get('status') ?? '';
  const [tagInput, setTagInput] = useState(tag);
  const pools = useGet<PoolList>('/v1/pools');
  const act = useAction();
  const apply = (over: Record<string, string>) => navigate(`/workers${qs({ pool, tag, status, ...over })}`, true);
  const byTag = (drain: boolean) => {
    const t = parseTag(tag);
    if (!t) return;
    if (drain && !confirm(`Drain every worker with ${tag}${pool ? ' in this pool' : ''}? They finish their current run and take no new one.`)) return;
    void act.run(() => post<WorkerList>(`/v1/workers/${drain ? 'drain' : 'undrain'}`, { metadata: { [t[0]]: t[1] }, ...(pool ? { pool } : {}) } satisfies WorkerSelector));
  };
  return html`<${Page} title="Workers">
    <form class="filters" onSubmit=${(e: Event) => { e.preventDefault(); apply({ tag: tagInput.trim() }); }} role="search" aria-label="Filter workers">
      <div class="field"><label for="f-pool">Pool</label>
        <select id="f-pool" value=${pool} onChange=${(e: Event) => apply({ pool: (e.target as HTMLSelectElement).value })}>
          <option value="">All pools</option>
          ${(pools.data?.pools ?? []).map((p) => html`<option value=${p.id}>${p.name}</option>`)}
        </select></div>
      <div class="field"><label for="f-status">Status</label>
        <select id="f-status" value=${status} onChange=${(e: Event) => apply({ status: (e.target as HTMLSelectElement).value })}>
          <option value="">Any</option>${WORKER_STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></div>
      <div class="field"><label for="f-tag">Tag (key=value)</label>
        <input id="f-tag" name="tag" placeholder="instance_id=i-123" value=${tagInput} onInput=${(e: Event) => setTagInput((e.target as HTMLInputElement).value)} /></div>
      <button type="submit" class="secondary">Filter</button>
    </form>
    ${tag && !parseTag(tag) ? html`<p class="error" role="alert">The tag filter must look like key=value.</p>` : null}
    ${parseTag(tag) ? html`<div class="actions">
      <button type="button" class="secondary" disabled=${act.busy} onClick=${() => byTag(true)}>Drain all with ${tag}</button>
      <button type="button" class="secondary" disabled=${act.busy} onClick=${() => byTag(false)}>Undrain all with ${tag}</button></div>` : null}
    <${ErrorNote} error=${act.error} />
    <${WorkersTable} pool=${pool || undefined} tag=${tag || undefined} status=${status || undefined} />
  </${Page}>`;
}
