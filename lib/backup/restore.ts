// `launcher server restore FILE --data DIR`: a backup becomes a data directory
// a server can start on. It is extracted into a sibling staging directory and
// checked there (every checksum, the schema version, SQLite's integrity check);
// only a backup that passes is renamed to DIR, so a bad file never leaves half
// a data directory behind. DIR must not exist or be empty: restore never
// overwrites a server's data.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { LauncherError } from '../errors.ts';
import { fsyncDir } from '../atomic-file.ts';
import { integrityProblems, SCHEMA_VERSION } from '../server/db.ts';
import { Store } from '../server/store.ts';
import { readArchive } from './archive.ts';
import { DATABASE_NAME, entryMode, invalidBackup, type BackupManifest } from './format.ts';

export interface RestoreResult {
  dataDir: string;
  manifest: BackupManifest;
  /** Files the database refers to that the backup lacked (they were missing when it was taken). */
  problems: string[];
  /** Counted in the restored database (they match the manifest's). */
  pools: number;
  runs: number;
  files: number;
  bytes: number;
}

async function emptyOrMissing(dir: string): Promise<boolean> {
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new LauncherError('DATA_DIR_INVALID', `Cannot restore into ${dir}: it exists and is not a directory`, { exitCode: 2 });
    return (await readdir(dir)).length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
}

export async function restoreBackup(o: { file: string; dataDir: string }): Promise<RestoreResult> {
  try {
    if (!(await stat(o.file)).isFile()) throw new Error('not a file');
  } catch (e) {
    throw new LauncherError('BACKUP_NOT_FOUND', `Cannot read the backup ${o.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { exitCode: 2 });
  }
  if (!(await emptyOrMissing(o.dataDir))) {
    throw new LauncherError('DATA_DIR_NOT_EMPTY', `Cannot restore into ${o.dataDir}: it is not empty (restore into a new directory, then start the server with --data on it)`, { exitCode: 2 });
  }
  await mkdir(dirname(o.dataDir), { recursive: true });
  const staging = join(dirname(o.dataDir), `.${basename(o.dataDir)}.restore-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    const made = new Set<string>();
    let out: FileHandle | undefined;
    const read = await readArchive(createReadStream(o.file, { highWaterMark: 1024 * 1024 }), {
      async open(name) {
        const target = join(staging, name);
        const parent = dirname(target);
        if (!made.has(parent)) { await mkdir(parent, { recursive: true, mode: 0o700 }); made.add(parent); }
        out = await open(target, 'wx', entryMode(name));
      },
      async write(chunk) { await out!.write(chunk); },
      async close() { await out!.close(); out = undefined; },
    }).finally(() => out?.close().catch(() => {}));
    const m = read.manifest;
    if (m.schemaVersion > SCHEMA_VERSION) {
      throw new LauncherError('DB_TOO_NEW', `Cannot restore: the backup's database schema version ${m.schemaVersion} is newer than this launcher's ${SCHEMA_VERSION} (restore with launcher ${m.launcherVersion} or newer)`);
    }
    let pools: number;
    let runs: number;
    const db = new DatabaseSync(join(staging, DATABASE_NAME));
    try {
      const problems = integrityProblems(db);
      if (problems.length > 0) {
        throw invalidBackup(`Damaged backup: the database fails SQLite's integrity check (${problems.slice(0, 3).join('; ')})`);
      }
      const store = new Store(db);
      pools = store.pools.count();
      runs = store.runs.count();
    } finally {
      db.close();
    }
    if (pools !== m.counts.pools || runs !== m.counts.runs) {
      throw invalidBackup(`Damaged backup: the database holds ${pools} pools and ${runs} runs, the manifest says ${m.counts.pools} and ${m.counts.runs}`);
    }
    for (const sub of ['tmp', 'workspaces', 'logs', 'state']) await mkdir(join(staging, sub), { recursive: true, mode: 0o700 });
    await rmdir(o.dataDir).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
    await rename(staging, o.dataDir);
    await fsyncDir(dirname(o.dataDir));
    return { dataDir: o.dataDir, manifest: m, problems: read.end.problems, pools, runs, files: read.files, bytes: read.bytes };
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}
