// The launcher's Git client: a shallow fetch of exactly the run's commit and a
// checkout of its tree into a directory that becomes the run's workspace; no
// git binary on the host or in the runner image.
//
// - http(s):// sources: Git smart HTTP (smart-http.ts) asks for the one commit
//   at depth 1, and the pack is indexed while it arrives and read in memory
//   (pack.ts) with node:zlib and node:crypto. Nothing is written but the checked-out files:
//   the credential (sent as a header) cannot land in the workspace, and the
//   sealed workspace does not carry the pack a second time.
// - file:///path sources are read in place on the worker host (a bare
//   repository or a working copy's .git, loose objects and many packs) with
//   isomorphic-git, loaded on first use.
import * as fs from 'node:fs';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as Git from 'isomorphic-git';
import { LauncherError } from '../errors.ts';
import { firstLine } from './webhook.ts';
import { SHA_RE } from './repo.ts';
import { PackIndexer, parseCommit, parseTree, PackError, type PackIndex } from './pack.ts';
import { SmartHttpError, discoverRefs, fetchPack } from './smart-http.ts';

export interface SourceSpec {
  repo: string;
  /** The branch to resolve when no commit is given (and the branch the commit is recorded under). */
  branch: string | null;
  /** The exact commit; when null the branch tip is resolved at fetch time. */
  commit: string | null;
}

export interface RepoCredential { username: string; password: string }

export interface Fetched {
  sha: string;
  author: string | null;
  /** First line of the commit message. */
  message: string | null;
  files: number;
  bytes: number;
  /** Objects received (http sources: the pack's count; 0 when read in place). */
  objects: number;
}

export interface FetchOptions {
  /** Where the tree is written (created; should be empty). */
  dir: string;
  credential?: RepoCredential | undefined;
  signal?: AbortSignal;
}

export class SourceError extends LauncherError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = 'SourceError';
  }
}

// Loaded on the first fetch: a launcher that never runs a Git stack never
// initialises the Git client (the executable's idle memory stays as it was).
let gitModule: Promise<typeof Git> | undefined;
const loadGit = (): Promise<typeof Git> => (gitModule ??= import('isomorphic-git'));

const LFS_POINTER = 'version https://git-lfs.github.com/spec/v1';

function describe(spec: SourceSpec): string {
  return `${spec.repo} at ${spec.commit ?? `the tip of ${spec.branch ?? 'HEAD'}`}`;
}

/** Fetches the commit and writes its tree into `opts.dir`. */
export async function fetchSource(spec: SourceSpec, opts: FetchOptions): Promise<Fetched> {
  if (spec.commit !== null && !SHA_RE.test(spec.commit)) throw new SourceError('SOURCE_COMMIT_INVALID', `Cannot fetch ${spec.repo}: commit "${spec.commit}" is not a 40-character SHA`);
  const url = new URL(spec.repo);
  const reader = url.protocol === 'file:' ? await localReader(spec, url) : await httpReader(spec, opts);
  let commit: { tree: string; author: string | null; message: string };
  try {
    commit = await reader.commit(reader.sha);
  } catch (e) {
    throw new SourceError('SOURCE_COMMIT_NOT_FOUND', `Cannot fetch ${describe(spec)}: commit ${reader.sha} is not in the repository (or not reachable from a branch)`, e);
  }
  const stats = await checkout(reader, commit.tree, opts.dir, opts.signal, reader.written);
  return { sha: reader.sha, author: commit.author, message: firstLine(commit.message), ...stats, objects: reader.objects };
}

/** What a checkout reads: trees, blobs and the commit, from wherever they are. */
interface ObjectReader {
  sha: string;
  objects: number;
  /** Files already written while the pack arrived, with their sizes. */
  written?: Map<string, number>;
  commit(oid: string): Promise<{ tree: string; author: string | null; message: string }>;
  tree(oid: string): Promise<Array<{ mode: string; path: string; oid: string; type: 'blob' | 'tree' | 'commit' }>>;
  blob(oid: string): Promise<Uint8Array>;
}

