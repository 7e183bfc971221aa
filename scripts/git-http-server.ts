// A local Git server for demos, walkthroughs and tests: Debian's
// `git http-backend` (Git smart HTTP, the CGI program Git hosting wraps) behind
// a small HTTP server on loopback that asks for basic auth. It serves every
// bare repository under --root.
//
//   node --import tsx scripts/git-http-server.ts --root DIR --user U --password P [--port N] [--url-file FILE]
//
// prints (and writes to --url-file) the base URL, e.g. http://127.0.0.1:40123;
// a repository DIR/infra.git is then http://127.0.0.1:40123/infra.git.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

export const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export interface GitHttpServer {
  port: number;
  url: string;
  /** Requests served (any status), and those refused for bad credentials. */
  stats: { requests: number; refused: number };
  close(): Promise<void>;
}

export async function startGitHttpServer(o: { root: string; username: string; password: string; port?: number }): Promise<GitHttpServer> {
  if (!existsSync(HTTP_BACKEND)) throw new Error(`Required binary missing: ${HTTP_BACKEND} (install Debian's git: bash scripts/setup-host.sh)`);
  const expected = `Basic ${Buffer.from(`${o.username}:${o.password}`).toString('base64')}`;
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
        GIT_PROJECT_ROOT: o.root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.replace(/^\?/, ''),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: String(req.headers['content-type'] ?? ''),
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: String(req.headers['content-length']) } : {}),
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        REMOTE_USER: o.username,
        REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
        PATH: '/usr/bin:/bin',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    req.pipe(cgi.stdin);
    cgi.stdin.on('error', () => {});
    // CGI output: header lines, a blank line, then the body.
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
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(o.port ?? 0, '127.0.0.1', () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port, url: `http://127.0.0.1:${port}`, stats,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('git-http-server.ts')) {
  const { values } = parseArgs({ options: { root: { type: 'string' }, user: { type: 'string' }, password: { type: 'string' }, port: { type: 'string' }, 'url-file': { type: 'string' } } });
  if (!values.root || !values.user || !values.password) {
    process.stderr.write('usage: git-http-server.ts --root DIR --user USER --password PASSWORD [--port N] [--url-file FILE]\n');
    process.exit(2);
  }
  const s = await startGitHttpServer({ root: resolve(values.root), username: values.user, password: values.password, port: Number(values.port ?? 0) });
  if (values['url-file']) writeFileSync(values['url-file'], `${s.url}\n`);
  process.stdout.write(`${s.url}\n`);
  const stop = () => { void s.close().then(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
