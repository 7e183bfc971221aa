// Worker pools: the list, the creation form (CSR pasted or chosen as a file →
// the token, shown once), and one pool's page with its keys, workers and queue.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { CreatePoolRequest, CsrRequest, KeyReply, KeyTokenReply, KeyView, PoolList, PoolReply, PoolTokenReply, PoolView, UpdatePoolRequest, WorkerList, WorkerStatus } from '../../../protocol.ts';
import { enc, get, post, api } from '../api.ts';
import { Badge, Code, Copy, ErrorNote, Loading, Page, Time, download, html, navigate, readFileText, useAction, useGet } from '../ui.ts';
import { QueueTable } from './runs.ts';
import { WorkersTable } from './workers.ts';

export const OPENSSL_REQ = 'openssl req -new -newkey rsa:4096 -nodes -keyout spacelift.key -out spacelift.csr -subj "/CN=spacelift"';

export function launcherCommand(token: string): string {
  return `SPACELIFT_TOKEN=${token} SPACELIFT_POOL_PRIVATE_KEY="$(base64 -w0 spacelift.key)" ./launcher`;
}

export function PoolsPage() {
  const pools = useGet<PoolList>('/v1/pools', 3000);
  const workers = useGet<WorkerList>('/v1/workers', 3000);
  const counts = (pool: string): string => {
    const c: Record<WorkerStatus, number> = { IDLE: 0, BUSY: 0, DRAINED: 0, OFFLINE: 0 };
    for (const w of workers.data?.workers ?? []) if (w.pool === pool) c[w.status]++;
    return `${c.IDLE} idle · ${c.BUSY} busy · ${c.DRAINED} drained · ${c.OFFLINE} offline`;
  };
  return html`<${Page} title="Worker pools" actions=${html`<a class="button" href="/pools/new">New worker pool</a>`}>
    <${ErrorNote} error=${pools.error} />
    ${!pools.data ? html`<${Loading} what="pools" />` : pools.data.pools.length === 0
      ? html`<p>No worker pools yet. <a href="/pools/new">Create the first one</a> from a certificate request made on your side.</p>`
      : html`<div class="table-wrap"><table>
        <caption class="sr-only">Worker pools</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Workers</th><th scope="col">Pending runs</th><th scope="col">Active keys</th><th scope="col">Created</th></tr></thead>
        <tbody>${pools.data.pools.map((p) => html`<tr>
          <td><a href=${`/pools/${enc(p.id)}`}>${p.name}</a>${p.description ? html`<div class="muted small">${p.description}</div>` : null}</td>
          <td><a href=${`/workers?pool=${enc(p.id)}`}>${workers.data ? counts(p.id) : `${p.workers} (${p.busy} busy)`}</a></td><td>${p.pending}</td>
          <td>${p.keys.filter((k) => k.state === 'active').length}</td>
          <td><${Time} iso=${p.createdAt} /></td></tr>`)}</tbody></table></div>`}
  </${Page}>`;
}

/** The CSR field: paste it, or choose the file `openssl req` wrote. */
function CsrField({ id, value, onInput }: { id: string; value: string; onInput: (v: string) => void }) {
  return html`<div class="field">
    <label for=${id}>Certificate request (CSR)</label>
    <textarea id=${id} name="csr" rows="6" spellcheck=${false} placeholder="-----BEGIN CERTIFICATE REQUEST-----" value=${value}
      onInput=${(e: Event) => onInput((e.target as HTMLTextAreaElement).value)}></textarea>
    <label class="file">Or choose the CSR file
      <input type="file" name="csr-file" accept=".csr,.pem,.req,text/plain"
        onChange=${async (e: Event) => onInput(await readFileText(e.target as HTMLInputElement))} /></label>
  </div>`;
}

/** The token, shown once, with everything needed to start a launcher with it. */
export function TokenPanel({ token, poolName, what, id = 'pool-token' }: { token: string; poolName: string; what: string; id?: string }) {
  return html`<div class="panel token" role="region" aria-label="Pool token">
    <h2>${what}</h2>
    <p class="warning">This token is shown once. Copy or download it now: the server keeps only the certificate.</p>
    <label for=${id}>Token</label>
    <textarea id=${id} readonly rows="4" spellcheck=${false} value=${token}></textarea>
    <div class="actions">
      <${Copy} text=${token} label="Copy token" />
      <button type="button" class="secondary" onClick=${() => download(`${poolName}.token`, token + '\n')}>Download token</button>
    </div>
    <h3>Start a launcher</h3>
    <p>On a host with Docker, next to <code>spacelift.key</code> and the <code>launcher</code> executable:</p>
    <${Code} text=${launcherCommand(token)} label="Launcher command" />
  </div>`;
}

