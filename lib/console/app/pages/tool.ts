// The parts of a stack that belong to a tool workflow (Terraform/OpenTofu):
// the Behavior fields, its sealed state versions and its drift schedules.
import { useState } from 'preact/hooks';
import { HOOK_POINTS, TOOL_STEPS, type HookPoint, type PlanSummary, type PoolReply, type ScheduleList, type ScheduleReply, type StackView, type StateList, type StateVersionReply, type ToolConfig, type ToolStep } from '../../../protocol.ts';
import { readStateHead } from '../../../tool/state.ts';
import { api, enc, get, post } from '../api.ts';
import { seal } from '../age.ts';
import { sendRaw } from '../raw.ts';
import { Badge, ErrorNote, Loading, Time, html, useAction, useGet } from '../ui.ts';

/** The form's view of a tool: lists as one item per line. */
export interface ToolForm {
  workflow: 'phases' | 'terraform' | 'tofu';
  binary: string;
  manageState: boolean;
  autodeploy: boolean;
  varFiles: string;
  hooks: Partial<Record<HookPoint, string>>;
  args: Partial<Record<ToolStep, string>>;
}

export const NO_TOOL: ToolForm = { workflow: 'phases', binary: '', manageState: true, autodeploy: false, varFiles: '', hooks: {}, args: {} };

