// Stacks and modules: the list with the state of each one's last tracked run,
// and the create/edit form with its Behavior section (worker pool, runner
// image, environment, write-only secrets sealed in this browser, phases).
import { useEffect, useState } from 'preact/hooks';
import type { PoolList, RunList, RunReply, RunView, StackDeleteReply, StackKind, StackList, StackReply, StackRequest, TriggerRequest } from '../../../protocol.ts';
import { api, enc, post, qs } from '../api.ts';
import { sealSecretEnv, sealText } from '../age.ts';
import { Badge, ErrorNote, Loading, Page, Time, html, navigate, setFlash, takeFlash, useAction, useGet } from '../ui.ts';
import { poolKeys } from './pools.ts';
import { RunsTable } from './runs.ts';
import { NO_SOURCE, SourceFields, Webhook, sourceFields, sourceForm, type SourceForm } from './source.ts';
import { NO_TOOL, Schedules, StateVersions, ToolFields, toolField, toolForm, type ToolForm } from './tool.ts';
import { FolderSummary, pickFolder, triggerWithFolder, type PickedFolder } from './workspace.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** How many recipients an age file (base64) is sealed to, read from its header. */
export function sealedKeyCount(b64: string | null | undefined): number {
  if (!b64) return 0;
  try {
    const head = atob(b64.slice(0, 8192).replace(/[^A-Za-z0-9+/]/g, '').slice(0, 8188));
    const end = head.indexOf('\n---');
    return (end < 0 ? head : head.slice(0, end)).split('\n').filter((l) => l.startsWith('-> ')).length;
  } catch {
    return 0;
  }
}

export function StacksPage({ kind }: { kind: 'stack' | 'module' }) {
  const stacks = useGet<StackList>(`/v1/stacks${qs({ kind })}`, 5000);
  const runs = useGet<RunList>('/v1/runs?limit=1000', 5000);
  const pools = useGet<PoolList>('/v1/pools');
  const poolName = (id: string | null) => (pools.data?.pools ?? []).find((p) => p.id === id)?.name ?? id;
  const lastTracked = new Map<string, RunView>();
  for (const r of runs.data?.runs ?? []) if (!r.proposed && !lastTracked.has(r.stack)) lastTracked.set(r.stack, r);
  const plural = kind === 'stack' ? 'Stacks' : 'Modules';
  return html`<${Page} title=${plural} actions=${html`<a class="button" href=${`/stacks/new?kind=${kind}`}>New ${kind}</a>`}>
    <${ErrorNote} error=${stacks.error} />
    ${!stacks.data ? html`<${Loading} what=${plural.toLowerCase()} />` : stacks.data.stacks.length === 0 ? html`<p class="muted">No ${plural.toLowerCase()} yet.</p>` : html`<div class="table-wrap"><table>
      <caption class="sr-only">${plural}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Worker pool</th><th scope="col">Last tracked run</th><th scope="col">Updated</th></tr></thead>
      <tbody>${stacks.data.stacks.map((s) => {
        const r = lastTracked.get(s.id);
        return html`<tr data-stack=${s.id}><td><a href=${`/stacks/${enc(s.id)}`}>${s.name}</a></td>
          <td>${s.pool ? html`<a href=${`/pools/${enc(s.pool)}`}>${poolName(s.pool)}</a>` : html`<span class="muted">detached</span>`}</td>
          <td>${r ? html`<a href=${`/runs/${enc(r.id)}`}><${Badge} state=${r.state} /></a> <${Time} iso=${r.createdAt} />` : html`<span class="muted">none</span>`}${s.drifted ? html` <${Badge} state="DRIFTED" />` : null}</td>
          <td><${Time} iso=${s.updatedAt} /></td></tr>`;
      })}</tbody></table></div>`}
  </${Page}>`;
}

interface Pair { name: string; value: string }
interface PhaseRow { name: string; script: string; confirm: boolean }

