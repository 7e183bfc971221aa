// A stack's managed state on the server: numbered versions of a sealed file
// (an age file the server cannot open), each with the serial and lineage the
// worker or the CLI read before sealing, the run that wrote it and the sha256
// of the sealed bytes. Writes name the version they started from and are
// refused unless it is still the current one (optimistic concurrency); a
// refused worker upload is kept, sealed, beside its run so nothing is lost.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { baseMatches, versionsToPrune } from '../tool/state.ts';
import type { StateVersionView } from '../protocol.ts';
import { fsyncDir } from '../atomic-file.ts';
import { transaction } from './db.ts';
import { Refusal } from './refusal.ts';
import { iso } from './ids.ts';
import type { BlobStore } from './blobs.ts';
import type { Logger } from './log.ts';
import type { RunRow, Store, StackRow, StateVersionRow } from './store.ts';
import type { StateStore } from './store/states.ts';
import type { Workspaces } from './workspaces.ts';

/** What the state rules need of the server: rows, where uploads land, where sealed files go. */
export interface StateDeps {
  store: Store;
  workspaces: Pick<Workspaces, 'receive'>;
  blobs: BlobStore;
  /** --max-workspace-size, named in a refusal. */
  maxWorkspaceBytes: number;
  log: Logger;
}

export interface StateWrite {
  /** The version the writer started from (null: none). */
  base: number | null;
  serial: number | null;
  lineage: string | null;
  runId: string | null;
  /** "run", "push", "rollback" */
  source: string;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

export function stateVersionJson(v: StateVersionRow): StateVersionView {
  return {
    version: v.version, serial: v.serial, lineage: v.lineage, run: v.run_id, source: v.source,
    size: v.size, sha256: v.sha256, createdAt: v.created_at,
  };
}

export class StackStates {
  private readonly s: StateDeps;
  readonly rows: StateStore;
  private readonly dir: string;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(s: StateDeps, dir: string) {
    this.s = s;
    this.rows = s.store.states;
    this.dir = dir;
  }

  blobPath(stackId: string, version: number): string { return join(this.dir, stackId, `${version}.age`); }
  conflictPath(runId: string, phase: number): string { return join(this.dir, 'conflicts', `${runId}-${phase}.age`); }