const lines = (s: string | undefined): string[] => (s ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

export function toolForm(t: ToolConfig | null | undefined): ToolForm {
  if (!t) return NO_TOOL;
  return {
    workflow: t.name, binary: t.binary === t.name ? '' : t.binary, manageState: t.manageState, autodeploy: t.autodeploy,
    varFiles: t.varFiles.join('\n'),
    hooks: Object.fromEntries(Object.entries(t.hooks).map(([k, v]) => [k, (v ?? []).join('\n')])),
    args: Object.fromEntries(Object.entries(t.args).map(([k, v]) => [k, (v ?? []).join('\n')])),
  };
}

/** The API's `tool` field for the form (null: phases). */
export function toolField(f: ToolForm): Partial<ToolConfig> | null {
  if (f.workflow === 'phases') return null;
  const hooks: ToolConfig['hooks'] = {};
  for (const p of HOOK_POINTS) if (lines(f.hooks[p]).length) hooks[p] = lines(f.hooks[p]);
  const args: ToolConfig['args'] = {};
  for (const s of TOOL_STEPS) if (lines(f.args[s]).length) args[s] = lines(f.args[s]);
  return {
    name: f.workflow, ...(f.binary.trim() ? { binary: f.binary.trim() } : {}),
    manageState: f.manageState, autodeploy: f.autodeploy, varFiles: lines(f.varFiles), hooks, args,
  };
}

export function ToolFields({ f, set, kind }: { f: ToolForm; set: (f: ToolForm) => void; kind: string }) {
  const up = (p: Partial<ToolForm>) => set({ ...f, ...p });
  const steps = kind === 'module' ? ['init', 'validate', 'test'] : ['init', 'plan', 'apply'];
  return html`<fieldset class="tool"><legend>Workflow</legend>
    <div class="field"><label for="stack-workflow">Runs</label>
      <select id="stack-workflow" value=${f.workflow} onChange=${(e: Event) => up({ workflow: (e.target as HTMLSelectElement).value as ToolForm['workflow'] })}>
        <option value="phases">Phases: my own shell scripts</option>
        <option value="terraform">Terraform (${steps.join(' → ')})</option>
        <option value="tofu">OpenTofu (${steps.join(' → ')})</option>
      </select></div>
    ${f.workflow === 'phases' ? null : html`
      <div class="field"><label for="tool-binary">Executable in the runner image</label>
        <input id="tool-binary" placeholder=${f.workflow} spellcheck=${false} value=${f.binary} onInput=${(e: Event) => up({ binary: (e.target as HTMLInputElement).value })} /></div>
      ${kind === 'module' ? null : html`
        <label class="check"><input type="checkbox" checked=${f.manageState} onChange=${(e: Event) => up({ manageState: (e.target as HTMLInputElement).checked })} /> Manage the state (sealed to the pool's keys, versioned here)</label>
        <label class="check"><input type="checkbox" checked=${f.autodeploy} onChange=${(e: Event) => up({ autodeploy: (e.target as HTMLInputElement).checked })} /> Autodeploy: apply tracked runs without waiting for confirmation</label>`}
      <details><summary>Var files, hooks and extra arguments</summary>
        <div class="field"><label for="tool-varfiles">Var files (one path per line, relative to the project root)</label>
          <textarea id="tool-varfiles" rows="2" spellcheck=${false} value=${f.varFiles} onInput=${(e: Event) => up({ varFiles: (e.target as HTMLTextAreaElement).value })}></textarea></div>
        ${HOOK_POINTS.map((p) => html`<div class="field"><label for=${`hook-${p}`}>Hook ${p} (one command per line)</label>
          <textarea id=${`hook-${p}`} rows="1" spellcheck=${false} value=${f.hooks[p] ?? ''} onInput=${(e: Event) => up({ hooks: { ...f.hooks, [p]: (e.target as HTMLTextAreaElement).value } })}></textarea></div>`)}
        ${steps.map((s) => html`<div class="field"><label for=${`args-${s}`}>Extra arguments for ${s} (one per line)</label>
          <textarea id=${`args-${s}`} rows="1" spellcheck=${false} value=${f.args[s as ToolStep] ?? ''} onInput=${(e: Event) => up({ args: { ...f.args, [s]: (e.target as HTMLTextAreaElement).value } })}></textarea></div>`)}
      </details>`}
  </fieldset>`;
}

/**
 * Upload a terraform.tfstate as a new version, as `launcher admin stack state
 * push`: its serial and lineage read here from the plaintext, the file sealed
 * in this browser to the pool's active keys, only the sealed bytes sent.
 */
function StatePush({ stack, current, held, onPushed }: { stack: StackView; current: number | null; held: boolean; onPushed: () => void }) {
  const [file, setFile] = useState<File | undefined>(undefined);
  const [done, setDone] = useState('');
  const act = useAction();
  const push = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (!file) return;
    setDone('');
    await act.run(async () => {
      const text = await file.text();
      const head = readStateHead(text.slice(0, 64 * 1024));
      if (!head) throw new Error(`${file.name} is not a Terraform state file (no "serial" and "lineage" near the start); expected a terraform.tfstate`);
      try { JSON.parse(text); } catch (err) { throw new Error(`${file.name} is not valid JSON (${(err as Error).message})`); }
      if (!stack.pool) throw new Error(`${stack.name} is not attached to a worker pool: attach one in Behavior first (its keys seal the state)`);
      const { pool } = await get<PoolReply>(`/v1/pools/${enc(stack.pool)}`);
      const keys = pool.keys.filter((k) => k.state === 'active').map((k) => k.publicKeyPem);
      const sealed = await seal(new TextEncoder().encode(text), keys);
      const q = new URLSearchParams({ base: current === null ? 'none' : String(current), serial: String(head.serial), lineage: head.lineage });
      const res = await sendRaw('PUT', `/v1/stacks/${enc(stack.id)}/state?${q}`, sealed);
      const { version } = await res.json() as StateVersionReply;
      setDone(`State version ${version.version} stored (serial ${head.serial}, sealed in this browser to ${keys.length} pool key${keys.length === 1 ? '' : 's'}).`);
      setFile(undefined);
      (e.target as HTMLFormElement).reset();
      onPushed();
    });
  };
  return html`<form class="form panel" aria-label="Upload a state" onSubmit=${push}>
    <div class="field"><label for="state-file">Upload a state file (terraform.tfstate) as a new version</label>
      <input id="state-file" type="file" accept=".tfstate,.json,application/json" aria-describedby="state-file-help"
        onChange=${(e: Event) => setFile((e.target as HTMLInputElement).files?.[0])} />
      <p id="state-file-help" class="muted small">Sealed in this browser to the pool's keys before it is sent, like <code>launcher admin stack state push</code>; refused while a run holds the state or when another version was stored meanwhile.</p></div>
    <${ErrorNote} error=${act.error} />
    ${done ? html`<p class="ok" role="status">${done}</p>` : null}
    <div class="actions"><button type="submit" class="secondary" disabled=${act.busy || !file || held}>Seal and upload</button></div>
  </form>`;
}

