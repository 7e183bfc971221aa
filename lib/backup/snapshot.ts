// Taking a backup while the server runs. The database is copied with SQLite's
// online backup (node:sqlite `backup`, a few thousand pages per step on the
// thread pool, so requests keep being answered between steps; writes made
// during the copy are carried into it). The copy is a snapshot of one moment;
// the blob files are made to agree with that moment:
//
// - workspace uploads of unfinished runs replace their file: replacements wait
//   from just before the copy until those files are hard-linked beside it (a
//   link keeps the old content when a later upload renames over the name);
// - a finished run's workspace and the first `log_bytes` of a log file never
//   change, so they are read in place, the log cut at the length the copy
//   records; removals (retention, gc) wait until the archive has been written.
import { backup, DatabaseSync } from 'node:sqlite';
import { copyFile, link, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BlobStore } from '../server/blobs.ts';
import type { DataPaths } from '../server/datadir.ts';
import { TERMINAL_STATES } from '../protocol.ts';
import { VERSION } from '../version.ts';
import { BACKUP_FORMAT, BACKUP_FORMAT_VERSION, DATA_FILES, DATABASE_NAME, type BackupCounts, type BackupManifest } from './format.ts';

/** One file of the archive: read `size` bytes of `path`. */
export interface SnapshotEntry { name: string; path: string; size: number }

export interface Snapshot {
  manifest: BackupManifest;
  entries: SnapshotEntry[];
  /** Removes the snapshot's directory and lets removals go on. */
  dispose(): Promise<void>;
}

export interface SnapshotOptions {
  db: DatabaseSync;
  paths: DataPaths;
  blobs: Pick<BlobStore, 'holdReplacements' | 'holdRemovals'>;
  /** Database pages per online-backup step (default 2,000 = 8 MiB at 4 KiB pages). */
  pagesPerStep?: number;
  now?: () => Date;
}

const TERMINAL = `(${TERMINAL_STATES.map((s) => `'${s}'`).join(', ')})`;

/** Runs `fn` over `items` with at most `limit` at once. */
async function each<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => { while (i < items.length) await fn(items[i++]!); };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function takeSnapshot(o: SnapshotOptions): Promise<Snapshot> {
  const { paths } = o;
  await mkdir(paths.tmp, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(paths.tmp, 'backup-'));
  const freeRemovals = o.blobs.holdRemovals();
  let freeReplacements: (() => void) | undefined;
  const dispose = async (): Promise<void> => {
    freeReplacements?.();
    freeRemovals();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    freeReplacements = await o.blobs.holdReplacements();
    const dbCopy = join(dir, DATABASE_NAME);
    await backup(o.db, dbCopy, { rate: o.pagesPerStep ?? 2000 });

    const copy = new DatabaseSync(dbCopy);
    let counts: BackupCounts;
    let unfinishedWorkspaces: string[];
    let finishedWorkspaces: string[];
    let logs: { run_id: string; idx: number; log_bytes: number }[];
    try {
      // One self-contained file (no -wal beside it) for the archive.
      copy.exec('PRAGMA journal_mode = DELETE');
      const count = (sql: string): number => (copy.prepare(sql).get() as { c: number }).c;
      unfinishedWorkspaces = (copy.prepare(`SELECT id FROM runs WHERE has_workspace = 1 AND state NOT IN ${TERMINAL}`).all() as { id: string }[]).map((r) => r.id);
      finishedWorkspaces = (copy.prepare(`SELECT id FROM runs WHERE has_workspace = 1 AND state IN ${TERMINAL}`).all() as { id: string }[]).map((r) => r.id);
      logs = copy.prepare('SELECT run_id, idx, log_bytes FROM phases WHERE log_bytes > 0 ORDER BY run_id, idx').all() as typeof logs;
      counts = {
        pools: count('SELECT count(*) AS c FROM pools WHERE deleted_at IS NULL'),
        stacks: count('SELECT count(*) AS c FROM stacks WHERE deleted_at IS NULL'),
        runs: count('SELECT count(*) AS c FROM runs'),
        workers: count('SELECT count(*) AS c FROM workers WHERE deregistered_at IS NULL'),
        workspaces: unfinishedWorkspaces.length + finishedWorkspaces.length,
        logs: logs.length,
      };
    } finally {
      copy.close();
    }

    const problems: string[] = [];
    const entries: SnapshotEntry[] = [{ name: DATABASE_NAME, path: dbCopy, size: (await stat(dbCopy)).size }];
    // Workspaces a later upload may replace: hard-link them while replacements wait.
    const linked: SnapshotEntry[] = [];
    await each(unfinishedWorkspaces, 16, async (id) => {
      const name = `workspaces/${id}.age`;
      const to = join(dir, name);
      try {
        await mkdir(dirname(to), { recursive: true });
        await link(join(paths.dir, name), to);
        linked.push({ name, path: to, size: (await stat(to)).size });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        problems.push(`${name}: missing`);
      }
    });
    freeReplacements();
    freeReplacements = undefined;
    entries.push(...linked.sort((a, b) => a.name.localeCompare(b.name)));

    for (const f of DATA_FILES) {
      // Small files, copied now (audit.log grows by appends; the copy is its state at this moment).
      try {
        await copyFile(join(paths.dir, f), join(dir, f));
        entries.push({ name: f, path: join(dir, f), size: (await stat(join(dir, f))).size });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        if (f !== 'audit.log' && f !== 'admin.token') problems.push(`${f}: missing`);
      }
    }
    // Stable files, read in place later: only their sizes now.
    const stable: SnapshotEntry[] = [];
    await each(finishedWorkspaces, 16, async (id) => {
      const name = `workspaces/${id}.age`;
      try {
        stable.push({ name, path: join(paths.dir, name), size: (await stat(join(paths.dir, name))).size });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        problems.push(`${name}: missing`);
      }
    });
    await each(logs, 16, async (l) => {
      const name = `logs/${l.run_id}/${l.idx}.log`;
      let size = 0;
      try { size = (await stat(join(paths.dir, name))).size; } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        problems.push(`${name}: missing`);
        return;
      }
      if (size < l.log_bytes) problems.push(`${name}: ${size} bytes on disk, the database records ${l.log_bytes}`);
      stable.push({ name, path: join(paths.dir, name), size: Math.min(size, l.log_bytes) });
    });
    entries.push(...stable.sort((a, b) => a.name.localeCompare(b.name)));

    const schemaVersion = (o.db.prepare('SELECT max(version) AS v FROM migrations').get() as { v: number }).v;
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_FORMAT_VERSION,
      createdAt: (o.now?.() ?? new Date()).toISOString(),
      launcherVersion: VERSION,
      schemaVersion,
      counts,
      files: entries.length,
      bytes: entries.reduce((n, e) => n + e.size, 0),
      problems: problems.sort(),
    };
    return { manifest, entries, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}