const typeOfMode = (mode: string): 'blob' | 'tree' | 'commit' => (mode === '40000' || mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob');

async function httpReader(spec: SourceSpec, opts: FetchOptions): Promise<ObjectReader> {
  const headers: Record<string, string> = {};
  if (opts.credential) headers.authorization = `Basic ${Buffer.from(`${opts.credential.username}:${opts.credential.password}`).toString('base64')}`;
  const o = { headers, ...(opts.signal ? { signal: opts.signal } : {}) };
  let sha: string;
  let pack: PackIndex;
  let early: EarlyCheckout | undefined;
  try {
    const adv = await discoverRefs(spec.repo, o);
    if (spec.commit !== null) {
      sha = spec.commit;
    } else {
      const branch = spec.branch ?? 'main';
      const tip = adv.refs.get(`refs/heads/${branch}`);
      if (!tip) {
        throw new SourceError('SOURCE_BRANCH_NOT_FOUND', adv.refs.size === 0
          ? `Cannot fetch ${describe(spec)}: the repository has no branches yet (push a commit first)`
          : `Cannot fetch ${describe(spec)}: branch "${branch}" not found in the repository`);
      }
      sha = tip;
    }
    // Indexed while it arrives: inflating and hashing overlap the download,
    // and so does writing every file whose path is already known.
    early = new EarlyCheckout(opts.dir, sha);
    const indexer = new PackIndexer((oid, obj) => early!.object(oid, obj.type, obj.data));
    await fetchPack(spec.repo, sha, adv.capabilities, o, (b) => indexer.push(b));
    pack = indexer.end();
  } catch (e) {
    throw fetchError(spec, e);
  }
  if (!pack.has(sha)) throw new SourceError('SOURCE_COMMIT_NOT_FOUND', `Cannot fetch ${describe(spec)}: the Git server sent no commit ${sha}`);
  const read = (oid: string, type: string): Buffer => {
    const obj = pack.read(oid);
    if (obj.type !== type) throw new SourceError('SOURCE_FETCH_FAILED', `Cannot check out ${describe(spec)}: object ${oid} is a ${obj.type}, expected a ${type}`);
    return obj.data;
  };
  return {
    sha,
    objects: pack.count,
    ...(early ? { written: early.written } : {}),
    commit: async (oid) => parseCommit(read(oid, 'commit')),
    tree: async (oid) => parseTree(read(oid, 'tree')).map((e) => ({ mode: e.mode.padStart(6, '0'), path: e.name, oid: e.oid, type: typeOfMode(e.mode) })),
    blob: async (oid) => read(oid, 'blob'),
  };
}

async function localReader(spec: SourceSpec, url: URL): Promise<ObjectReader> {
  const git = await loadGit();
  const cache = {};
  const path = decodeURIComponent(url.pathname);
  const gitdir = existsSync(join(path, '.git')) ? join(path, '.git') : path;
  if (!existsSync(join(gitdir, 'objects'))) throw new SourceError('SOURCE_FETCH_FAILED', `Cannot read ${spec.repo}: ${path} on this worker host is not a Git repository`);
  const sha = spec.commit ?? await git.resolveRef({ fs, gitdir, ref: `refs/heads/${spec.branch ?? 'main'}` }).catch((e: unknown) => {
    throw new SourceError('SOURCE_BRANCH_NOT_FOUND', `Cannot fetch ${describe(spec)}: branch "${spec.branch}" not found`, e);
  });
  return {
    sha,
    objects: 0,
    async commit(oid) {
      const c = await git.readCommit({ fs, cache, gitdir, oid });
      const a = c.commit.author;
      return { tree: c.commit.tree, author: a ? (a.email ? `${a.name} <${a.email}>` : a.name) : null, message: c.commit.message };
    },
    tree: async (oid) => (await git.readTree({ fs, cache, gitdir, oid })).tree.map((e) => ({ mode: e.mode, path: e.path, oid: e.oid, type: e.type })),
    blob: async (oid) => (await git.readBlob({ fs, cache, gitdir, oid })).blob,
  };
}

function fetchError(spec: SourceSpec, e: unknown): SourceError {
  if (e instanceof SourceError) return e;
  const where = describe(spec);
  if (e instanceof SmartHttpError) {
    const hint = e.code === 'SOURCE_AUTH_FAILED' ? ' (the repository credential was refused or is missing: set it with launcher admin stack update STACK --repo-credential USER:TOKEN)' : '';
    return new SourceError(e.code, `Cannot fetch ${where}: ${e.message}${hint}`, e);
  }
  if (e instanceof PackError) return new SourceError('SOURCE_FETCH_FAILED', `Cannot fetch ${where}: ${e.message}`, e);
  if ((e as Error).name === 'AbortError') return new SourceError('SOURCE_FETCH_CANCELED', `Fetch of ${where} canceled`, e);
  return new SourceError('SOURCE_FETCH_FAILED', `Cannot fetch ${where}: ${(e as Error).message ?? String(e)}`, e);
}

/** Writes the tree into `dir`: files with their modes, symlinks; submodules and LFS are refused. */
/** A tree entry name that may be written, or undefined (the checkout's walk refuses it with a reason). */
function safeName(name: string): boolean {
  return !(name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || name.toLowerCase() === '.git');
}

const isLfsPointer = (blob: Uint8Array): boolean =>
  blob.length < 1024 && Buffer.from(blob.subarray(0, LFS_POINTER.length)).toString('latin1') === LFS_POINTER;

/**
 * Writes files while the pack streams in. Git sends the commit, then its
 * trees, then the blobs: once the commit and a tree are in, the paths of the
 * blobs below it are known, and each blob is written the moment it arrives.
 * Anything this cannot place (a blob before its tree, .gitattributes, an LFS
 * pointer, a submodule, an unsafe name) is left to the checkout's walk, which
 * also makes every refusal.
 */
class EarlyCheckout {
  readonly written = new Map<string, number>();
  readonly #dir: string;
  readonly #commit: string;
  readonly #trees = new Map<string, Buffer>();
  /** Trees whose path is known but whose object has not arrived: oid → paths. */
  readonly #waiting = new Map<string, string[]>();
  /** Blobs whose path is known: oid → where and with which mode. */
  readonly #blobs = new Map<string, Array<{ path: string; mode: string }>>();

  constructor(dir: string, commit: string) {
    this.#dir = dir;
    this.#commit = commit;
    mkdirSync(dir, { recursive: true });
  }

  object(oid: string, type: string, data: Buffer): void {
    if (type === 'commit' && oid === this.#commit) {
      this.#place(parseCommit(data).tree, '');
    } else if (type === 'tree') {
      this.#trees.set(oid, data);
      const paths = this.#waiting.get(oid);
      if (paths) {
        this.#waiting.delete(oid);
        for (const rel of paths) this.#place(oid, rel);
      }
    } else if (type === 'blob') {
      const targets = this.#blobs.get(oid);
      if (!targets) return;
      this.#blobs.delete(oid);
      if (isLfsPointer(data)) return;
      for (const t of targets) {
        const abs = join(this.#dir, t.path);
        if (t.mode === '120000') symlinkSync(data.toString('utf8'), abs);
        else writeFileSync(abs, data, { mode: t.mode === '100755' ? 0o755 : 0o644 });
        this.written.set(t.path, data.length);
      }
    }
  }

  #place(treeOid: string, rel: string): void {
    const data = this.#trees.get(treeOid);
    if (!data) {
      const list = this.#waiting.get(treeOid) ?? [];
      list.push(rel);
      this.#waiting.set(treeOid, list);
      return;
    }
    for (const e of parseTree(data)) {
      if (!safeName(e.name)) continue;
      const path = rel + e.name;
      const type = typeOfMode(e.mode);
      if (type === 'tree') {
        mkdirSync(join(this.#dir, path), { recursive: true });
        this.#place(e.oid, `${path}/`);
      } else if (type === 'blob' && e.name !== '.gitattributes') {
        const list = this.#blobs.get(e.oid) ?? [];
        list.push({ path, mode: e.mode.padStart(6, '0') });
        this.#blobs.set(e.oid, list);
      }
    }
  }
}

async function checkout(reader: ObjectReader, rootTree: string, dir: string, signal: AbortSignal | undefined, written?: Map<string, number>): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  // Synchronous writes, with a turn of the event loop every few hundred
  // files: on a busy host, handing each of 10,000 small writes to the thread
  // pool costs more in scheduling than the writes themselves.
  let sinceYield = 0;
  const walk = async (oid: string, rel: string): Promise<void> => {
    const tree = await reader.tree(oid);
    for (const e of tree) {
      signal?.throwIfAborted();
      if (!safeName(e.path)) {
        throw new SourceError('SOURCE_UNSAFE_PATH', `Cannot check out ${rel}${e.path}: the name is not allowed in a workspace`);
      }
      const path = rel + e.path;
      const abs = join(dir, path);
      if (e.mode === '160000' || e.type === 'commit') {
        throw new SourceError('SOURCE_SUBMODULE', `Cannot check out the repository: ${path} is a Git submodule (commit ${e.oid}), and submodules are not supported yet; vendor that code into the repository or fetch it in a phase script`);
      }
      if (e.type === 'tree') {
        mkdirSync(abs, { recursive: true });
        await walk(e.oid, `${path}/`);
        continue;
      }
      const done = written?.get(path);
      if (done !== undefined) {
        files++;
        bytes += done;
        continue;
      }
      const blob = await reader.blob(e.oid);
      if (e.path === '.gitattributes' && /\bfilter=lfs\b/.test(Buffer.from(blob).toString('utf8'))) {
        throw new SourceError('SOURCE_LFS', `Cannot check out the repository: ${path} stores files in Git LFS (filter=lfs), and Git LFS is not supported yet; the run would see pointer files instead of the content`);
      }
      if (isLfsPointer(blob)) {
        throw new SourceError('SOURCE_LFS', `Cannot check out the repository: ${path} is a Git LFS pointer, and Git LFS is not supported yet`);
      }
      files++;
      bytes += blob.length;
      if (e.mode === '120000') symlinkSync(Buffer.from(blob).toString('utf8'), abs);
      else writeFileSync(abs, blob, { mode: e.mode === '100755' ? 0o755 : 0o644 });
      if (++sinceYield >= 256) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  };
  mkdirSync(dir, { recursive: true });
  await walk(rootTree, '');
  return { files, bytes };
}
