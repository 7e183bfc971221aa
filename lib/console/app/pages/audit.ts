// The audit log: every change made through the admin API (CLI or console),
// newest first, as the server wrote it to DATA/audit.log.
import type { AuditList } from '../../../protocol.ts';
import { ErrorNote, Loading, Page, Time, html, useGet } from '../ui.ts';

const KNOWN = new Set(['time', 'action', 'status', 'remote']);

export function AuditPage() {
  const audit = useGet<AuditList>('/v1/audit?limit=500', 5000);
  return html`<${Page} title="Audit log">
    <${ErrorNote} error=${audit.error} />
    ${!audit.data ? html`<${Loading} what="the audit log" />` : audit.data.entries.length === 0 ? html`<p class="muted">Nothing changed yet.</p>` : html`<div class="table-wrap"><table>
      <caption class="sr-only">Audit log, newest first</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Status</th><th scope="col">Objects</th><th scope="col">From</th></tr></thead>
      <tbody>${audit.data.entries.map((a) => html`<tr>
        <td><${Time} iso=${a.time} /></td><td><code>${a.action}</code></td><td>${a.status}</td>
        <td class="small">${Object.entries(a).filter(([k]) => !KNOWN.has(k)).map(([k, v]) => `${k}=${v}`).join(' ')}</td>
        <td class="small">${a.remote ?? '–'}</td></tr>`)}</tbody></table></div>`}
  </${Page}>`;
}
