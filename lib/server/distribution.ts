// The server as its own distribution point: inside an air gap, hosts fetch
// the install script, the executables and their checksums from the launcher
// server they will talk to anyway. Serves files from one directory (the build's
// dist/): /install.sh, /SHA256SUMS and every launcher-linux-* SHA256SUMS names.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

export interface DistributionOptions {
  /** Directory holding install.sh, SHA256SUMS and launcher-linux-<arch> files. */
  dir: string;
  /**
   * The URL hosts reach this server at, substituted into install.sh as its
   * default --base-url. Unset: taken from the request's Host header and scheme.
   */
  baseUrl?: string;
}

/** The placeholder scripts/install.sh carries for its default base URL. */
export const BASE_URL_PLACEHOLDER = '__LAUNCHER_BASE_URL__';

const BINARY_NAME = /^launcher-linux-[a-z0-9_]+(\.gz|\.xz)?$/;
// A Host header ends up inside a shell script: accept host names, IPv4,
// bracketed IPv6 and a port, nothing a shell would interpret.
const SAFE_HOST = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

/**
 * A request handler for the distribution paths. Returns false (and does not
 * touch the response) for paths it does not own, so the server can chain it
 * in front of its API; returns true when it has taken the request.
 */
export function createDistributionHandler(opts: DistributionOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = pathOf(req.url);
    if (path === undefined) return false;
    const name = path.slice(1);
    if (name !== 'install.sh' && name !== 'SHA256SUMS' && !name.startsWith('launcher-linux-')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end(`Method ${req.method} not allowed on /${name}: use GET or HEAD\n`);
      return true;
    }
    serve(opts, name, req, res).catch((e: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`Cannot read /${name} from the distribution directory: ${(e as Error).message}\n`);
      } else {
        res.destroy(e as Error);
      }
    });
    return true;
  };
}

function pathOf(url: string | undefined): string | undefined {
  if (!url || !url.startsWith('/')) return undefined;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

async function serve(opts: DistributionOptions, name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (name === 'install.sh') {
    const text = await readOrUndefined(join(opts.dir, 'install.sh'));
    if (text === undefined) return notFound(res, name);
    const base = opts.baseUrl ?? requestBaseUrl(req);
    const body = Buffer.from(base === undefined ? text : text.split(BASE_URL_PLACEHOLDER).join(base.replace(/\/+$/, '')));
    return sendBuffer(req, res, body, 'text/x-shellscript; charset=utf-8');
  }
  const sums = await readOrUndefined(join(opts.dir, 'SHA256SUMS'));
  if (name === 'SHA256SUMS') {
    if (sums === undefined) return notFound(res, name);
    return sendBuffer(req, res, Buffer.from(sums), 'text/plain; charset=utf-8');
  }
  // Only names the checksum file lists are served: the name check plus this
  // list rule out traversal and anything else that sits in the directory.
  if (!BINARY_NAME.test(name) || sums === undefined || !listedNames(sums).has(name)) return notFound(res, name);
  const fh = await openPlainFile(join(opts.dir, name));
  if (fh === undefined) return notFound(res, name);
  let size: number;
  try {
    size = (await fh.stat()).size;
  } catch (e) {
    await fh.close();
    throw e;
  }
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': String(size),
    'cache-control': 'no-cache',
    'content-disposition': `attachment; filename="${name}"`,
  });
  if (req.method === 'HEAD') {
    await fh.close();
    res.end();
    return;
  }
  // Streamed: a 120 MB executable is never held in memory.
  const stream = fh.createReadStream();
  stream.on('error', (e) => res.destroy(e));
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

/** Names in a sha256sum-format file (`<hex>  name` or `<hex> *name`). */
export function listedNames(sums: string): Set<string> {
  const names = new Set<string>();
  for (const line of sums.split('\n')) {
    const m = /^[0-9a-f]{64} [ *](.+)$/.exec(line.trim());
    if (m) names.add(m[1]!);
  }
  return names;
}

/** https://HOST as the client addressed us, or undefined when the Host header is unusable. */
export function requestBaseUrl(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (!host || !SAFE_HOST.test(host)) return undefined;
  const tls = (req.socket as TLSSocket).encrypted === true;
  return `${tls ? 'https' : 'http'}://${host}`;
}

function sendBuffer(req: IncomingMessage, res: ServerResponse, body: Buffer, type: string): void {
  res.writeHead(200, { 'content-type': type, 'content-length': String(body.length), 'cache-control': 'no-cache' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function notFound(res: ServerResponse, name: string): void {
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`Not found: /${name} is not in this server's distribution directory\n`);
}

/**
 * Opens a regular file that is not a symbolic link (O_NOFOLLOW), or undefined.
 * A link in the distribution directory could point anywhere the server can
 * read (admin.token, the CA key): it is never followed.
 */
async function openPlainFile(file: string): Promise<FileHandle | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'EISDIR' || code === 'ENOTDIR' || code === 'EACCES') return undefined;
    throw e;
  }
  const st = await fh.stat().catch(() => undefined);
  if (!st?.isFile()) { await fh.close(); return undefined; }
  return fh;
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  const fh = await openPlainFile(file);
  if (fh === undefined) return undefined;
  try { return await fh.readFile('utf8'); } finally { await fh.close(); }
}