export function NewPoolPage() {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [csr, setCsr] = useState('');
  const [created, setCreated] = useState<PoolTokenReply | undefined>(undefined);
  const act = useAction();
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    await act.run(async () => setCreated(await post<PoolTokenReply>('/v1/pools', { name: name.trim(), csr, ...(description.trim() ? { description: description.trim() } : {}) } satisfies CreatePoolRequest)));
  };
  if (created) {
    return html`<${Page} title=${`Worker pool ${created.pool.name} created`}>
      <${TokenPanel} token=${created.token} poolName=${created.pool.name} what="Pool token" />
      <p><a class="button" href=${`/pools/${enc(created.pool.id)}`}>Go to the pool</a></p>
    </${Page}>`;
  }
  return html`<${Page} title="New worker pool">
    <ol class="steps">
      <li>Make the pool's key and certificate request on your side (the private key never leaves it):
        <${Code} text=${OPENSSL_REQ} label="openssl command" /></li>
      <li>Paste <code>spacelift.csr</code> below, or choose the file.</li>
    </ol>
    <form onSubmit=${submit} class="form">
      <div class="field"><label for="pool-name">Name</label>
        <input id="pool-name" name="name" required pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" autocomplete="off"
          title="1 to 64 letters, digits, '.', '_' or '-'" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} /></div>
      <div class="field"><label for="pool-description">Description</label>
        <input id="pool-description" name="description" maxlength="1024" autocomplete="off" placeholder="what runs here, who owns the hosts"
          value=${description} onInput=${(e: Event) => setDescription((e.target as HTMLInputElement).value)} /></div>
      <${CsrField} id="pool-csr" value=${csr} onInput=${setCsr} />
      <${ErrorNote} error=${act.error} />
      <button type="submit" disabled=${act.busy || !csr.trim()}>Create worker pool</button>
    </form>
  </${Page}>`;
}

function CsrAction({ pool, label, path, what, confirmText }: { pool: PoolView; label: string; path: string; what: string; confirmText?: string }) {
  const [open, setOpen] = useState(false);
  const [csr, setCsr] = useState('');
  const [token, setToken] = useState('');
  const act = useAction();
  const slug = label.replace(/\W+/g, '-').toLowerCase();
  if (token) return html`<${TokenPanel} token=${token} poolName=${pool.name} what=${what} id=${`token-${slug}`} />`;
  if (!open) return html`<button type="button" class="secondary" onClick=${() => setOpen(true)}>${label}</button>`;
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (confirmText && !confirm(confirmText)) return;
    await act.run(async () => setToken((await post<PoolTokenReply | KeyTokenReply>(path, { csr } satisfies CsrRequest)).token));
  };
  const id = `csr-${slug}`;
  return html`<form class="form panel" onSubmit=${submit} aria-label=${label}>
    <h3>${label}</h3>
    <${CsrField} id=${id} value=${csr} onInput=${setCsr} />
    <${ErrorNote} error=${act.error} />
    <div class="actions"><button type="submit" disabled=${act.busy || !csr.trim()}>${label}</button>
    <button type="button" class="secondary" onClick=${() => setOpen(false)}>Close</button></div>
  </form>`;
}

/** The pool's description, edited in place (PATCH /v1/pools/{id}, as `launcher admin pool update`). */
function Description({ pool, onSaved }: { pool: PoolView; onSaved: () => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState('');
  const [saved, setSaved] = useState(false);
  const act = useAction();
  const input = useRef<HTMLInputElement>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const wasEditing = useRef(false);
  // Keyboard focus follows the form: into the field when it opens, back to the button when it closes.
  useEffect(() => {
    if (editing) input.current?.focus();
    else if (wasEditing.current) opener.current?.focus();
    wasEditing.current = editing;
  }, [editing]);
  const open = (): void => { setText(pool.description); setSaved(false); act.clear(); setEditing(true); };
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const ok = await act.run(() => api<PoolReply>('PATCH', `/v1/pools/${enc(pool.id)}`, { description: text.trim() } satisfies UpdatePoolRequest));
    if (ok) { onSaved(); setSaved(true); setEditing(false); }
  };
  if (!editing) {
    return html`<div class="description-row">
      ${pool.description ? html`<p class="description">${pool.description}</p>` : html`<p class="description muted">No description.</p>`}
      <button type="button" class="secondary small" ref=${opener} onClick=${open}>Edit description</button>
      ${saved ? html`<span class="ok small" role="status">Description saved.</span>` : null}
    </div>`;
  }
  return html`<form class="form panel" aria-label="Edit description" onSubmit=${submit}
      onKeyDown=${(e: KeyboardEvent) => { if (e.key === 'Escape') setEditing(false); }}>
    <div class="field"><label for="pool-description-edit">Description</label>
      <input id="pool-description-edit" name="description" ref=${input} maxlength="1024" autocomplete="off" aria-describedby="pool-description-help"
        placeholder="what runs here, who owns the hosts" value=${text} onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} />
      <p id="pool-description-help" class="muted small">At most 1024 characters; empty clears it. Esc closes without saving.</p></div>
    <${ErrorNote} error=${act.error} />
    <div class="actions"><button type="submit" disabled=${act.busy}>Save description</button>
      <button type="button" class="secondary" onClick=${() => setEditing(false)}>Cancel</button></div>
  </form>`;
}

