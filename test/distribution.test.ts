// createDistributionHandler over real HTTPS: what it serves, what it refuses,
// and what it leaves to the rest of the server. Small synthetic files; the
// built executable is exercised by install.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listedNames } from '../lib/server/distribution.ts';
import { startDistributionServer, type DistributionServer } from './helpers/distribution.ts';

const dir = mkdtempSync(join(tmpdir(), 'launcher-distribution-test-'));
const big = randomBytes(5 * 1024 * 1024 + 123);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
writeFileSync(join(dir, 'launcher-linux-x64'), big);
writeFileSync(join(dir, 'launcher-linux-secret'), 'not listed in SHA256SUMS');
writeFileSync(join(dir, 'SHA256SUMS'), `${sha(big)}  launcher-linux-x64\n${'0'.repeat(64)}  launcher-linux-arm64\n`);
writeFileSync(join(dir, 'install.sh'), "#!/bin/sh\nbase_url='__LAUNCHER_BASE_URL__'\n");
const emptyDir = join(dir, 'empty');
mkdirSync(emptyDir);

let server: DistributionServer;
let ca: Buffer;

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function get(path: string, opts: { method?: string; host?: string } = {}): Promise<Reply> {
  const { hostname, port } = new URL(server.origin);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method: opts.method ?? 'GET', ca, headers: opts.host ? { host: opts.host } : {},
      // Node names the TLS server after a Host header; the certificate is for
      // 127.0.0.1, so only the chain is checked when a test sends another Host.
      ...(opts.host ? { checkServerIdentity: () => undefined } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test.before(async () => {
  server = await startDistributionServer({ '': dir, '/empty': emptyDir });
  ca = readFileSync(server.caPath);
});

test.after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('GET streams a listed executable whole, with its length', async () => {
  const r = await get('/launcher-linux-x64');
  assert.is(r.status, 200);
  assert.is(r.headers['content-length'], String(big.length));
  assert.is(r.headers['content-type'], 'application/octet-stream');
  assert.is(sha(r.body), sha(big));
});

test('HEAD gives the length and no body', async () => {
  const r = await get('/launcher-linux-x64', { method: 'HEAD' });
  assert.is(r.status, 200);
  assert.is(r.headers['content-length'], String(big.length));
  assert.is(r.body.length, 0);
  const s = await get('/SHA256SUMS', { method: 'HEAD' });
  assert.is(s.headers['content-length'], String(readFileSync(join(dir, 'SHA256SUMS')).length));
});

test('SHA256SUMS is served as stored; a query string does not matter', async () => {
  const r = await get('/SHA256SUMS?x=1');
  assert.is(r.status, 200);
  assert.is(r.body.toString(), readFileSync(join(dir, 'SHA256SUMS'), 'utf8'));
});

test('install.sh gets the server address the client used as its default base URL', async () => {
  const r = await get('/install.sh');
  assert.is(r.status, 200);
  assert.is(r.body.toString(), `#!/bin/sh\nbase_url='${server.origin}'\n`);
  const named = await get('/install.sh', { host: 'launcher.internal:8443' });
  assert.match(named.body.toString(), /base_url='https:\/\/launcher\.internal:8443'/);
});

test('a Host header a shell could interpret is not substituted into install.sh', async () => {
  for (const host of ["evil';rm -rf /;'", 'a b', '$(id)', 'x`id`']) {
    const r = await get('/install.sh', { host });
    assert.is(r.status, 200);
    assert.match(r.body.toString(), /base_url='__LAUNCHER_BASE_URL__'/, host);
  }
});

test('traversal, unlisted names and listed-but-missing files are 404', async () => {
  for (const path of ['/launcher-linux-x64/../../etc/passwd', '/launcher-linux-..%2F..%2Fetc%2Fpasswd', '/launcher-linux-secret', '/launcher-linux-arm64', '/launcher-linux-x64.gz']) {
    const r = await get(path);
    assert.is(r.status, 404, path);
    assert.match(r.body.toString(), /is not in this server's distribution directory/, path);
  }
});

test('an empty directory answers 404 for everything it owns', async () => {
  for (const path of ['/install.sh', '/SHA256SUMS', '/launcher-linux-x64']) {
    const r = await get(`/empty${path}`);
    assert.is(r.status, 404, path);
  }
});

test('other methods are 405 with Allow, other paths are left to the server', async () => {
  const r = await get('/install.sh', { method: 'POST' });
  assert.is(r.status, 405);
  assert.is(r.headers.allow, 'GET, HEAD');
  const other = await get('/api/pools');
  assert.is(other.status, 404);
  assert.is(other.body.toString(), 'not a distribution path (test server)\n');
});

test('listedNames reads both sha256sum output styles and skips junk', () => {
  const names = listedNames(`${'a'.repeat(64)}  launcher-linux-x64\n${'b'.repeat(64)} *launcher-linux-arm64\nnot a line\n${'c'.repeat(63)}  short\n`);
  assert.equal([...names], ['launcher-linux-x64', 'launcher-linux-arm64']);
});

test.run();
