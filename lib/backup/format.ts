// The backup file: one tar archive. Its first entry, `launcher-backup.json`,
// says what it holds (format version, schema version, counts); then the
// database copy, the CA and server key pairs, the admin token file and audit
// log, and the blob files (sealed workspaces, log files) in the data
// directory's own layout; then `launcher-backup-end.json` (how many files and
// bytes were written, and any file the database refers to that was missing);
// its last entry, `SHA256SUMS`, has the SHA-256 of every entry before it, so a
// cut-short or altered file is refused. Pure: names, modes and the record
// shapes, no I/O.
import { LauncherError } from '../errors.ts';

export const BACKUP_FORMAT = 'launcher-backup';
export const BACKUP_FORMAT_VERSION = 1;
export const MANIFEST_NAME = 'launcher-backup.json';
export const END_NAME = 'launcher-backup-end.json';
export const SUMS_NAME = 'SHA256SUMS';
export const DATABASE_NAME = 'launcher.db';

export interface BackupCounts {
  pools: number;
  stacks: number;
  runs: number;
  workers: number;
  workspaces: number;
  logs: number;
  /** Sealed state versions of managed-state stacks (state/STACK/VERSION.age). */
  stateVersions: number;
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: number;
  createdAt: string;
  launcherVersion: string;
  schemaVersion: number;
  counts: BackupCounts;
}

/** The record after the last file: what was written (sizes are known only once the files are read). */
export interface BackupEnd {
  /** File entries between the manifest and this record. */
  files: number;
  /** Their total size in bytes. */
  bytes: number;
  /** Files the database refers to that were missing or short in the data directory. */
  problems: string[];
}

/** Top-level files copied from the data directory as they are. */
export const DATA_FILES = ['ca.key', 'ca.crt', 'server.key', 'server.crt', 'admin.token', 'audit.log'] as const;

const RUN_ID = '[A-Za-z0-9_-]{1,128}';
const NAME_RULES: RegExp[] = [
  new RegExp(`^workspaces/${RUN_ID}\\.age$`),
  new RegExp(`^logs/${RUN_ID}/\\d{1,6}\\.log$`),
  new RegExp(`^state/${RUN_ID}/\\d{1,9}\\.age$`),
  new RegExp(`^state/conflicts/${RUN_ID}-\\d{1,6}\\.age$`),
];

/** True for a name a backup may hold (anything else is refused on restore). */
export function isBackupEntryName(name: string): boolean {
  if (name === MANIFEST_NAME || name === END_NAME || name === SUMS_NAME || name === DATABASE_NAME) return true;
  if ((DATA_FILES as readonly string[]).includes(name)) return true;
  return NAME_RULES.some((re) => re.test(name));
}

/** File mode for a restored entry: certificates are public, everything else is private. */
export function entryMode(name: string): number {
  return name === 'ca.crt' || name === 'server.crt' ? 0o644 : 0o600;
}

export function invalidBackup(message: string): LauncherError {
  return new LauncherError('BACKUP_INVALID', message);
}

/** Parses `launcher-backup.json`, naming what is wrong with it. */
export function parseManifest(text: string): BackupManifest {
  let m: unknown;
  try { m = JSON.parse(text); } catch {
    throw invalidBackup(`Not a launcher backup: ${MANIFEST_NAME} is not JSON`);
  }
  const o = m as Partial<BackupManifest> | null;
  if (!o || typeof o !== 'object' || o.format !== BACKUP_FORMAT) throw invalidBackup(`Not a launcher backup: ${MANIFEST_NAME} has no "format": "${BACKUP_FORMAT}"`);
  if (o.version !== BACKUP_FORMAT_VERSION) {
    throw invalidBackup(`Cannot read backup format version ${String(o.version)}: this launcher reads version ${BACKUP_FORMAT_VERSION} (use the launcher that wrote it, or a newer one)`);
  }
  if (!Number.isInteger(o.schemaVersion) || typeof o.counts !== 'object' || o.counts === null) {
    throw invalidBackup(`Not a launcher backup: ${MANIFEST_NAME} lacks schemaVersion or counts`);
  }
  return o as BackupManifest;
}

export function parseEnd(text: string): BackupEnd {
  let o: Partial<BackupEnd> | null;
  try { o = JSON.parse(text) as Partial<BackupEnd>; } catch { o = null; }
  if (!o || !Number.isInteger(o.files) || !Number.isInteger(o.bytes) || !Array.isArray(o.problems)) {
    throw invalidBackup(`Damaged backup: ${END_NAME} lacks files, bytes or problems`);
  }
  return { files: o.files!, bytes: o.bytes!, problems: o.problems.map(String) };
}

export function sumsText(sums: Map<string, string>): string {
  return [...sums].map(([name, hex]) => `${hex}  ${name}\n`).join('');
}

export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!m) throw invalidBackup(`Damaged backup: a line of ${SUMS_NAME} is not "SHA256  NAME"`);
    out.set(m[2]!, m[1]!);
  }
  return out;
}
