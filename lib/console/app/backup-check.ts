// Checks a backup archive the console downloaded before it is offered as a
// file, as `launcher admin backup` does while it writes: manifest first, every
// entry's SHA-256 listed in SHA256SUMS, SHA256SUMS last, the end record and
// the two zero blocks that close the tar. A stream the server cut short (it
// ends without SHA256SUMS) or damaged is refused, so nobody keeps half a
// backup. The record shapes are the CLI's own (lib/backup/format.ts); the
// hash is passed in (WebCrypto in the page, node:crypto in tests).
import {
  END_NAME, MANIFEST_NAME, SUMS_NAME, isBackupEntryName, parseEnd, parseManifest, parseSums,
  type BackupEnd, type BackupManifest,
} from '../../backup/format.ts';

export interface CheckedBackup { manifest: BackupManifest; end: BackupEnd; entries: number }

const BLOCK = 512;
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function field(h: Uint8Array, off: number, len: number): string {
  const part = h.subarray(off, off + len);
  const nul = part.indexOf(0);
  return text(nul === -1 ? part : part.subarray(0, nul));
}

function size(h: Uint8Array): number {
  if ((h[124]! & 0x80) !== 0) {
    let v = 0;
    for (let i = 125; i < 136; i++) v = v * 256 + h[i]!;
    return v;
  }
  const s = field(h, 124, 12).trim();
  if (!/^[0-7]*$/.test(s)) throw new Error('Damaged backup: a tar header\'s size is not octal');
  return s === '' ? 0 : parseInt(s, 8);
}

function checksumOk(h: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return parseInt(field(h, 148, 8).trim(), 8) === sum;
}

export async function checkBackup(archive: Uint8Array, sha256: (data: Uint8Array) => Promise<string>): Promise<CheckedBackup> {
  const incomplete = (): Error => new Error('Incomplete backup: the archive ends before SHA256SUMS (the server or the connection stopped part-way); nothing was saved, make a new one');
  const sums = new Map<string, string>();
  let manifest: BackupManifest | undefined;
  let end: BackupEnd | undefined;
  let listed: Map<string, string> | undefined;
  let entries = 0;
  let at = 0;
  for (;;) {
    if (at + BLOCK > archive.length) throw incomplete();
    const h = archive.subarray(at, at + BLOCK);
    if (h.every((b) => b === 0)) break;
    if (!checksumOk(h)) throw new Error(`Damaged backup: the tar header at byte ${at} has a wrong checksum`);
    const prefix = field(h, 345, 155);
    const name = prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
    const n = size(h);
    const data = archive.subarray(at + BLOCK, at + BLOCK + n);
    if (data.length < n) throw incomplete();
    at += BLOCK + Math.ceil(n / BLOCK) * BLOCK;
    if (listed) throw new Error(`Damaged backup: ${name} comes after ${SUMS_NAME}, which must be last`);
    if (!isBackupEntryName(name)) throw new Error(`Not a launcher backup: it holds ${name}`);
    if (entries === 0 && name !== MANIFEST_NAME) throw new Error(`Not a launcher backup: it does not start with ${MANIFEST_NAME}`);
    entries++;
    if (name === SUMS_NAME) { listed = parseSums(text(data)); continue; }
    if (name === MANIFEST_NAME) manifest = parseManifest(text(data));
    if (name === END_NAME) end = parseEnd(text(data));
    sums.set(name, await sha256(data));
  }
  if (!listed) throw incomplete();
  if (!manifest || !end) throw new Error(`Damaged backup: ${MANIFEST_NAME} or ${END_NAME} is missing`);
  if (listed.size !== sums.size) throw new Error(`Damaged backup: ${SUMS_NAME} lists ${listed.size} entries, the archive holds ${sums.size}`);
  for (const [name, hex] of sums) {
    if (listed.get(name) !== hex) throw new Error(`Damaged backup: ${name} does not match its SHA-256 in ${SUMS_NAME}`);
  }
  return { manifest, end, entries };
}

/** SHA-256 in hex through WebCrypto (the page's secure context has it). */
export async function webSha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}
