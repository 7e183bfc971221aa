// Files the server keeps outside the database: sealed workspaces and run logs.
// Every whole file lands atomically (temp file in the same directory tree,
// fsync, rename, fsync of the directory), so a crash leaves either the old
// file or the new one, never half of one. Logs grow by appends that are
// fsynced before the database records them (see logs.ts).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { once } from 'node:events';
import { lstat, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, writeFileAtomic } from '../atomic-file.ts';
import { Refusal } from './refusal.ts';

export interface BlobStore {
  /**
   * Streams `body` into a temp file, refusing more than `limit` bytes; returns
   * the temp path and size. `diskCheck` runs every 64 MiB and may throw to stop.
   * On any failure the temp file is gone when the promise rejects.
   */
  receive(body: Readable, limit: number, diskCheck?: (received: number) => Promise<void>): Promise<{ tmp: string; size: number }>;
  /** Moves a received temp file into place atomically. */
  commit(tmp: string, dest: string): Promise<void>;
  /** Writes a whole sealed file (a small workspace sent as JSON) atomically. */
  store(dest: string, data: Buffer): Promise<void>;
  /** Sealed files stored (workspaces and state versions) and their total size (for metrics). */
  stored(): { files: number; bytes: number };
  /** Counts what is already stored (once, at start; in the background). */
  scanStored(): Promise<void>;
  discard(tmp: string): Promise<void>;
  workspacePath(runId: string): string;
  open(path: string): Promise<{ stream: ReadStream; size: number } | undefined>;
  /**
   * Stops stored files from being replaced (a workspace upload's rename) until
   * the returned function is called. A backup holds this while it copies the
   * database and hard-links the workspaces of unfinished runs, so the copy and
   * the files agree; `commit` waits for it (seconds at most). Resolves once
   * commits already under way have finished, and the database write that
   * follows each of them in the same tick has run.
   */
  holdReplacements(): Promise<() => void>;
  /** Stops stored files from being removed (retention, gc) until released: a backup holds it while it streams. */
  holdRemovals(): () => void;
  /** True while something holds removals (gc reports it instead of waiting). */
  removalsHeld(): boolean;
  /** Removes a stored file or directory tree (retention, gc); waits while a backup holds removals. */
  remove(path: string): Promise<void>;
}

const DISK_CHECK_EVERY = 64 * 1024 * 1024;

/**
 * Removes everything in tmp/: uploads left by a server that stopped (or
 * crashed) while receiving them. Nothing in tmp/ is ever referenced by the
 * database, so at start-up all of it is garbage.
 */
export async function cleanTmp(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  let names: string[];
  try { names = await readdir(dir); } catch { return { files, bytes }; }
  for (const name of names) {
    const p = join(dir, name);
    try {
      const st = await lstat(p);
      bytes += st.size;
      await rm(p, { recursive: true, force: true });
      files++;
    } catch { /* raced with something else removing it */ }
  }
  return { files, bytes };
}

export function workspaceTooLarge(limit: number): Refusal {
  return new Refusal('too-large', 'WORKSPACE_TOO_LARGE', `Sealed workspace too large: the server's limit is ${limit} bytes (--max-workspace-size)`);
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Counted holds: `passed()` resolves when none is held. */
class Gate {
  private count = 0;
  private open: Promise<void> = Promise.resolve();
  private release: () => void = () => {};
  get held(): boolean { return this.count > 0; }
  hold(): () => void {
    if (this.count++ === 0) this.open = new Promise<void>((r) => { this.release = r; });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.count === 0) this.release();
    };
  }
  /** Resolves when the current holds are all released. */
  released(): Promise<void> { return this.open; }
  async passed(): Promise<void> {
    while (this.count > 0) await this.open;
  }
}

