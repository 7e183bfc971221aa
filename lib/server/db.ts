// The embedded database: one node:sqlite file in WAL mode, opened with an
// exclusive lock so a second server on the same data directory fails at once
// (the kernel drops the lock when a process dies, even by kill -9, so a crashed
// server never blocks the next start). Schema changes are numbered migrations
// applied in order and recorded in `migrations`.
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { LauncherError } from '../errors.ts';

const MIGRATIONS: string[] = [
  // 1: pools, keys, workers, stacks, runs and their phases.
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE pools (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, cycle INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, deleted_at TEXT);
  CREATE UNIQUE INDEX pools_name ON pools(name) WHERE deleted_at IS NULL;
  CREATE TABLE pool_keys (
    id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, state TEXT NOT NULL, serial TEXT NOT NULL UNIQUE,
    public_key_pem TEXT NOT NULL, cert_pem TEXT NOT NULL, not_after TEXT NOT NULL,
    created_at TEXT NOT NULL, retired_at TEXT);
  CREATE INDEX pool_keys_pool ON pool_keys(pool_id);
  CREATE TABLE workers (
    id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, metadata TEXT NOT NULL, version TEXT, host TEXT NOT NULL,
    registered_at TEXT NOT NULL, last_seen TEXT NOT NULL, idle_since TEXT, current_run TEXT,
    drained INTEGER NOT NULL DEFAULT 0, offline INTEGER NOT NULL DEFAULT 0, offline_since TEXT,
    cycle_gen INTEGER NOT NULL DEFAULT 0, deregistered_at TEXT);
  CREATE INDEX workers_pool ON workers(pool_id);
  CREATE TABLE stacks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, pool_id TEXT, image TEXT,
    env TEXT NOT NULL, secret_env BLOB, phases TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted_at TEXT);
  CREATE UNIQUE INDEX stacks_name ON stacks(name) WHERE deleted_at IS NULL;
  CREATE TABLE runs (
    n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    stack_id TEXT NOT NULL, stack_name TEXT NOT NULL, stack_kind TEXT NOT NULL, pool_id TEXT NOT NULL,
    proposed INTEGER NOT NULL, state TEXT NOT NULL, phase INTEGER NOT NULL, phase_count INTEGER NOT NULL,
    spec TEXT NOT NULL, secret_env BLOB, queue_key INTEGER NOT NULL, worker_id TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0, has_workspace INTEGER NOT NULL DEFAULT 0, reason TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, ended_at TEXT);
  CREATE INDEX runs_queue ON runs(pool_id, queue_key) WHERE state = 'QUEUED';
  CREATE INDEX runs_state ON runs(state);
  CREATE INDEX runs_stack ON runs(stack_id);
  CREATE TABLE phases (
    run_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, confirm INTEGER NOT NULL,
    worker_id TEXT, assigned_at TEXT, started_at TEXT, ended_at TEXT,
    outcome TEXT, exit_code INTEGER, error TEXT,
    log_next_seq INTEGER NOT NULL DEFAULT 0, log_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx));
  `,
  // 2: retention finds finished runs by when they ended.
  `
  CREATE INDEX runs_ended ON runs(ended_at) WHERE ended_at IS NOT NULL;
  `,
  // 3: a pool's description, shown in the console and by pool show.
  `ALTER TABLE pools ADD COLUMN description TEXT NOT NULL DEFAULT ''`,
  // 4: tool workflows (Terraform/OpenTofu), per-stack sealed state versions, schedules.
  `
  ALTER TABLE stacks ADD COLUMN tool TEXT;
  ALTER TABLE stacks ADD COLUMN project_root TEXT NOT NULL DEFAULT '.';
  ALTER TABLE stacks ADD COLUMN state_history INTEGER NOT NULL DEFAULT 100;
  ALTER TABLE stacks ADD COLUMN state_holder TEXT;
  ALTER TABLE stacks ADD COLUMN drifted_run TEXT;
  ALTER TABLE runs ADD COLUMN holds_state INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN changes TEXT;
  ALTER TABLE runs ADD COLUMN drifted INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN trigger TEXT;
  ALTER TABLE phases ADD COLUMN step TEXT;
  CREATE TABLE state_versions (
    stack_id TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT, source TEXT NOT NULL,
    serial INTEGER, lineage TEXT, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (stack_id, version));
  CREATE TABLE state_conflicts (
    run_id TEXT NOT NULL, phase INTEGER NOT NULL, stack_id TEXT NOT NULL, base INTEGER, current INTEGER,
    serial INTEGER, lineage TEXT, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, phase));
  CREATE TABLE schedules (
    id TEXT PRIMARY KEY, stack_id TEXT NOT NULL, cron TEXT NOT NULL, reconcile INTEGER NOT NULL,
    last_slot TEXT, created_at TEXT NOT NULL, deleted_at TEXT);
  CREATE INDEX schedules_stack ON schedules(stack_id);
  `,
  // 5: stacks from Git (repository, branch, sealed credential, path filters,
  // webhook secret) and the commit each run records; webhook delivery ids.
  `
  ALTER TABLE stacks ADD COLUMN repo TEXT;
  ALTER TABLE stacks ADD COLUMN repo_key TEXT;
  ALTER TABLE stacks ADD COLUMN branch TEXT;
  ALTER TABLE stacks ADD COLUMN repo_credential BLOB;
  ALTER TABLE stacks ADD COLUMN trigger_paths TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE stacks ADD COLUMN propose_branches INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE stacks ADD COLUMN webhook_secret TEXT;
  CREATE INDEX stacks_repo ON stacks(repo_key) WHERE deleted_at IS NULL;
  ALTER TABLE runs ADD COLUMN commit_repo TEXT;
  ALTER TABLE runs ADD COLUMN commit_branch TEXT;
  ALTER TABLE runs ADD COLUMN commit_sha TEXT;
  ALTER TABLE runs ADD COLUMN commit_author TEXT;
  ALTER TABLE runs ADD COLUMN commit_message TEXT;
  CREATE INDEX runs_commit ON runs(stack_id, commit_sha);
  CREATE TABLE hook_deliveries (id TEXT PRIMARY KEY, received_at TEXT NOT NULL);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export interface OpenOptions {
  /**
   * `normal` (default): a commit is in the WAL file when it returns, so a
   * process crash (kill -9) loses nothing; a power loss may roll back the last
   * commits, never corrupt. `full` also fsyncs the WAL on every commit.
   */
  sync?: 'full' | 'normal';
}