export function StateVersions({ stack }: { stack: StackView }) {
  const list = useGet<StateList>(`/v1/stacks/${enc(stack.id)}/state`, 5000);
  const act = useAction();
  if (!list.data) return html`<${ErrorNote} error=${list.error} />${list.error ? null : html`<${Loading} what="state versions" />`}`;
  const d = list.data;
  const rollback = (v: number) => confirm(`Make version ${v} the current state again? It is stored as a new version; nothing is deleted.`) &&
    act.run(async () => { await post<StateVersionReply>(`/v1/stacks/${enc(stack.id)}/state/rollback`, { version: v }); list.reload(); });
  return html`<p class="muted small">Each version is sealed to the pool's keys: the server keeps ${d.history} and can open none.
      Download one and open it with <code>age -d -i spacelift.key</code>.${d.holder ? html` Held by run <a href=${`/runs/${enc(d.holder)}`}>${d.holder}</a>.` : ''}</p>
    <${ErrorNote} error=${act.error} />
    <${StatePush} stack=${stack} current=${d.current} held=${!!d.holder} onPushed=${list.reload} />
    ${d.versions.length === 0 ? html`<p class="muted">No state yet.</p>` : html`<div class="table-wrap"><table class="states">
      <caption class="sr-only">State versions of ${stack.name}</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Serial</th><th scope="col">From</th><th scope="col">Size</th><th scope="col">Stored</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${d.versions.map((v) => html`<tr data-version=${v.version}>
        <td>${v.version}${v.version === d.current ? html` <${Badge} state="current" />` : null}</td>
        <td>${v.serial ?? '–'}</td>
        <td>${v.run ? html`<a href=${`/runs/${enc(v.run)}`}>${v.run}</a>` : v.source}</td>
        <td>${(v.size / 1024).toFixed(1)} KiB</td><td><${Time} iso=${v.createdAt} /></td>
        <td class="actions"><a class="button secondary small" href=${`/v1/stacks/${enc(stack.id)}/state/${v.version}`} download=${`${stack.name}-state-${v.version}.age`}>Download</a>
          ${v.version === d.current ? null : html`<button type="button" class="secondary small" disabled=${act.busy || !!d.holder} aria-label=${`Roll back to version ${v.version}`} onClick=${() => rollback(v.version)}>Roll back</button>`}</td>
      </tr>`)}</tbody></table></div>`}`;
}

export function Schedules({ stack }: { stack: StackView }) {
  const list = useGet<ScheduleList>(`/v1/stacks/${enc(stack.id)}/schedules`, 10000);
  const [cron, setCron] = useState('');
  const [reconcile, setReconcile] = useState(false);
  const act = useAction();
  const add = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (await act.run(() => post<ScheduleReply>(`/v1/stacks/${enc(stack.id)}/schedules`, { cron: cron.trim(), reconcile }))) { setCron(''); list.reload(); }
  };
  return html`<p class="muted small">A schedule queues a proposed run (a plan) at each slot; a plan with changes marks the stack drifted.</p>
    <${ErrorNote} error=${list.error} />
    ${list.data && list.data.schedules.length ? html`<div class="table-wrap"><table>
      <caption class="sr-only">Drift detection schedules</caption>
      <thead><tr><th scope="col">Cron (UTC)</th><th scope="col">On drift</th><th scope="col">Last slot</th><th scope="col">Next slot</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${list.data.schedules.map((s) => html`<tr><td><code>${s.cron}</code></td><td>${s.reconcile ? 'queue a tracked run' : 'mark drifted'}</td>
        <td>${s.lastSlot ?? '–'}</td><td>${s.nextSlot ?? '–'}</td>
        <td><button type="button" class="secondary small" aria-label=${`Delete schedule ${s.cron}`} onClick=${() => act.run(async () => { await api<ScheduleReply>('DELETE', `/v1/schedules/${enc(s.id)}`); list.reload(); })}>Delete</button></td></tr>`)}</tbody></table></div>` : html`<p class="muted">No schedules.</p>`}
    <form class="filters" onSubmit=${add} aria-label="Add a schedule">
      <div class="field"><label for="schedule-cron">Cron (UTC)</label><input id="schedule-cron" required placeholder="0 3 * * *" spellcheck=${false} value=${cron} onInput=${(e: Event) => setCron((e.target as HTMLInputElement).value)} /></div>
      <label class="check"><input type="checkbox" checked=${reconcile} onChange=${(e: Event) => setReconcile((e.target as HTMLInputElement).checked)} /> Reconcile: queue a tracked run when drift is found</label>
      <button type="submit" class="secondary" disabled=${act.busy}>Add schedule</button>
    </form>
    <${ErrorNote} error=${act.error} />`;
}

/** Planned changes of a run (counts and addresses; the server never has values). */
export function Changes({ changes }: { changes: PlanSummary | null | undefined }) {
  if (!changes) return null;
  const res = changes.resources;
  return html`<section aria-label="Planned changes"><h2>Planned changes</h2>
    <p class="changes"><span class="add">+${changes.add} to add</span> · <span class="change">~${changes.change} to change</span> · <span class="destroy">-${changes.destroy} to destroy</span>${changes.replace ? html` · <span class="replace">±${changes.replace} to replace</span>` : null}${changes.hasChanges ? null : html` · no changes`}</p>
    ${res.length ? html`<ul class="resources">${res.map((r) => html`<li><code>${r.address}</code> <span class="muted">${r.actions.join(', ')}</span></li>`)}</ul>` : null}
    ${changes.truncated ? html`<p class="muted small">More resources change than are listed.</p>` : null}
  </section>`;
}
