// A real Git server for tests: Debian's `git http-backend` (Git smart HTTP, the
// CGI program every Git hosting setup wraps) behind a small loopback HTTP
// server that asks for basic auth, serving bare repositories the tests create
// with real commits (the host's git CLI makes them; the launcher never uses it).
//
//   const gs = await startGitServer({ username: 'ci', password: 's3cret' });
//   const repo = gs.createRepo('infra');               // bare infra.git + a working copy
//   const sha = repo.commit({ 'main.tf': '…' }, 'first'); // commit and push to main
//   repo.url                                            // http://127.0.0.1:PORT/infra.git
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

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
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const stats = { requests: 0, refused: 0 };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++;
    if (req.headers.authorization !== expected) {
      stats.refused++;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      req.resume();
      return;
    }
    const u = new URL(req.url ?? '/', 'http://git.invalid');
    const cgi = spawn(HTTP_BACKEND, [], {
      env: {
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.replace(/^\?/, ''),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: String(req.headers['content-type'] ?? ''),
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: String(req.headers['content-length']) } : {}),
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        REMOTE_USER: username,
        REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
        PATH: '/usr/bin:/bin',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headerDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headerDone) { res.write(chunk); return; }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf('\r\n\r\n');
      let sep = 4;
      if (end === -1) { end = head.indexOf('\n\n'); sep = 2; }
      if (end === -1) return;
      headerDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + sep));
    });
    let stderr = '';
    cgi.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    cgi.on('close', (code) => {
      if (!headerDone) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`git http-backend exited ${code}: ${stderr}`);
        return;
      }
      res.end();
    });
  };
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
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
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
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
