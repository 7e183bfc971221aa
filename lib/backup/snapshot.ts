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
import { schemaVersionOf, useRollbackJournal } from '../server/db.ts';
import { Store } from '../server/store.ts';
import { VERSION } from '../version.ts';
import { BACKUP_FORMAT, BACKUP_FORMAT_VERSION, DATA_FILES, DATABASE_NAME, type BackupCounts, type BackupManifest } from './format.ts';

/**
 * One file of the archive: `size` bytes of `path` (a log: what the database
 * copy records), or the whole file when `size` is undefined (its size is
 * learnt when it is read: no stat of every file up front).
 */
export interface SnapshotEntry { name: string; path: string; size?: number }

export interface Snapshot {
  manifest: BackupManifest;
  entries: SnapshotEntry[];
  /** Found while taking the snapshot (a workspace of an unfinished run missing); the writer adds its own. */
  problems: string[];
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
    let states: { stack_id: string; version: number; size: number }[];
    let conflicts: { run_id: string; phase: number; size: number }[];
    try {
      // One self-contained file (no -wal beside it) for the archive.
      useRollbackJournal(copy);
      const store = new Store(copy);
      ({ unfinished: unfinishedWorkspaces, finished: finishedWorkspaces } = store.runs.withWorkspace());
      logs = store.runs.phaseLogs();
      // State versions and kept conflicts are written once under a new name, never replaced.
      states = store.states.allVersions();
      conflicts = store.states.allConflicts();
      counts = {
        pools: store.pools.count(),
        stacks: store.stacks.count(),
        runs: store.runs.count(),
        workers: store.workers.count(),
        workspaces: unfinishedWorkspaces.length + finishedWorkspaces.length,
        logs: logs.length,
        stateVersions: states.length,
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
        linked.push({ name, path: to });
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
    // Stable files, read in place while the archive is written (removals wait).
    for (const id of finishedWorkspaces) entries.push({ name: `workspaces/${id}.age`, path: join(paths.dir, 'workspaces', `${id}.age`) });
    for (const l of logs) entries.push({ name: `logs/${l.run_id}/${l.idx}.log`, path: join(paths.dir, 'logs', l.run_id, `${l.idx}.log`), size: l.log_bytes });
    for (const v of states) entries.push({ name: `state/${v.stack_id}/${v.version}.age`, path: join(paths.state, v.stack_id, `${v.version}.age`), size: v.size });
    for (const c of conflicts) entries.push({ name: `state/conflicts/${c.run_id}-${c.phase}.age`, path: join(paths.state, 'conflicts', `${c.run_id}-${c.phase}.age`), size: c.size });

    const schemaVersion = schemaVersionOf(o.db);
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_FORMAT_VERSION,
      createdAt: (o.now?.() ?? new Date()).toISOString(),
      launcherVersion: VERSION,
      schemaVersion,
      counts,
    };
    return { manifest, entries, problems, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}
