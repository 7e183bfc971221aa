// An HTTPS distribution point on 127.0.0.1 for install tests: a throwaway CA
// and server certificate from the openssl CLI, and createDistributionHandler
// serving one directory per path prefix (so one server can offer a good and a
// tampered distribution). Stands in for `launcher server` until it mounts the
// same handler.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDistributionHandler } from '../../lib/server/distribution.ts';

export interface SeenRequest { method: string; url: string; userAgent: string }

export interface DistributionServer {
  /** https://127.0.0.1:PORT (no trailing slash). */
  origin: string;
  /** The CA certificate (PEM file) that signed the server's certificate. */
  caPath: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** A CA and a certificate for 127.0.0.1 signed by it, made with openssl in DIR. */
export function makeTestPki(dir: string): { caPath: string; keyPath: string; certPath: string } {
  const ossl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ossl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=launcher install test CA', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  ossl(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  ossl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2',
    '-extfile', 'server.ext']);
  return { caPath: join(dir, 'ca.pem'), keyPath: join(dir, 'server.key'), certPath: join(dir, 'server.pem') };
}

/**
 * Starts the server. ROUTES maps a path prefix ('' for the root) to the
 * directory served under it.
 */
export async function startDistributionServer(routes: Record<string, string>): Promise<DistributionServer> {
  const pkiDir = mkdtempSync(join(tmpdir(), 'launcher-pki-'));
  const pki = makeTestPki(pkiDir);
  const handlers = Object.entries(routes)
    .sort(([a], [b]) => b.length - a.length)
    .map(([prefix, dir]) => ({ prefix, handle: createDistributionHandler({ dir }) }));
  const requests: SeenRequest[] = [];
  const server: Server = createServer({ key: readFileSync(pki.keyPath), cert: readFileSync(pki.certPath) }, (req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', userAgent: String(req.headers['user-agent'] ?? '') });
    const url = req.url ?? '/';
    for (const { prefix, handle } of handlers) {
      if (prefix === '' || url.startsWith(`${prefix}/`)) {
        req.url = url.slice(prefix.length);
        if (handle(req, res)) return;
        req.url = url;
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not a distribution path (test server)\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `https://127.0.0.1:${port}`,
    caPath: pki.caPath,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => {
        rmSync(pkiDir, { recursive: true, force: true });
        resolve();
      });
    }),
  };
}
