// The launcher's Git client: a shallow fetch of exactly the run's commit
// (isomorphic-git, bundled; no git binary on the host or in the runner image)
// and a checkout of its tree into a directory that becomes the run's
// workspace. The repository's .git stays outside that directory: the
// workspace holds the files only, so the credential (sent as a header, never
// written to a Git config) cannot land in it, and the sealed workspace does
// not carry the pack a second time.
//
// file:///path sources are read in place on the worker host (a bare
// repository or a working copy's .git), without a fetch.
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Git from 'isomorphic-git';
import { LauncherError } from '../errors.ts';
import { firstLine } from './webhook.ts';
import { SHA_RE } from './repo.ts';
import { undiciGitHttp, type GitHttpRequest, type GitHttpResponse } from './http.ts';

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
}

export interface FetchOptions {
  /** Where the tree is written (created; should be empty). */
  dir: string;
  /** Where the fetched objects go (outside `dir`). */
  gitdir: string;
  credential?: RepoCredential | undefined;
  signal?: AbortSignal;
  http?: { request(r: GitHttpRequest): Promise<GitHttpResponse> };
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
const WRITERS = 16;

function describe(spec: SourceSpec): string {
  return `${spec.repo} at ${spec.commit ?? `the tip of ${spec.branch ?? 'HEAD'}`}`;
}

/** Fetches the commit and writes its tree into `opts.dir`. */
export async function fetchSource(spec: SourceSpec, opts: FetchOptions): Promise<Fetched> {
  if (spec.commit !== null && !SHA_RE.test(spec.commit)) throw new SourceError('SOURCE_COMMIT_INVALID', `Cannot fetch ${spec.repo}: commit "${spec.commit}" is not a 40-character SHA`);
  const git = await loadGit();
  const cache = {};
  const url = new URL(spec.repo);
  let gitdir: string;
  let sha: string;
  if (url.protocol === 'file:') {
    const path = decodeURIComponent(url.pathname);
    gitdir = existsSync(join(path, '.git')) ? join(path, '.git') : path;
    if (!existsSync(join(gitdir, 'objects'))) throw new SourceError('SOURCE_FETCH_FAILED', `Cannot read ${spec.repo}: ${path} on this worker host is not a Git repository`);
    sha = spec.commit ?? await git.resolveRef({ fs, gitdir, ref: `refs/heads/${spec.branch ?? 'HEAD'}` }).catch((e: unknown) => {
      throw new SourceError('SOURCE_BRANCH_NOT_FOUND', `Cannot fetch ${describe(spec)}: branch "${spec.branch}" not found`, e);
    });
  } else {
    gitdir = opts.gitdir;
    await git.init({ fs, dir: gitdir, bare: true, defaultBranch: 'main' });
    // The URL only (no credential) in a config outside the workspace: fetch needs a remote's refspec.
    await git.addRemote({ fs, gitdir, remote: 'origin', url: spec.repo });
    const headers: Record<string, string> = {};
    if (opts.credential) headers.Authorization = `Basic ${Buffer.from(`${opts.credential.username}:${opts.credential.password}`).toString('base64')}`;
    const ref = spec.commit ?? spec.branch ?? 'HEAD';
    try {
      const r = await git.fetch({
        fs, cache, gitdir, url: spec.repo, ref, singleBranch: true, depth: 1, tags: false, headers,
        http: opts.http ?? undiciGitHttp(opts.signal ? { signal: opts.signal } : {}),
      });
      if (!r.fetchHead) throw new SourceError('SOURCE_EMPTY', `Cannot fetch ${describe(spec)}: the repository has no commits`);
      sha = r.fetchHead;
    } catch (e) {
      throw fetchError(spec, e);
    }
  }
  let commit: Awaited<ReturnType<typeof Git.readCommit>>;
  try {
    commit = await git.readCommit({ fs, cache, gitdir, oid: sha });
  } catch (e) {
    throw new SourceError('SOURCE_COMMIT_NOT_FOUND', `Cannot fetch ${describe(spec)}: commit ${sha} is not in the repository (or not reachable from a branch)`, e);
  }
  const a = commit.commit.author;
  const stats = await checkout(git, { gitdir, cache, tree: commit.commit.tree, dir: opts.dir, ...(opts.signal ? { signal: opts.signal } : {}) });
  return {
    sha,
    author: a ? (a.email ? `${a.name} <${a.email}>` : a.name) : null,
    message: firstLine(commit.commit.message),
    ...stats,
  };
}

function fetchError(spec: SourceSpec, e: unknown): SourceError {
  if (e instanceof SourceError) return e;
  const err = e as { code?: string; message?: string; data?: { statusCode?: number; statusMessage?: string }; cause?: { code?: string } };
  const where = describe(spec);
  if (err.code === 'HttpError') {
    const status = err.data?.statusCode;
    const hint = status === 401 || status === 403
      ? ' (the repository credential was refused or is missing: set it with launcher admin stack update STACK --repo-credential USER:TOKEN)'
      : status === 404 ? ' (no repository at that URL)' : '';
    return new SourceError(status === 401 || status === 403 ? 'SOURCE_AUTH_FAILED' : 'SOURCE_FETCH_FAILED', `Cannot fetch ${where}: the Git server answered ${status} ${err.data?.statusMessage ?? ''}`.trimEnd() + hint, e);
  }
  if (err.code === 'NotFoundError' && spec.commit === null) {
    return new SourceError('SOURCE_BRANCH_NOT_FOUND', `Cannot fetch ${where}: branch "${spec.branch}" not found in the repository`, e);
  }
  if (err.code === 'SmartHttpError' || err.code === 'ParseError' || err.code === 'UnknownTransportError') {
    return new SourceError('SOURCE_FETCH_FAILED', `Cannot fetch ${where}: the server does not speak Git smart HTTP (${err.message})`, e);
  }
  const net = err.cause?.code ?? (err.code && /^E[A-Z]+$/.test(err.code) ? err.code : undefined);
  return new SourceError('SOURCE_FETCH_FAILED', `Cannot fetch ${where}: ${net ? `${net} ` : ''}${err.message ?? String(e)}`.trim(), e);
}

interface CheckoutOptions { gitdir: string; cache: object; tree: string; dir: string; signal?: AbortSignal }

/** Writes the tree into `dir`: files with their modes, symlinks; submodules and LFS are refused. */
async function checkout(git: typeof Git, o: CheckoutOptions): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const writes = new Set<Promise<void>>();
  let failed: unknown;
  const schedule = async (p: Promise<void>): Promise<void> => {
    const tracked = p.catch((e: unknown) => { failed ??= e; }).finally(() => writes.delete(tracked));
    writes.add(tracked);
    if (writes.size >= WRITERS) await Promise.race(writes);
    if (failed) throw failed;
  };
  const walk = async (oid: string, rel: string): Promise<void> => {
    const { tree } = await git.readTree({ fs, cache: o.cache, gitdir: o.gitdir, oid });
    for (const e of tree) {
      o.signal?.throwIfAborted();
      if (e.path === '' || e.path === '.' || e.path === '..' || e.path.includes('/') || e.path.includes('\0') || e.path.toLowerCase() === '.git') {
        throw new SourceError('SOURCE_UNSAFE_PATH', `Cannot check out ${rel}${e.path}: the name is not allowed in a workspace`);
      }
      const path = rel + e.path;
      const abs = join(o.dir, path);
      if (e.mode === '160000' || e.type === 'commit') {
        throw new SourceError('SOURCE_SUBMODULE', `Cannot check out the repository: ${path} is a Git submodule (commit ${e.oid}), and submodules are not supported yet; vendor that code into the repository or fetch it in a phase script`);
      }
      if (e.type === 'tree') {
        await mkdir(abs, { recursive: true });
        await walk(e.oid, `${path}/`);
        continue;
      }
      const { blob } = await git.readBlob({ fs, cache: o.cache, gitdir: o.gitdir, oid: e.oid });
      if (e.path === '.gitattributes' && /\bfilter=lfs\b/.test(Buffer.from(blob).toString('utf8'))) {
        throw new SourceError('SOURCE_LFS', `Cannot check out the repository: ${path} stores files in Git LFS (filter=lfs), and Git LFS is not supported yet; the run would see pointer files instead of the content`);
      }
      if (blob.length < 1024 && Buffer.from(blob.subarray(0, LFS_POINTER.length)).toString('latin1') === LFS_POINTER) {
        throw new SourceError('SOURCE_LFS', `Cannot check out the repository: ${path} is a Git LFS pointer, and Git LFS is not supported yet`);
      }
      files++;
      bytes += blob.length;
      if (e.mode === '120000') {
        await schedule(symlink(Buffer.from(blob).toString('utf8'), abs));
      } else {
        await schedule(writeFile(abs, blob, { mode: e.mode === '100755' ? 0o755 : 0o644 }));
      }
    }
  };
  await mkdir(o.dir, { recursive: true });
  await walk(o.tree, '');
  await Promise.all(writes);
  if (failed) throw failed;
  return { files, bytes };
}