function Pairs({ legend, rows, set, secret, idPrefix }: { legend: string; rows: Pair[]; set: (r: Pair[]) => void; secret?: boolean; idPrefix: string }) {
  const upd = (i: number, k: keyof Pair, v: string) => set(rows.map((r, j) => (j === i ? { ...r, [k]: v } : r)));
  return html`<fieldset class="pairs"><legend>${legend}</legend>
    ${rows.map((r, i) => html`<div class="pair">
      <label class="sr-only" for=${`${idPrefix}-name-${i}`}>${legend} ${i + 1} name</label>
      <input id=${`${idPrefix}-name-${i}`} placeholder="NAME" value=${r.name} autocomplete="off" spellcheck=${false}
        aria-invalid=${r.name !== '' && !ENV_NAME.test(r.name)} onInput=${(e: Event) => upd(i, 'name', (e.target as HTMLInputElement).value)} />
      <label class="sr-only" for=${`${idPrefix}-value-${i}`}>${legend} ${i + 1} value</label>
      <input id=${`${idPrefix}-value-${i}`} placeholder="value" value=${r.value} type=${secret ? 'password' : 'text'} autocomplete=${secret ? 'new-password' : 'off'} spellcheck=${false}
        onInput=${(e: Event) => upd(i, 'value', (e.target as HTMLInputElement).value)} />
      <button type="button" class="secondary small" aria-label=${`Remove ${legend.toLowerCase()} ${i + 1}`} onClick=${() => set(rows.filter((_, j) => j !== i))}>Remove</button>
    </div>`)}
    <button type="button" class="secondary small" onClick=${() => set([...rows, { name: '', value: '' }])}>Add ${secret ? 'a secret' : 'a variable'}</button>
  </fieldset>`;
}

function Phases({ rows, set }: { rows: PhaseRow[]; set: (r: PhaseRow[]) => void }) {
  const upd = (i: number, p: Partial<PhaseRow>) => set(rows.map((r, j) => (j === i ? { ...r, ...p } : r)));
  const move = (i: number, d: number) => {
    const next = [...rows];
    const [x] = next.splice(i, 1);
    next.splice(i + d, 0, x!);
    set(next);
  };
  return html`<fieldset class="phases"><legend>Phases (run in order with <code>sh -c</code> in the run's workspace)</legend>
    ${rows.map((r, i) => html`<div class="phase">
      <div class="field"><label for=${`phase-name-${i}`}>Phase ${i + 1} name</label>
        <input id=${`phase-name-${i}`} value=${r.name} required onInput=${(e: Event) => upd(i, { name: (e.target as HTMLInputElement).value })} /></div>
      <div class="field grow"><label for=${`phase-script-${i}`}>Phase ${i + 1} script</label>
        <textarea id=${`phase-script-${i}`} rows="3" spellcheck=${false} required value=${r.script} onInput=${(e: Event) => upd(i, { script: (e.target as HTMLTextAreaElement).value })}></textarea></div>
      <label class="check"><input type="checkbox" checked=${r.confirm} onChange=${(e: Event) => upd(i, { confirm: (e.target as HTMLInputElement).checked })} /> Wait for confirmation before phase ${i + 1}</label>
      <div class="actions">
        ${i > 0 ? html`<button type="button" class="secondary small" onClick=${() => move(i, -1)} aria-label=${`Move phase ${i + 1} up`}>Up</button>` : null}
        ${i < rows.length - 1 ? html`<button type="button" class="secondary small" onClick=${() => move(i, 1)} aria-label=${`Move phase ${i + 1} down`}>Down</button>` : null}
        ${rows.length > 1 ? html`<button type="button" class="secondary small" onClick=${() => set(rows.filter((_, j) => j !== i))} aria-label=${`Remove phase ${i + 1}`}>Remove</button>` : null}
      </div>
    </div>`)}
    <button type="button" class="secondary small" onClick=${() => set([...rows, { name: '', script: '', confirm: false }])}>Add a phase</button>
  </fieldset>`;
}

