// A real Git server for tests: Debian's `git http-backend` behind a small
// loopback HTTP server with basic auth (scripts/git-http-server.ts), serving
// bare repositories the tests create with real commits (the host's git CLI
// makes them; the launcher never uses it).
//
//   const gs = await startGitServer({ username: 'ci', password: 's3cret' });
//   const repo = gs.createRepo('infra');               // bare infra.git + a working copy
//   const sha = repo.commit({ 'main.tf': '…' }, 'first'); // commit and push to main
//   repo.url                                            // http://127.0.0.1:PORT/infra.git
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HTTP_BACKEND, startGitHttpServer } from '../../scripts/git-http-server.ts';

export { HTTP_BACKEND };

export interface GitServer {
  port: number;
  root: string;
  username: string;
  password: string;
  /** Requests served (any status), and those refused for bad credentials. */
  stats: { requests: number; refused: number };
  url(name: string): string;
  createRepo(name: string, opts?: { branch?: string }): GitRepo;
  stop(): Promise<void>;
}

export interface GitRepo {
  name: string;
  url: string;
  /** The bare repository the server serves. */
  bare: string;
  /** A working copy the tests commit in (pushes go straight to `bare`, not over HTTP). */
  work: string;
  /** Writes files (null deletes), commits them on `branch` (default the repo's first branch), pushes; returns the SHA. */
  commit(files: Record<string, string | Buffer | null>, message: string, opts?: { branch?: string; author?: string; mode?: Record<string, number> }): string;
  git(...args: string[]): string;
}

export function requireGit(): void {
  for (const bin of ['/usr/bin/git', HTTP_BACKEND]) {
    if (!existsSync(bin)) throw new Error(`Required binary missing: ${bin} (install Debian's git: bash scripts/setup-host.sh)`);
  }
}

export async function startGitServer(o: { username?: string; password?: string } = {}): Promise<GitServer> {
  requireGit();
  const root = mkdtempSync(join(tmpdir(), 'launcher-git-server-'));
  const username = o.username ?? 'ci';
  const password = o.password ?? 'git-pa55word';
  const http = await startGitHttpServer({ root, username, password });
  const { port, stats } = http;
  const url = (name: string): string => `http://127.0.0.1:${port}/${name}.git`;

  const createRepo = (name: string, opts: { branch?: string } = {}): GitRepo => {
    const branch = opts.branch ?? 'main';
    const bare = join(root, `${name}.git`);
    const work = mkdtempSync(join(tmpdir(), `launcher-git-work-${name.replace(/\W/g, '_')}-`));
    execFileSync('git', ['init', '-q', '--bare', '-b', branch, bare]);
    // Stock server settings: over smart HTTP (stateless) git upload-pack
    // serves any commit reachable from a branch, which is how the launcher
    // fetches an exact older commit with depth 1.
    execFileSync('git', ['init', '-q', '-b', branch, work]);
    const run = (...args: string[]): string => execFileSync('git', ['-C', work, ...args], {
      encoding: 'utf8', maxBuffer: 1 << 30,
      env: { ...process.env, GIT_AUTHOR_NAME: 'Ada Tester', GIT_AUTHOR_EMAIL: 'ada@example.test', GIT_COMMITTER_NAME: 'Ada Tester', GIT_COMMITTER_EMAIL: 'ada@example.test', GIT_CONFIG_NOSYSTEM: '1', HOME: work },
    }).trim();
    run('remote', 'add', 'origin', bare);
    let current = branch;
    return {
      name, url: url(name), bare, work, git: run,
      commit(files, message, o = {}) {
        const b = o.branch ?? current;
        if (b !== current) {
          const exists = run('branch', '--list', b) !== '';
          run('checkout', '-q', ...(exists ? [b] : ['-b', b]));
          current = b;
        }
        for (const [path, content] of Object.entries(files)) {
          const abs = join(work, path);
          if (content === null) { run('rm', '-q', '-r', '--', path); continue; }
          mkdirSync(dirname(abs), { recursive: true });
          writeFileSync(abs, content, { mode: o.mode?.[path] ?? 0o644 });
          run('add', '--', path);
        }
        const args = ['commit', '-q', '--allow-empty', '-m', message];
        if (o.author) args.push(`--author=${o.author}`);
        run(...args);
        run('push', '-q', 'origin', `HEAD:refs/heads/${b}`);
        return run('rev-parse', 'HEAD');
      },
    };
  };

  return {
    port, root, username, password, stats, url, createRepo,
    async stop() {
      await http.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface PushOptions {
  branch?: string;
  /** The commit before the push (default: the pushed commit's parent, or zeros for a new branch). */
  before?: string;
  deleted?: boolean;
}

/**
 * The body GitHub sends for a push to `repo` (and Gitea/Forgejo, which copy
 * its shape): ref, before/after, repository URLs, head commit, and every
 * pushed commit with its added/modified/removed paths, read from the repo.
 */
export function githubPushPayload(repo: GitRepo, sha: string, o: PushOptions = {}): Record<string, unknown> {
  const zero = '0'.repeat(40);
  const branch = o.branch ?? 'main';
  if (o.deleted) {
    return { ref: `refs/heads/${branch}`, before: sha, after: zero, created: false, deleted: true, forced: false, repository: repoJson(repo), head_commit: null, commits: [] };
  }
  const parent = repo.git('rev-list', '--parents', '-n', '1', sha).split(' ')[1];
  const before = o.before ?? parent ?? zero;
  const range = before === zero ? [sha] : repo.git('rev-list', '--reverse', `${before}..${sha}`).split('\n').filter(Boolean);
  const commits = range.map((c) => commitJson(repo, c));
  return {
    ref: `refs/heads/${branch}`, before, after: sha, created: before === zero, deleted: false, forced: false,
    repository: repoJson(repo), head_commit: commits[commits.length - 1] ?? null, commits,
  };
}

function repoJson(repo: GitRepo): Record<string, unknown> {
  return { name: repo.name, full_name: `tests/${repo.name}`, clone_url: repo.url, html_url: repo.url.replace(/\.git$/, ''), ssh_url: `git@127.0.0.1:tests/${repo.name}.git` };
}

function commitJson(repo: GitRepo, sha: string): Record<string, unknown> {
  const [name, email, ...msg] = repo.git('show', '-s', '--format=%an%n%ae%n%B', sha).split('\n');
  const added: string[] = [];
  const modified: string[] = [];
  const removed: string[] = [];
  for (const line of repo.git('diff-tree', '--no-commit-id', '--root', '--name-status', '-r', sha).split('\n').filter(Boolean)) {
    const [st, path] = line.split('\t');
    (st === 'A' ? added : st === 'D' ? removed : modified).push(path!);
  }
  return { id: sha, message: msg.join('\n').trim(), author: { name, email }, added, modified, removed };
}
