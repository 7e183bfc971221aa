// Runs: the list with filters, a pool's queue (with prioritise), and the run
// page: state timeline, live log over server-sent events, and the actions
// that fit the run's state (confirm, discard, cancel, prioritise).
import { useEffect, useRef, useState } from 'preact/hooks';
import { enc, post, qs } from '../api.ts';
import { RUN_STATES, isTerminal, type PoolList, type PoolView, type RunList, type RunLogEvent, type RunReply, type RunView, type StackList } from '../../../protocol.ts';
import { LogLines } from '../logstore.ts';
import { LogView } from '../logview.ts';
import { Badge, ErrorNote, Loading, Page, Time, html, navigate, takeFlash, useAction, useGet, useLocation } from '../ui.ts';
import { Changes } from './tool.ts';
import { CommitFacts } from './source.ts';

function phaseLabel(r: RunView): string {
  const ph = r.phases[r.phase];
  return ph ? `${ph.name} (${r.phase + 1}/${r.phaseCount})` : `${r.phase + 1}/${r.phaseCount}`;
}

export function RunsTable({ runs, showStack = true }: { runs: RunView[]; showStack?: boolean }) {
  if (runs.length === 0) return html`<p class="muted">No runs.</p>`;
  return html`<div class="table-wrap"><table>
    <caption class="sr-only">Runs</caption>
    <thead><tr><th scope="col">Run</th>${showStack ? html`<th scope="col">Stack</th>` : null}<th scope="col">Type</th><th scope="col">State</th><th scope="col">Phase</th><th scope="col">Created</th><th scope="col">Ended</th></tr></thead>
    <tbody>${runs.map((r) => html`<tr data-run=${r.id}>
      <td><a href=${`/runs/${enc(r.id)}`}><code>${r.id}</code></a></td>
      ${showStack ? html`<td><a href=${`/stacks/${enc(r.stack)}`}>${r.stackName}</a></td>` : null}
      <td>${r.proposed ? 'proposed' : 'tracked'}</td>
      <td><${Badge} state=${r.status} />${r.drifted ? html` <${Badge} state="DRIFTED" />` : null}</td>
      <td>${phaseLabel(r)}</td>
      <td><${Time} iso=${r.createdAt} /></td>
      <td><${Time} iso=${r.endedAt} /></td>
    </tr>`)}</tbody></table></div>`;
}

export function QueueTable({ pool }: { pool: string }) {
  const queue = useGet<RunList>(`/v1/pools/${enc(pool)}/queue`, 2000);
  const act = useAction();
  if (!queue.data) return html`<${ErrorNote} error=${queue.error} />${queue.error ? null : html`<${Loading} what="the queue" />`}`;
  if (queue.data.runs.length === 0) return html`<p class="muted">Nothing waiting.</p>`;
  return html`<${ErrorNote} error=${act.error} /><div class="table-wrap"><table>
    <caption class="sr-only">Queue: queued runs in assignment order, then runs waiting for confirmation</caption>
    <thead><tr><th scope="col">#</th><th scope="col">Run</th><th scope="col">Stack</th><th scope="col">State</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>${queue.data.runs.map((r, i) => html`<tr data-run=${r.id}>
      <td>${i + 1}</td><td><a href=${`/runs/${enc(r.id)}`}><code>${r.id}</code></a></td><td>${r.stackName}</td>
      <td><${Badge} state=${r.state} /></td><td><${Time} iso=${r.createdAt} /></td>
      <td><button type="button" class="secondary small" disabled=${act.busy} aria-label=${`Prioritise ${r.id}`}
        onClick=${() => act.run(async () => { await post<RunReply>(`/v1/runs/${enc(r.id)}/prioritize`); queue.reload(); })}>Prioritise</button></td>
    </tr>`)}</tbody></table></div>`;
}