export function createBlobStore(opts: { tmpDir: string; workspacesDir: string; stateDir?: string }): BlobStore {
  // Sealed bytes stored, kept up to date by commit/store/remove.
  let files = 0;
  let bytes = 0;
  // Sealed files: workspaces, and state versions (not the state directory's tmp/).
  const sealedDirs = [opts.workspacesDir, ...(opts.stateDir ? [opts.stateDir] : [])];
  const isSealed = (path: string): boolean =>
    sealedDirs.some((d) => path.startsWith(d + sep)) && !(opts.stateDir !== undefined && path.startsWith(join(opts.stateDir, 'tmp') + sep));
  const account = (path: string, before: number | undefined, after: number): void => {
    if (!isSealed(path)) return;
    if (before === undefined) files++;
    bytes += after - (before ?? 0);
  };
  const replacements = new Gate();
  const removals = new Gate();
  // Commits past their wait, renaming now: a hold waits for them to finish.
  let inflight = 0;
  let idle: (() => void)[] = [];
  const finished = (): void => {
    if (--inflight > 0) return;
    const list = idle;
    idle = [];
    // After the caller's continuation (its database write) has run too.
    setImmediate(() => { for (const f of list) f(); });
  };
  return {
    async holdReplacements() {
      const free = replacements.hold();
      if (inflight > 0) await new Promise<void>((r) => idle.push(r));
      return free;
    },
    holdRemovals: () => removals.hold(),
    removalsHeld: () => removals.held,
    async remove(path) {
      await removals.passed();
      const before = await sizeOf(path);
      await rm(path, { recursive: true, force: true });
      if (before !== undefined && isSealed(path)) { files--; bytes -= before; }
    },
    async store(dest, data) {
      const before = await sizeOf(dest);
      await writeFileAtomic(dest, data, 0o600);
      account(dest, before, data.length);
    },
    stored: () => ({ files, bytes }),
    async scanStored() {
      let f = 0;
      let b = 0;
      const walk = async (dir: string): Promise<void> => {
        let names: Dirent[];
        try { names = await readdir(dir, { withFileTypes: true }); } catch { return; }
        for (const d of names) {
          if (d.isDirectory()) { if (isSealed(join(dir, d.name, 'x'))) await walk(join(dir, d.name)); }
          else if (d.isFile()) { const s = await sizeOf(join(dir, d.name)); if (s !== undefined) { f++; b += s; } }
        }
      };
      for (const d of sealedDirs) await walk(d);
      // Changes made while scanning were counted already; add what was found.
      files += f;
      bytes += b;
    },
    async receive(body, limit, diskCheck) {
      await mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
      const tmp = join(opts.tmpDir, `upload-${randomBytes(8).toString('hex')}`);
      // Opened before any byte is read, so a refusal can never race the open
      // and leave a file behind after the clean-up below.
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
      await once(out, 'ready');
      // Resolves once the descriptor is closed (pending writes included).
      const closeFile = (): Promise<void> => (out.closed ? Promise.resolve() : new Promise((resolve) => { out.once('close', () => resolve()); out.destroy(); }));
      let size = 0;
      let checkedAt = 0;
      try {
        await new Promise<void>((resolve, reject) => {
          let failed = false;
          const fail = (e: unknown): void => {
            if (failed) return;
            failed = true;
            body.unpipe(out);
            body.pause();
            out.destroy();
            reject(e);
          };
          body.on('data', (c: Buffer) => {
            size += c.length;
            if (size > limit) { fail(workspaceTooLarge(limit)); return; }
            // The free-disk floor, again every 64 MiB of a long upload.
            if (diskCheck && size - checkedAt >= DISK_CHECK_EVERY) {
              checkedAt = size;
              body.pause();
              diskCheck(size).then(() => { if (!failed) body.resume(); }, fail);
            }
          });
          body.on('error', fail);
          const aborted = (): void => fail(new Refusal('invalid', 'UPLOAD_ABORTED', 'Upload aborted: the client closed the connection before the end of the body'));
          body.on('aborted', aborted);
          body.on('close', () => { if ((body as { complete?: boolean }).complete === false) aborted(); });
          out.on('error', fail);
          out.on('finish', resolve);
          body.pipe(out);
        });
        const fh = await open(tmp, 'r+');
        try { await fh.sync(); } finally { await fh.close(); }
        await closeFile();
        return { tmp, size };
      } catch (e) {
        // Wait for the descriptor to close (after writes in flight): nothing lands after the rm.
        await closeFile();
        await rm(tmp, { force: true });
        throw e;
      }
    },
    async commit(tmp, dest) {
      await mkdir(dirname(dest), { recursive: true });
      // Checked and counted in one synchronous step, so no hold slips between.
      while (replacements.held) await replacements.released();
      inflight++;
      try {
        const size = (await stat(tmp)).size;
        const before = await sizeOf(dest);
        await rename(tmp, dest);
        account(dest, before, size);
        await fsyncDir(dirname(dest));
      } finally {
        finished();
      }
    },
    async discard(tmp) {
      await unlink(tmp).catch(() => {});
    },
    workspacePath(runId) {
      return join(opts.workspacesDir, `${runId}.age`);
    },
    async open(path) {
      try {
        const s = await stat(path);
        return { stream: createReadStream(path), size: s.size };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
  };
}
