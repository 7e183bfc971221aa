// A folder to start a run with, chosen on a stack's page: packed as
// `launcher admin run trigger --workspace DIR` packs it, sealed in this
// browser to the pool's keys, and sent raw to the same trigger endpoint.
import type { RunReply } from '../../../protocol.ts';
import { byteSize } from '../../../admin/format.ts';
import { enc, maxWorkspaceBytes, postBytes } from '../api.ts';
import { html } from '../ui.ts';
import { pickedFiles, planWorkspace, sealWorkspace, sealedPayloadBytes, type Workspace } from '../workspace.ts';

export interface PickedFolder { name: string; ws: Workspace }

const plural = (n: number, one: string): string => `${n.toLocaleString('en')} ${one}${n === 1 ? '' : 's'}`;

function tooLarge(sealedBytes: number, limit: number): Error {
  return new Error(`The folder seals to ${byteSize(sealedBytes)} (${sealedBytes} bytes), over the server's limit of ${byteSize(limit)} (${limit} bytes, --max-workspace-size): choose a smaller folder or raise the limit`);
}

/** Reads the picker's files into a workspace plan, or throws what is wrong with the folder. */
export function pickFolder(list: FileList | null): PickedFolder {
  const files = list ? Array.from(list) : [];
  if (files.length === 0) throw new Error('The chosen folder holds no files: choose a folder with files, or trigger without one');
  const name = (files[0]!.webkitRelativePath || '').split('/')[0] || 'folder';
  const ws = planWorkspace(pickedFiles(files), Date.now());
  const limit = maxWorkspaceBytes();
  // The header adds a few hundred bytes per key: the server has the last word on those.
  if (limit !== undefined && sealedPayloadBytes(ws.tarBytes) > limit) throw tooLarge(sealedPayloadBytes(ws.tarBytes), limit);
  return { name, ws };
}

export function FolderSummary({ folder }: { folder: PickedFolder }) {
  const { ws } = folder;
  return html`<p class="folder-summary" role="status"><strong>${folder.name}</strong>: ${plural(ws.files, 'file')} in ${plural(ws.dirs + 1, 'folder')}, ${byteSize(ws.bytes)} (tar ${byteSize(ws.tarBytes)}). The next trigger packs and seals it in this browser to the pool's keys and uploads only the sealed file.</p>`;
}

/** Seals and uploads the folder as a new run of `stackId`; says what it sent. */
export async function triggerWithFolder(stackId: string, proposed: boolean, folder: PickedFolder, keys: string[], say: (m: string) => void): Promise<{ runId: string; note: string }> {
  const { ws } = folder;
  say(`Packing and sealing ${plural(ws.files, 'file')}…`);
  const sealed = await sealWorkspace(ws, keys, (n) => say(`Packing and sealing: ${n.toLocaleString('en')} of ${plural(ws.files, 'file')}`));
  const limit = maxWorkspaceBytes();
  if (limit !== undefined && sealed.body.size > limit) throw tooLarge(sealed.body.size, limit);
  const sealedTo = `sealed to ${plural(sealed.keys, 'key')}`;
  say(`Uploading ${byteSize(sealed.body.size)}, ${sealedTo}…`);
  const out = await postBytes<RunReply>(`/v1/stacks/${enc(stackId)}/runs?proposed=${proposed ? 1 : 0}`, sealed.body);
  return { runId: out.run.id, note: `Workspace ${folder.name}: ${plural(ws.files, 'file')}, ${byteSize(ws.bytes)}; ${byteSize(sealed.body.size)} uploaded, ${sealedTo} in this browser.` };
}