  /** One writer per stack at a time (the check and the commit span an await). */
  private exclusive<T>(stackId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(stackId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(stackId, tail);
    void tail.then(() => { if (this.locks.get(stackId) === tail) this.locks.delete(stackId); });
    return next;
  }

  /** The tracked run holding the stack's state, if it is still active. */
  holder(st: StackRow): RunRow | undefined {
    if (!st.state_holder) return undefined;
    const r = this.s.store.runs.get(st.state_holder);
    return r && ['QUEUED', 'RUNNING', 'UNCONFIRMED'].includes(r.state) ? r : undefined;
  }

  /** Receives a sealed upload into a temp file; refuses plaintext. */
  async receive(body: Readable, declared: number): Promise<{ tmp: string; size: number }> {
    const got = await this.s.workspaces.receive(body, declared).catch((e: unknown) => {
      if (e instanceof Refusal && e.code === 'NOT_SEALED') {
        throw new Refusal('invalid', 'NOT_SEALED', 'State refused: it is not an age file (seal it to the pool\'s keys first; the server never stores plaintext state)');
      }
      if (e instanceof Refusal && e.code === 'WORKSPACE_TOO_LARGE') {
        throw new Refusal('too-large', 'STATE_TOO_LARGE', `Sealed state too large: the server's limit is ${this.s.maxWorkspaceBytes} bytes (--max-workspace-size)`);
      }
      throw e;
    });
    if (!got) throw new Refusal('invalid', 'INVALID_FIELD', 'State refused: the body is empty (expected a sealed age file)');
    return got;
  }

  /**
   * Makes `tmp` the stack's next version if `w.base` is still current.
   * `check` runs under the stack's lock just before (e.g. "no run holds it").
   */
  async commit(
    st: StackRow, tmp: { tmp: string; size: number }, w: StateWrite,
    opts: { check?: () => void; onConflict?: (tmp: { tmp: string; size: number }, current: number | null) => Promise<void> } = {},
  ): Promise<StateVersionRow> {
    return this.exclusive(st.id, async () => {
      try {
        opts.check?.();
        const cur = this.rows.current(st.id);
        if (cur && w.runId !== null && cur.run_id === w.runId && cur.serial === w.serial && cur.lineage === w.lineage && !baseMatches(cur.version, w.base)) {
          // The same upload again (a launcher that restarted before it heard the answer).
          await this.s.blobs.discard(tmp.tmp);
          return cur;
        }
        if (!baseMatches(cur?.version ?? null, w.base)) {
          if (opts.onConflict) await opts.onConflict(tmp, cur?.version ?? null);
          throw new Refusal('conflict', 'STATE_CONFLICT', `State refused: it was based on version ${w.base ?? 'none'} but the stack's current state is version ${cur?.version ?? 'none'} (someone else wrote it meanwhile; start again from the current version)`, { current: cur?.version ?? null });
        }
        const sha = await sha256File(tmp.tmp);
        const version = Math.max(this.rows.maxVersion(st.id), cur?.version ?? 0) + 1;
        await this.s.blobs.commit(tmp.tmp, this.blobPath(st.id, version));
        const row: StateVersionRow = {
          stack_id: st.id, version, run_id: w.runId, source: w.source, serial: w.serial, lineage: w.lineage,
          size: tmp.size, sha256: sha, created_at: iso(),
        };
        transaction(this.s.store.db, () => {
          this.rows.insert(row);
          this.rows.setMaxVersion(st.id, version);
        });
        this.s.log.info('State version stored', { stack: st.id, version, run: w.runId ?? undefined, source: w.source, bytes: tmp.size });
        await this.prune(st);
        return row;
      } catch (e) {
        await this.s.blobs.discard(tmp.tmp);
        throw e;
      }
    });
  }

  /** Keeps a refused worker upload, sealed, beside its run (nothing is lost). */
  async keepConflict(run: RunRow, phase: number, tmp: { tmp: string; size: number }, w: StateWrite, current: number | null): Promise<void> {
    const sha = await sha256File(tmp.tmp);
    await this.s.blobs.commit(tmp.tmp, this.conflictPath(run.id, phase));
    this.rows.recordConflict({ run_id: run.id, phase, stack_id: run.stack_id, base: w.base, current, serial: w.serial, lineage: w.lineage, size: tmp.size, sha256: sha, created_at: iso() });
    this.s.log.warn('State upload refused: kept beside its run', { run: run.id, stack: run.stack_id, base: w.base ?? undefined, current: current ?? undefined });
  }

  async prune(st: StackRow): Promise<void> {
    const drop = versionsToPrune(this.rows.list(st.id).map((v) => v.version), st.state_history);
    for (const v of drop) {
      this.rows.delete(st.id, v);
      // Not awaited: while a backup is being written removals wait for it, and
      // this upload's answer should not. A file left by a crash before its
      // removal has no row, and retention's orphan sweep removes it.
      const path = this.blobPath(st.id, v);
      this.s.blobs.remove(path).catch((e: Error) => this.s.log.warn('Cannot remove an old state version file', { path, error: e.message }));
    }
    if (drop.length) this.s.log.info('Old state versions removed (--state-history)', { stack: st.id, removed: drop.length, keep: st.state_history });
  }

  /** A copy of version `from` becomes the next version. */
  async rollback(st: StackRow, from: number, check: () => void): Promise<StateVersionRow> {
    const src = this.rows.version(st.id, from);
    if (!src) throw new Refusal('not-found', 'STATE_VERSION_NOT_FOUND', `State version ${from} of stack ${st.name} not found (list versions with launcher admin stack state list ${st.name})`);
    await mkdir(join(this.dir, 'tmp'), { recursive: true });
    const tmp = join(this.dir, 'tmp', `rollback-${st.id}-${Date.now()}`);
    await copyFile(this.blobPath(st.id, from), tmp);
    const fh = await open(tmp, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
    const cur = this.rows.current(st.id);
    return this.commit(st, { tmp, size: src.size }, {
      base: cur?.version ?? null, serial: src.serial, lineage: src.lineage, runId: null, source: `rollback:${from}`,
    }, { check });
  }

  async openVersion(st: StackRow, version: number | undefined): Promise<{ row: StateVersionRow; stream: Readable; size: number }> {
    const row = version === undefined ? this.rows.current(st.id) : this.rows.version(st.id, version);
    if (!row) {
      throw new Refusal('not-found', 'STATE_VERSION_NOT_FOUND', version === undefined
        ? `Stack ${st.name} has no state yet (a tracked run writes the first version, or push one with launcher admin stack state push)`
        : `State version ${version} of stack ${st.name} not found (list versions with launcher admin stack state list ${st.name})`);
    }
    const f = await this.s.blobs.open(this.blobPath(st.id, row.version));
    if (!f) throw new Refusal('broken', 'STATE_BLOB_MISSING', `State version ${row.version} of stack ${st.name} is recorded but its file is missing from the data directory`);
    return { row, ...f };
  }

  /** Deletes every version (stack delete --purge-state). */
  async purge(stackId: string): Promise<number> {
    const n = this.rows.list(stackId).length;
    this.rows.deleteAll(stackId);
    // While a backup is being written (it may still read these files) the
    // removal waits for it, and this answer does not.
    const path = join(this.dir, stackId);
    const removed = this.s.blobs.remove(path).then(() => fsyncDir(this.dir));
    if (this.s.blobs.removalsHeld()) removed.catch((e: Error) => this.s.log.warn('Cannot remove a purged stack\'s state files', { path, error: e.message }));
    else await removed;
    return n;
  }
}