export function StackPage({ id, kind: newKind }: { id: string | null; kind?: string }) {
  const stack = useGet<StackReply>(id ? `/v1/stacks/${enc(id)}` : null);
  const pools = useGet<PoolList>('/v1/pools');
  const runs = useGet<RunList>(id ? `/v1/runs${qs({ stack: id, limit: '20' })}` : null, 3000);
  const [name, setName] = useState('');
  const [kind, setKind] = useState<StackKind>(newKind === 'module' ? 'module' : 'stack');
  const [pool, setPool] = useState('');
  const [image, setImage] = useState('');
  const [env, setEnv] = useState<Pair[]>([]);
  const [secrets, setSecrets] = useState<Pair[]>([]);
  const [clearSecrets, setClearSecrets] = useState(false);
  const [purge, setPurge] = useState(false);
  const [phases, setPhases] = useState<PhaseRow[]>([{ name: 'plan', script: '', confirm: false }]);
  const [tool, setTool] = useState<ToolForm>(NO_TOOL);
  const [source, setSource] = useState<SourceForm>(NO_SOURCE);
  const [at, setAt] = useState('');
  const [projectRoot, setProjectRoot] = useState('.');
  const [stateHistory, setStateHistory] = useState('');
  const [saved, setSaved] = useState(takeFlash);
  const [folder, setFolder] = useState<PickedFolder | null>(null);
  const [folderError, setFolderError] = useState<Error | undefined>(undefined);
  const [progress, setProgress] = useState('');
  const act = useAction();
  const s = stack.data?.stack;

  useEffect(() => {
    if (!s) return;
    setName(s.name); setKind(s.kind); setPool(s.pool ?? ''); setImage(s.image ?? '');
    setEnv(Object.entries(s.env).map(([k, v]) => ({ name: k, value: v })));
    const ph = s.phases.map((p) => ({ name: p.name, script: p.script, confirm: p.confirm }));
    setPhases(ph.length ? ph : [{ name: 'plan', script: '', confirm: false }]);
    setTool(toolForm(s.tool));
    setSource(sourceForm(s));
    setProjectRoot(s.projectRoot);
    setStateHistory(s.stateHistory ? String(s.stateHistory) : '');
    setSecrets([]); setClearSecrets(false);
  }, [s?.id, s?.updatedAt]);

  if (id && !s) return html`<${Page} title="Stack"><${ErrorNote} error=${stack.error} />${stack.error ? null : html`<${Loading} what="the stack" />`}</${Page}>`;

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setSaved('');
    await act.run(async () => {
      const bad = [...env, ...secrets].find((p) => !ENV_NAME.test(p.name));
      if (bad) throw new Error(`Variable name "${bad.name}" is not valid: use letters, digits and "_", not starting with a digit`);
      const body: StackRequest = {
        name: name.trim(), kind, pool: pool || null, image: image.trim() || null,
        env: Object.fromEntries(env.map((p) => [p.name, p.value])),
        phases: tool.workflow === 'phases' ? phases.map((p) => ({ name: p.name.trim(), script: p.script, confirm: p.confirm })) : null,
      };
      // Servers without tool workflows do not know these fields: send them only when used.
      if (tool.workflow !== 'phases' || s?.tool) body.tool = toolField(tool);
      Object.assign(body, await sourceFields(source, s, async (json) => {
        if (!pool) throw new Error('The repository credential is sealed to the worker pool\'s keys: attach a worker pool first');
        return sealText(json, await poolKeys(pool));
      }));
      if (projectRoot.trim() !== (s?.projectRoot ?? '.')) body.projectRoot = projectRoot.trim() || '.';
      if (stateHistory.trim() && Number(stateHistory) !== s?.stateHistory) body.stateHistory = Number(stateHistory);
      let note = '';
      if (secrets.length > 0) {
        if (!pool) throw new Error('Secrets are sealed to the worker pool\'s keys: attach a worker pool first');
        const keys = await poolKeys(pool);
        body.secretEnv = await sealSecretEnv(Object.fromEntries(secrets.map((p) => [p.name, p.value])), keys);
        note = ` Secrets sealed in this browser to ${keys.length} key${keys.length === 1 ? '' : 's'}.`;
      } else if (clearSecrets) {
        body.secretEnv = null;
      }
      const out = id ? await api<StackReply>('PATCH', `/v1/stacks/${enc(id)}`, body) : await post<StackReply>('/v1/stacks', body);
      setSecrets([]);
      if (!id) {
        setFlash(`Saved.${note}`);
        navigate(`/stacks/${enc(out.stack.id)}`, true);
      } else {
        setSaved(`Saved.${note}`);
        stack.reload();
      }
    });
  };
  const trigger = (proposed: boolean) => act.run(async () => {
    if (folder) {
      try {
        const { runId, note } = await triggerWithFolder(id!, proposed, folder, await poolKeys(s!.pool!), setProgress);
        setFlash(note);
        navigate(`/runs/${enc(runId)}`);
      } finally {
        setProgress('');
      }
      return;
    }
    const ref = at.trim();
    const out = await post<RunReply>(`/v1/stacks/${enc(id!)}/runs`, { proposed, workspace: null, ...(ref ? (/^[0-9a-f]{40}$/.test(ref) ? { commit: ref } : { branch: ref }) : {}) } satisfies TriggerRequest);
    navigate(`/runs/${enc(out.run.id)}`);
  });
  // As `stack delete --purge-state`: without it a deleted stack's sealed state versions are kept (reachable by its id).
  const del = () => confirm(purge ? `Delete ${s!.name} and every one of its state versions?` : `Delete ${s!.name}?`) &&
    act.run(async () => { await api<StackDeleteReply>('DELETE', `/v1/stacks/${enc(id!)}${purge ? '?purgeState=1' : ''}`); navigate(s!.kind === 'module' ? '/modules' : '/stacks'); });
  const sealedTo = sealedKeyCount(s?.secretEnv);

  return html`<${Page} title=${s ? `${s.kind === 'module' ? 'Module' : 'Stack'} ${s.name}` : `New ${kind}`} actions=${s ? html`
      ${s.repo ? html`<label class="inline" for="trigger-at">at <input id="trigger-at" class="short" placeholder=${s.branch ?? 'branch or commit'} spellcheck=${false} value=${at} onInput=${(e: Event) => setAt((e.target as HTMLInputElement).value)} /></label>` : null}
      <button type="button" disabled=${act.busy || !s.pool} onClick=${() => trigger(false)}>Trigger run</button>
      <button type="button" class="secondary" disabled=${act.busy || !s.pool} onClick=${() => trigger(true)}>Trigger proposed run</button>
      ${s.tool?.manageState ? html`<label class="check"><input type="checkbox" checked=${purge} onChange=${(e: Event) => setPurge((e.target as HTMLInputElement).checked)} /> with its state versions</label>` : null}
      <button type="button" class="danger" disabled=${act.busy} onClick=${del}>Delete</button>` : null}>
    ${s && !s.repo ? html`<section class="workspace-pick" aria-labelledby="workspace-head">
      <h2 id="workspace-head">Workspace</h2>
      <div class="field"><label for="workspace-folder">Folder to start the next run with (optional)</label>
        <input id="workspace-folder" type="file" webkitdirectory=${true} multiple disabled=${act.busy} onChange=${(e: Event) => {
          const input = e.target as HTMLInputElement;
          setFolderError(undefined);
          try { setFolder(pickFolder(input.files)); } catch (err) { setFolder(null); input.value = ''; setFolderError(err as Error); }
        }} /></div>
      ${folder ? html`<${FolderSummary} folder=${folder} />
        <button type="button" class="secondary small" disabled=${act.busy} onClick=${() => { setFolder(null); (document.getElementById('workspace-folder') as HTMLInputElement).value = ''; }}>Trigger without the folder</button>` : null}
      <${ErrorNote} error=${folderError} />
      ${progress ? html`<p class="muted" role="status" aria-live="polite">${progress}</p>` : null}
    </section>` : null}
    <form class="form" onSubmit=${submit}>
      <div class="field"><label for="stack-name">Name</label>
        <input id="stack-name" required autocomplete="off" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} /></div>
      <div class="field"><label for="stack-kind">Kind</label>
        <select id="stack-kind" value=${kind} onChange=${(e: Event) => setKind((e.target as HTMLSelectElement).value as StackKind)}>
          <option value="stack">stack</option><option value="module">module</option></select></div>
      <section class="behavior" aria-labelledby="behavior-head">
        <h2 id="behavior-head">Behavior</h2>
        <div class="field"><label for="stack-pool">Worker pool</label>
          <select id="stack-pool" value=${pool} onChange=${(e: Event) => setPool((e.target as HTMLSelectElement).value)}>
            <option value="">None (detached: runs cannot start)</option>
            ${(pools.data?.pools ?? []).map((p) => html`<option value=${p.id}>${p.name}</option>`)}
          </select></div>
        <div class="field"><label for="stack-image">Runner image</label>
          <input id="stack-image" placeholder="the launcher's default image" value=${image} spellcheck=${false} onInput=${(e: Event) => setImage((e.target as HTMLInputElement).value)} /></div>
        <${Pairs} legend="Environment" rows=${env} set=${setEnv} idPrefix="env" />
        <div class="secrets">
          <${Pairs} legend="Secrets" rows=${secrets} set=${setSecrets} secret=${true} idPrefix="secret" />
          <p class="muted small" id="secrets-note">Write-only: values are sealed in this browser to the pool's keys before they are sent; the server cannot read them.
            Saving secrets replaces all of this ${kind}'s secrets.</p>
          ${s ? html`<p class="sealed-status" aria-live="polite">${sealedTo ? `Stored secrets: sealed to ${sealedTo} key${sealedTo === 1 ? '' : 's'}.` : 'No secrets stored.'}</p>` : null}
          ${s && sealedTo ? html`<label class="check"><input type="checkbox" checked=${clearSecrets} onChange=${(e: Event) => setClearSecrets((e.target as HTMLInputElement).checked)} /> Remove the stored secrets</label>` : null}
        </div>
        <${SourceFields} f=${source} set=${setSource} stack=${s} sealedTo=${sealedKeyCount(s?.repoCredential)} />
        <${ToolFields} f=${tool} set=${setTool} kind=${kind} />
        ${tool.workflow === 'phases' ? html`<${Phases} rows=${phases} set=${setPhases} />` : null}
        <div class="field"><label for="stack-root">Project root (the directory inside the source where scripts and steps run)</label>
          <input id="stack-root" spellcheck=${false} placeholder="." value=${projectRoot} onInput=${(e: Event) => setProjectRoot((e.target as HTMLInputElement).value)} /></div>
        ${tool.workflow !== 'phases' && tool.manageState && kind === 'stack' ? html`<div class="field"><label for="stack-history">State versions to keep</label>
          <input id="stack-history" type="number" min="1" inputmode="numeric" placeholder="server default" value=${stateHistory} onInput=${(e: Event) => setStateHistory((e.target as HTMLInputElement).value)} /></div>` : null}
      </section>
      <${ErrorNote} error=${act.error} />
      ${saved ? html`<p class="ok" role="status">${saved}</p>` : null}
      <button type="submit" disabled=${act.busy}>${s ? 'Save' : `Create ${kind}`}</button>
    </form>
    ${s?.drifted ? html`<p class="warning" role="status">Drifted: a scheduled plan found changes no tracked run has applied yet${s.driftedRun ? html` (<a href=${`/runs/${enc(s.driftedRun)}`}>${s.driftedRun}</a>)` : ''}.</p>` : null}
    ${s?.repo ? html`<h2>Webhook</h2><${Webhook} stack=${s} />` : null}
    ${s?.tool && s.kind === 'stack' && s.tool.manageState ? html`<h2>State versions</h2><${StateVersions} stack=${s} />` : null}
    ${s?.tool && s.kind === 'stack' ? html`<h2>Drift detection</h2><${Schedules} stack=${s} />` : null}
    ${s ? html`<h2>Runs</h2>${runs.data ? html`<${RunsTable} runs=${runs.data.runs} showStack=${false} />` : html`<${Loading} what="runs" />`}` : null}
  </${Page}>`;
}