export function PoolPage({ id }: { id: string }) {
  const pool = useGet<PoolReply>(`/v1/pools/${enc(id)}`, 3000);
  const act = useAction();
  const p = pool.data?.pool;
  if (!p) return html`<${Page} title="Worker pool"><${ErrorNote} error=${pool.error} />${pool.error ? null : html`<${Loading} what="the pool" />`}</${Page}>`;
  const base = `/v1/pools/${enc(p.id)}`;
  const cycle = () => confirm(`Cycle ${p.name}? Every worker now registered finishes its current run and exits; its supervisor starts a fresh launcher.`) &&
    act.run(async () => { await post<PoolReply>(`${base}/cycle`); pool.reload(); });
  const del = () => confirm(`Delete the worker pool ${p.name}? Its certificates stop working and its stacks are detached.`) &&
    act.run(async () => { await api<PoolReply>('DELETE', base); navigate('/pools'); });
  const retire = (k: KeyView) => confirm(`Retire key ${k.id}? Launchers using its certificate are refused from now on.`) &&
    act.run(async () => { await post<KeyReply>(`${base}/keys/${enc(k.id)}/retire`); pool.reload(); });
  return html`<${Page} title=${`Worker pool ${p.name}`} actions=${html`
      <a class="button secondary" href=${`/runs?pool=${enc(p.id)}`}>Runs</a>
      <button type="button" class="secondary" onClick=${cycle}>Cycle workers</button>
      <button type="button" class="danger" onClick=${del}>Delete pool</button>`}>
    <${ErrorNote} error=${act.error} />
    <${Description} pool=${p} onSaved=${pool.reload} />
    <dl class="facts">
      <dt>Id</dt><dd><code>${p.id}</code></dd>
      <dt>Workers</dt><dd>${p.workers} (${p.busy} busy)</dd>
      <dt>Pending runs</dt><dd>${p.pending}</dd>
      <dt>Cycle</dt><dd>${p.cycle}</dd>
      <dt>Created</dt><dd><${Time} iso=${p.createdAt} /></dd>
    </dl>
    <h2>Keys</h2>
    <div class="table-wrap"><table>
      <caption class="sr-only">Keys of ${p.name}</caption>
      <thead><tr><th scope="col">Key</th><th scope="col">State</th><th scope="col">Certificate serial</th><th scope="col">Valid until</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${p.keys.map((k) => html`<tr>
        <td><code>${k.id}</code></td><td><${Badge} state=${k.state} /></td><td><code>${k.serial.slice(0, 16)}…</code></td>
        <td>${k.notAfter.slice(0, 10)}</td><td><${Time} iso=${k.createdAt} /></td>
        <td>${k.state === 'active' ? html`<button type="button" class="secondary small" onClick=${() => retire(k)} aria-label=${`Retire key ${k.id}`}>Retire</button>` : null}</td>
      </tr>`)}</tbody></table></div>
    <div class="actions wrap">
      <${CsrAction} pool=${p} label="Add a key" path=${`${base}/keys`} what="Token for the new key" />
      <${CsrAction} pool=${p} label="Reset with a new CSR" path=${`${base}/reset`} what="New pool token"
        confirmText=${`Reset ${p.name}? Every current key is revoked at once; only the new CSR's key works afterwards.`} />
    </div>
    <h2>Workers</h2>
    <${WorkersTable} pool=${p.id} />
    <h2>Queue</h2>
    <${QueueTable} pool=${p.id} />
  </${Page}>`;
}

export async function poolKeys(poolId: string): Promise<string[]> {
  const { pool } = await get<PoolReply>(`/v1/pools/${enc(poolId)}`);
  return pool.keys.filter((k) => k.state === 'active').map((k) => k.publicKeyPem);
}

