// Online backup, as `launcher admin backup -o FILE`: the same POST /v1/backup,
// the archive checked (manifest, every entry's SHA-256, SHA256SUMS last) before
// the browser is handed a file, so a backup cut short is never saved.
import { useState } from 'preact/hooks';
import { sendRaw } from '../raw.ts';
import { checkBackup, webSha256, type CheckedBackup } from '../backup-check.ts';
import { byteSize } from '../../../admin/format.ts';
import { Code, ErrorNote, Page, download, html, useAction } from '../ui.ts';

/** The answer body in pieces, reporting bytes as they arrive. */
async function readAll(res: Response, progress: (n: number) => void): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let got = 0;
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.length;
    progress(got);
  }
  const all = new Uint8Array(got);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return all;
}

export function BackupPage() {
  const [received, setReceived] = useState(0);
  const [done, setDone] = useState<{ name: string; size: number; checked: CheckedBackup } | undefined>(undefined);
  const act = useAction();
  const start = (): Promise<boolean> => act.run(async () => {
    setDone(undefined);
    setReceived(0);
    const res = await sendRaw('POST', '/v1/backup');
    const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'launcher-backup.tar';
    const data = await readAll(res, setReceived);
    const checked = await checkBackup(data, webSha256);
    download(name, data, 'application/x-tar');
    setDone({ name, size: data.length, checked });
  });
  const c = done?.checked.manifest.counts;
  return html`<${Page} title="Backup">
    <p>An online backup of the running server: its database, CA and server keys, admin token, audit log, sealed
      workspaces and state, and run logs, in one tar archive. The server keeps serving while it is written.
      The page checks the archive (every entry against its SHA-256, the closing checksum list) before saving it,
      so an archive cut short is never saved.</p>
    <p class="warning">The archive holds the server's keys and admin token: keep it as safe as the data directory.</p>
    <div class="actions"><button type="button" onClick=${start} disabled=${act.busy}>${act.busy ? 'Making the backup…' : 'Make a backup and download it'}</button></div>
    ${act.busy ? html`<p class="muted" role="status" aria-live="polite">Received ${byteSize(received)}…</p>` : null}
    <${ErrorNote} error=${act.error} />
    ${done && c ? html`<div class="panel" role="status">
      <h2>Backup saved</h2>
      <p class="ok">Checked and saved as <code>${done.name}</code> (${byteSize(done.size)}, ${done.checked.entries} entries).</p>
      <dl class="facts">
        <dt>Made</dt><dd>${done.checked.manifest.createdAt}</dd>
        <dt>Contents</dt><dd>${c.pools} pools, ${c.stacks} stacks, ${c.runs} runs, ${c.workers} workers, ${c.workspaces} sealed workspaces, ${c.logs} log files, ${c.stateVersions} state versions</dd>
        <dt>Files</dt><dd>${done.checked.end.files} (${byteSize(done.checked.end.bytes)})</dd>
      </dl>
      ${done.checked.end.problems.length > 0 ? html`<p class="warning">The server's data directory lacks files its database refers to:</p>
        <ul>${done.checked.end.problems.map((p) => html`<li><code>${p}</code></li>`)}</ul>` : null}
    </div>` : null}
    <h2>From a terminal</h2>
    <p>The same backup, written straight to a file (better for large data directories: the page holds the whole archive in memory until it is saved):</p>
    <${Code} text="launcher admin backup -o launcher-backup.tar" label="Backup command" />
    <p>To restore, on the server's host: into a new (or empty) data directory, then start the server on it
      (same CA, so pool tokens and worker certificates stay valid):</p>
    <${Code} text="launcher server restore launcher-backup.tar --data /var/lib/launcher-restored" label="Restore command" />
  </${Page}>`;
}