export function RunsPage() {
  const loc = useLocation();
  const f = { stack: loc.searchParams.get('stack') ?? '', pool: loc.searchParams.get('pool') ?? '', state: loc.searchParams.get('state') ?? '' };
  const runs = useGet<RunList>(`/v1/runs${qs({ ...f, limit: '200' })}`, 2000);
  const stacks = useGet<StackList>('/v1/stacks');
  const pools = useGet<PoolList>('/v1/pools');
  const apply = (over: Record<string, string>) => navigate(`/runs${qs({ ...f, ...over })}`, true);
  const select = (id: string, label: string, key: 'stack' | 'pool' | 'state', options: [string, string][]) => html`
    <div class="field"><label for=${id}>${label}</label>
      <select id=${id} value=${f[key]} onChange=${(e: Event) => apply({ [key]: (e.target as HTMLSelectElement).value })}>
        <option value="">Any</option>${options.map(([v, t]) => html`<option value=${v}>${t}</option>`)}
      </select></div>`;
  return html`<${Page} title="Runs">
    <form class="filters" role="search" aria-label="Filter runs" onSubmit=${(e: Event) => e.preventDefault()}>
      ${select('f-stack', 'Stack', 'stack', (stacks.data?.stacks ?? []).map((s) => [s.id, s.name]))}
      ${select('f-pool', 'Pool', 'pool', (pools.data?.pools ?? []).map((p) => [p.id, p.name]))}
      ${select('f-state', 'State', 'state', RUN_STATES.map((s) => [s, s]))}
    </form>
    <${ErrorNote} error=${runs.error} />
    ${runs.data ? html`<${RunsTable} runs=${runs.data.runs} />` : runs.error ? null : html`<${Loading} what="runs" />`}
  </${Page}>`;
}

function Timeline({ run }: { run: RunView }) {
  const items: { at: string | null; text: string; state?: string }[] = [{ at: run.createdAt, text: `Triggered (${run.proposed ? 'proposed' : 'tracked'})` }];
  for (const ph of run.phases) {
    const name = `${ph.name}`;
    if (ph.confirm && (ph.assignedAt || run.phase > ph.index || (run.phase === ph.index && run.state !== 'UNCONFIRMED'))) items.push({ at: null, text: `${name}: confirmed` });
    if (ph.confirm && run.phase === ph.index && run.state === 'UNCONFIRMED') items.push({ at: null, text: `${name}: waiting for confirmation`, state: 'UNCONFIRMED' });
    if (ph.assignedAt) items.push({ at: ph.assignedAt, text: `${name}: assigned to ${ph.worker ?? 'a worker'}` });
    if (ph.startedAt) items.push({ at: ph.startedAt, text: `${name}: started` });
    if (ph.endedAt) items.push({ at: ph.endedAt, text: `${name}: ${ph.state}${ph.exitCode !== null ? ` (exit ${ph.exitCode})` : ''}${ph.error ? `: ${ph.error}` : ''}`, state: ph.state });
  }
  if (run.endedAt) items.push({ at: run.endedAt, text: `${run.state}${run.reason ? `: ${run.reason}` : ''}`, state: run.state });
  return html`<ol class="timeline" aria-label="State timeline">${items.map((it) => html`<li class=${it.state ? `t-${it.state.toLowerCase()}` : ''}>
    <span class="when">${it.at ? html`<time datetime=${it.at} title=${it.at}>${it.at.slice(11, 19)}</time>` : '·'}</span> ${it.text}</li>`)}</ol>`;
}

/** The run's pool by name, or a plain note when it has been deleted since. */
function RunPool({ id, pools }: { id: string; pools: PoolView[] | undefined }) {
  if (!pools) return html`<code>${id}</code>`;
  const p = pools.find((x) => x.id === id);
  if (!p) return html`<code>${id}</code> <span class="muted" role="note">(this worker pool has been deleted; the run and its log are kept)</span>`;
  return html`<a href=${`/pools/${enc(p.id)}`}>${p.name}</a>`;
}