/** Opens (creating if needed) and migrates the database; throws DATA_DIR_LOCKED if another process holds it. */
export function openDatabase(path: string, opts: OpenOptions = {}): DatabaseSync {
  const db = new DatabaseSync(path, { timeout: 0 });
  try {
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    db.exec('PRAGMA journal_mode = WAL');
    // Take the exclusive lock now rather than on the first write.
    db.exec('BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL); COMMIT');
  } catch (e) {
    try { db.close(); } catch { /* already failing */ }
    if (/locked|busy/i.test((e as Error).message)) {
      throw new LauncherError('DATA_DIR_LOCKED', `Cannot open the database ${path}: another server holds it`, { cause: e });
    }
    throw new LauncherError('DB_OPEN_FAILED', `Cannot open the database ${path}: ${(e as Error).message}`, { cause: e });
  }
  db.exec(`PRAGMA synchronous = ${opts.sync === 'full' ? 'FULL' : 'NORMAL'}`);
  db.exec('PRAGMA foreign_keys = ON');
  migrate(db);
  return db;
}

/** The schema version a database is at (0 before the first migration). */
export function schemaVersionOf(db: DatabaseSync): number {
  return (db.prepare('SELECT max(version) AS v FROM migrations').get() as { v: number | null }).v ?? 0;
}