export function RunPage({ id }: { id: string }) {
  const [run, setRun] = useState<RunView | undefined>(undefined);
  const [version, setVersion] = useState(0);
  const [streamError, setStreamError] = useState<Error | undefined>(undefined);
  const [ended, setEnded] = useState(false);
  const store = useRef(new LogLines());
  const runRef = useRef<RunView | undefined>(undefined);
  const [note] = useState(takeFlash);
  const act = useAction();

  useEffect(() => {
    store.current = new LogLines();
    setVersion(0);
    setEnded(false);
    const es = new EventSource(`/v1/runs/${enc(id)}/events`);
    let frame = 0;
    const paint = (): void => {
      if (frame) return;
      frame = requestAnimationFrame(() => { frame = 0; setVersion(store.current.version); });
    };
    // The event stream's data: `event: run` is a RunView, `event: log` a RunLogEvent.
    es.addEventListener('run', (e) => { const r = JSON.parse((e as MessageEvent).data) as RunView; runRef.current = r; setRun(r); setStreamError(undefined); });
    es.addEventListener('log', (e) => {
      const d = JSON.parse((e as MessageEvent).data) as RunLogEvent;
      const name = runRef.current?.phases[d.phase]?.name ?? `phase ${d.phase}`;
      store.current.append(d.phase, name, d.text);
      paint();
    });
    es.addEventListener('end', () => { es.close(); store.current.flush(); setEnded(true); paint(); });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) setStreamError(new Error('The live log stream closed: reload the page to reconnect'));
    };
    return () => { es.close(); cancelAnimationFrame(frame); };
  }, [id]);

  // The list, not GET /v1/pools/{id}: a run outlives its pool, and asking for a
  // deleted pool would be a 404 in the browser's console.
  const pools = useGet<PoolList>(run ? '/v1/pools' : null);
  if (!run) return html`<${Page} title=${`Run ${id}`}><${ErrorNote} error=${streamError} /><${Loading} what="the run" /></${Page}>`;
  const base = `/v1/runs/${enc(run.id)}`;
  const action = (name: string, path: string, question?: string) => html`<button type="button" class=${name === 'Confirm' ? '' : 'secondary'} disabled=${act.busy}
    onClick=${() => (!question || confirm(question)) && act.run(() => post<RunReply>(`${base}/${path}`))}>${name}</button>`;
  const actions = [
    run.state === 'UNCONFIRMED' ? action('Confirm', 'confirm') : null,
    run.state === 'UNCONFIRMED' ? action('Discard', 'discard', 'Discard this run? Its remaining phases will not run.') : null,
    !isTerminal(run.state) && !run.cancelRequested ? action('Cancel', 'cancel', 'Cancel this run?') : null,
    run.state === 'QUEUED' || run.state === 'UNCONFIRMED' ? action('Prioritise', 'prioritize') : null,
  ];
  return html`<${Page} title=${html`Run <code>${run.id}</code> <${Badge} state=${run.status} />`} actions=${actions}>
    ${note ? html`<p class="ok" role="status">${note}</p>` : null}
    <${ErrorNote} error=${act.error} />
    <${ErrorNote} error=${streamError} />
    <dl class="facts">
      <dt>Stack</dt><dd><a href=${`/stacks/${enc(run.stack)}`}>${run.stackName}</a> (${run.kind})</dd>
      <dt>Pool</dt><dd><${RunPool} id=${run.pool} pools=${pools.data?.pools} /></dd>
      <dt>Type</dt><dd>${run.proposed ? 'proposed (read-only)' : 'tracked'}</dd>
      <dt>Phase</dt><dd>${phaseLabel(run)}</dd>
      <dt>Worker</dt><dd>${run.worker ?? '–'}</dd>
      <${CommitFacts} commit=${run.commit} />
      ${run.trigger && run.trigger !== 'manual' ? html`<dt>Triggered by</dt><dd>${run.trigger}</dd>` : null}
      ${run.drifted ? html`<dt>Drift</dt><dd><${Badge} state="DRIFTED" /> the plan found changes</dd>` : null}
      ${run.cancelRequested && !isTerminal(run.state) ? html`<dt>Cancel</dt><dd>requested; waiting for the worker</dd>` : null}
    </dl>
    <${Changes} changes=${run.changes} />
    <div class="run-grid">
      <div><h2>Timeline</h2><${Timeline} run=${run} /></div>
      <div class="run-log"><h2>Log ${ended ? null : html`<span class="live" aria-label="live">● live</span>`}</h2>
        <${LogView} store=${store.current} version=${version} label=${`Log of run ${run.id}`} /></div>
    </div>
  </${Page}>`;
}