/** SQLite's integrity check: empty when the file is sound, else its first findings. */
export function integrityProblems(db: DatabaseSync): string[] {
  const rows = db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
  if (rows.length === 0) return ['no answer'];
  return rows.length === 1 && rows[0]!.integrity_check === 'ok' ? [] : rows.map((r) => r.integrity_check);
}

/** Makes a database one self-contained file (no -wal beside it), as a backup copy must be. */
export function useRollbackJournal(db: DatabaseSync): void {
  db.exec('PRAGMA journal_mode = DELETE');
}

function migrate(db: DatabaseSync): void {
  const current = schemaVersionOf(db);
  if (current > MIGRATIONS.length) {
    throw new LauncherError('DB_TOO_NEW', `Cannot use the database: its schema version ${current} is newer than this server's ${MIGRATIONS.length} (run a newer launcher)`);
  }
  for (let v = current + 1; v <= MIGRATIONS.length; v++) {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(MIGRATIONS[v - 1]!);
      db.prepare('INSERT INTO migrations (version, applied_at) VALUES (?, ?)').run(v, new Date().toISOString());
      db.exec('COMMIT');
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
  }
}

interface Pending { committed: () => void; rolledBack: () => void }
const pending = new WeakMap<DatabaseSync, Pending[]>();

/**
 * Runs `committed` once what the current transaction wrote is committed (at
 * once outside a transaction), or `rolledBack` if it is rolled back. Answers
 * that tell a client about a write (an assignment handed to a held poll) go
 * out this way, so nobody hears of a change before it is in the database.
 */
export function afterCommit(db: DatabaseSync, committed: () => void, rolledBack: () => void = () => {}): void {
  if (!db.isTransaction) { committed(); return; }
  let list = pending.get(db);
  if (!list) { list = []; pending.set(db, list); }
  list.push({ committed, rolledBack });
}

interface TxStatements { begin: StatementSync; commit: StatementSync; rollback: StatementSync }
const txStatements = new WeakMap<DatabaseSync, TxStatements>();

/** BEGIN, COMMIT and ROLLBACK prepared once per database: `exec` would parse them again for every transaction. */
function txOf(db: DatabaseSync): TxStatements {
  let t = txStatements.get(db);
  if (!t) {
    t = { begin: db.prepare('BEGIN IMMEDIATE'), commit: db.prepare('COMMIT'), rollback: db.prepare('ROLLBACK') };
    txStatements.set(db, t);
  }
  return t;
}

/** Runs fn in one IMMEDIATE transaction (nesting joins the outer one). */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn();
  const tx = txOf(db);
  tx.begin.run();
  let v: T;
  try {
    v = fn();
    tx.commit.run();
  } catch (e) {
    if (db.isTransaction) tx.rollback.run();
    const list = pending.get(db) ?? [];
    pending.delete(db);
    for (const p of list) p.rolledBack();
    throw e;
  }
  const list = pending.get(db);
  if (list) {
    pending.delete(db);
    for (const p of list) p.committed();
  }
  return v;
}

/**
 * Moves WAL checkpoints off the commit path: instead of a commit that crosses
 * 1,000 WAL pages copying them into the database file and fsyncing both files
 * (on the event loop, inside a request), a PASSIVE checkpoint runs every
 * `everyMs` on a timer. A page rewritten by many commits in that time is copied
 * once. Durability does not change: a committed transaction is in the WAL file
 * either way and survives kill -9 (SQLite replays the WAL on open). The
 * automatic checkpoint stays as a backstop when the timer falls behind.
 * Returns a function that stops the timer.
 */
export function checkpointOnTimer(db: DatabaseSync, everyMs = 1000, onError: (e: Error) => void = () => {}): () => void {
  db.exec('PRAGMA wal_autocheckpoint = 16000');
  // After a checkpoint the WAL is reused from its start; cap what it keeps on disk.
  db.exec('PRAGMA journal_size_limit = 67108864');
  const timer = setInterval(() => {
    if (!db.isOpen || db.isTransaction) return;
    try { db.exec('PRAGMA wal_checkpoint(PASSIVE)'); } catch (e) { onError(e as Error); }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
