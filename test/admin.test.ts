// Unit tests of `launcher admin`: argument parsing and usage errors (exit 2,
// naming the flag), connection resolution, formatting, and the HTTPS client
// against a real node:https server with a CA of our own (pinned CA accepted,
// another CA refused, server error bodies become AdminErrors with their code).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { run, parseCommand } from '../lib/cli/admin.ts';
import { AdminClient, AdminError, buildUrl, errorFromResponse } from '../lib/admin/client.ts';
import { resolveConnection } from '../lib/admin/connection.ts';
import { phases } from '../lib/admin/command.ts';
import { keyValues } from '../lib/key-values.ts';
import { ago, table, tags } from '../lib/admin/format.ts';
import { activeKeyPems } from '../lib/admin/pool.ts';
import { ConfigError, LauncherError } from '../lib/errors.ts';
import { createCertificateAuthority, issueServerCertificate } from '../lib/pki.ts';

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let buf = '';
  stream.on('data', (d) => { buf += d; });
  return { stream, text: () => buf };
}

async function admin(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out = collect();
  const err = collect();
  const code = await run({ argv, env, stdin: new PassThrough(), stdout: out.stream, stderr: err.stream, cwd: process.cwd() });
  return { code, out: out.text(), err: err.text() };
}

// ---- usage errors: exit 2, name the flag, no connection attempted ----

test('pool create without --csr exits 2 naming --csr', async () => {
  const r = await admin(['pool', 'create', 'prod']);
  assert.is(r.code, 2);
  assert.match(r.err, /Missing --csr/);
  assert.is(r.out, '');
});

test('pool create with a missing CSR file names the flag and the path', async () => {
  const r = await admin(['pool', 'create', 'prod', '--csr', '/nonexistent/x.csr']);
  assert.is(r.code, 2);
  assert.match(r.err, /--csr \/nonexistent\/x\.csr: no such file/);
});

test('a file that is not a CSR is refused before connecting', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'admin-test-'));
  try {
    writeFileSync(join(dir, 'x.csr'), 'hello');
    const r = await admin(['pool', 'create', 'prod', '--csr', join(dir, 'x.csr')]);
    assert.is(r.code, 2);
    assert.match(r.err, /holds no PEM certificate request/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unknown option names itself and lists what is accepted', async () => {
  const r = await admin(['worker', 'list', '--colour']);
  assert.is(r.code, 2);
  assert.match(r.err, /Unknown option --colour/);
  assert.match(r.err, /--metadata/);
});

test('unknown noun and verb list the accepted ones', async () => {
  let r = await admin(['poool', 'list']);
  assert.is(r.code, 2);
  assert.match(r.err, /expected one of pool, worker, stack, run, queue/);
  r = await admin(['pool', 'destroy']);
  assert.is(r.code, 2);
  assert.match(r.err, /pool delete/);
});

test('missing and extra positionals are usage errors', async () => {
  let r = await admin(['run', 'show']);
  assert.is(r.code, 2);
  assert.match(r.err, /Missing RUN/);
  r = await admin(['run', 'show', 'run_a', 'run_b']);
  assert.is(r.code, 2);
  assert.match(r.err, /Unexpected argument "run_b"/);
});

test('a boolean flag given a value is refused by name', async () => {
  const r = await admin(['run', 'logs', 'run_x', '--follow=yes']);
  assert.is(r.code, 2);
  assert.match(r.err, /Cannot use --follow: it takes no value/);
});

test('stack create checks phases, confirm and env names before connecting', async () => {
  let r = await admin(['stack', 'create', 's', '--pool', 'p']);
  assert.is(r.code, 2);
  assert.match(r.err, /Missing --phase/);
  r = await admin(['stack', 'create', 's', '--pool', 'p', '--phase', 'plan=true', '--confirm', 'apply']);
  assert.is(r.code, 2);
  assert.match(r.err, /--confirm apply: no phase named "apply".*\(plan\)/);
  r = await admin(['stack', 'create', 's', '--pool', 'p', '--phase', 'plan=true', '--secret', 'A-B=1']);
  assert.is(r.code, 2);
  assert.match(r.err, /"A-B" is not a variable name/);
  r = await admin(['stack', 'create', 's', '--pool', 'p', '--phase', 'plan=true', '--kind', 'lambda']);
  assert.is(r.code, 2);
  assert.match(r.err, /--kind lambda: expected stack or module/);
});

test('a secret value never appears in a usage error', async () => {
  const r = await admin(['stack', 'create', 's', '--pool', 'p', '--phase', 'x=true', '--secret', 'TOKEN=s3cr3tvalue', '--secret', 'TOKEN=s3cr3tvalue']);
  assert.is(r.code, 2);
  assert.match(r.err, /TOKEN=… twice/);
  assert.not.match(r.err, /s3cr3tvalue/);
  const bare = await admin(['stack', 'create', 's', '--pool', 'p', '--phase', 'x=true', '--secret', 'justthes3cr3t']);
  assert.is(bare.code, 2);
  assert.match(bare.err, /--secret \(value not shown\): expected KEY=VALUE/);
  assert.not.match(bare.err, /justthes3cr3t/);
});

test('worker drain needs ids or --metadata, not both', async () => {
  let r = await admin(['worker', 'drain']);
  assert.is(r.code, 2);
  assert.match(r.err, /Missing the workers to drain/);
  r = await admin(['worker', 'drain', 'wrk_1', '--metadata', 'a=b']);
  assert.is(r.code, 2);
  assert.match(r.err, /ids and --metadata together/);
});

test('run list validates --state and --limit', async () => {
  let r = await admin(['run', 'list', '--state', 'DONE']);
  assert.is(r.code, 2);
  assert.match(r.err, /expected one of QUEUED, RUNNING/);
  r = await admin(['run', 'list', '--limit', '0']);
  assert.is(r.code, 2);
  assert.match(r.err, /--limit 0/);
});

test('no connection settings: exit 2 naming every way to give them', async () => {
  const r = await admin(['pool', 'list']);
  assert.is(r.code, 2);
  assert.match(r.err, /--server https:\/\/HOST:PORT, set LAUNCHER_SERVER, or use --data DIR/);
});

test('help prints usage and exits 0', async () => {
  let r = await admin(['--help']);
  assert.is(r.code, 0);
  assert.match(r.out, /launcher admin pool create NAME --csr FILE/);
  assert.match(r.out, /launcher admin run logs RUN/);
  r = await admin(['stack', 'create', '--help']);
  assert.is(r.code, 0);
  assert.match(r.out, /--secret K=V/);
});

test('parseCommand keeps repeatable flags in order', () => {
  const { command, args } = parseCommand(['stack', 'create', 'infra', '--pool', 'p', '--phase', 'plan=a', '--phase', 'apply=b', '--env', 'A=1', '--env', 'B=x=y']);
  assert.ok(command);
  assert.equal(args.positionals, ['infra']);
  assert.equal(args.values.phase, ['plan=a', 'apply=b']);
  assert.equal(keyValues(args.values.env as string[], 'env', { envNames: true }), { A: '1', B: 'x=y' });
});

// ---- pure helpers ----

test('keyValues refuses items without a key', () => {
  assert.throws(() => keyValues(['=v'], 'metadata'), (e: unknown) => e instanceof ConfigError && /expected KEY=VALUE/.test((e as Error).message));
  assert.throws(() => keyValues(['novalue'], 'metadata'), /expected KEY=VALUE/);
  assert.equal(keyValues(['instance-id=i-1', 'empty='], 'metadata'), { 'instance-id': 'i-1', empty: '' });
});

test('phases keep order and mark confirm', () => {
  assert.equal(phases(['plan=terraform plan', 'apply=terraform apply'], ['apply']), [
    { name: 'plan', script: 'terraform plan', confirm: false },
    { name: 'apply', script: 'terraform apply', confirm: true },
  ]);
  assert.throws(() => phases(['a=x', 'a=y'], []), /twice/);
  assert.throws(() => phases(['a='], []), /script is empty/);
  assert.throws(() => phases(['a b=x'], []), /not a phase name/);
});

test('table aligns columns; tags and ago format for people', () => {
  assert.is(table(['ID', 'NAME'], [['pool_1', 'prod'], ['p2', 'staging']]), 'ID      NAME\npool_1  prod\np2      staging\n');
  assert.is(tags({ b: '2', a: '1' }), 'a=1,b=2');
  assert.is(tags({}), '-');
  const now = Date.parse('2026-11-28T12:00:00Z');
  assert.is(ago('2026-11-28T11:59:30Z', now), '30s ago');
  assert.is(ago('2026-11-28T11:55:00Z', now), '5m ago');
  assert.is(ago('2026-11-28T09:00:00Z', now), '3h ago');
  assert.is(ago(null, now), '-');
});

test('activeKeyPems seals to active keys only', () => {
  const pool = { id: 'pool_1', keys: [
    { id: 'k1', state: 'revoked' as const, publicKeyPem: 'A' },
    { id: 'k2', state: 'active' as const, publicKeyPem: 'B' },
    { id: 'k3', state: 'retired' as const, publicKeyPem: 'C' },
    { id: 'k4', state: 'active' as const, publicKeyPem: 'D' },
  ] };
  assert.equal(activeKeyPems(pool), ['B', 'D']);
});

test('buildUrl repeats list parameters and drops empty ones', () => {
  const u = buildUrl(new URL('https://h:1/'), '/v1/workers', { pool: 'p', metadata: ['a=1', 'b=2'], x: undefined, f: false, follow: true });
  assert.is(u.href, 'https://h:1/v1/workers?pool=p&metadata=a%3D1&metadata=b%3D2&follow=1');
});

test('errorFromResponse keeps the server code and message', () => {
  const e = errorFromResponse(404, '{"error":{"code":"POOL_NOT_FOUND","message":"Pool not found: \\"x\\""}}');
  assert.ok(e instanceof AdminError);
  assert.is(e.code, 'POOL_NOT_FOUND');
  assert.is(e.status, 404);
  assert.is(e.exitCode, 1);
  const other = errorFromResponse(502, '<html>bad gateway</html>');
  assert.is(other.code, 'HTTP_502');
  assert.match(other.message, /502/);
  // A ConfigError is a LauncherError but not an AdminError.
  assert.not.ok(new ConfigError('x') instanceof AdminError);
});

// ---- connection resolution ----

test('connection: flags win over --data, --data over env', () => {
  const files: Record<string, string> = {
    '/d/admin.token': 'datatoken\n', '/d/ca.crt': '-----BEGIN CERTIFICATE-----\nDATA\n', '/d/server.url': 'https://127.0.0.1:9443\n',
    '/f/ca.pem': '-----BEGIN CERTIFICATE-----\nFLAG\n',
  };
  const read = (p: string) => files[p];
  const env = { LAUNCHER_SERVER: 'https://env:1', LAUNCHER_ADMIN_TOKEN: 'envtoken' };
  let c = resolveConnection({ data: '/d' }, env, read);
  assert.is(c.server.href, 'https://127.0.0.1:9443/');
  assert.is(c.token, 'datatoken');
  assert.match(c.ca!, /DATA/);
  c = resolveConnection({ data: '/d', server: 'https://flag:2', ca: '/f/ca.pem', adminToken: 'flagtoken' }, env, read);
  assert.is(c.server.host, 'flag:2');
  assert.is(c.token, 'flagtoken');
  assert.match(c.ca!, /FLAG/);
  c = resolveConnection({}, env, read);
  assert.is(c.server.host, 'env:1');
  assert.is(c.token, 'envtoken');
  assert.is(c.ca, undefined);
});

test('connection: bad values name their source', () => {
  const read = () => undefined;
  assert.throws(() => resolveConnection({ server: 'http://x:1', adminToken: 't' }, {}, read), /--server.*not https/);
  assert.throws(() => resolveConnection({}, { LAUNCHER_SERVER: 'nope', LAUNCHER_ADMIN_TOKEN: 't' }, read), /LAUNCHER_SERVER: "nope" is not a URL/);
  assert.throws(() => resolveConnection({ server: 'https://x:1' }, {}, read), /Missing the admin token/);
  assert.throws(() => resolveConnection({ server: 'https://x:1', adminToken: 't', ca: '/none' }, {}, read), /--ca: no file at "\/none"/);
  assert.throws(() => resolveConnection({ data: '/empty' }, {}, read), /--data \/empty: no admin.token/);
  // No URL file: the server's default listen address on this host.
  const c = resolveConnection({ data: '/d' }, {}, (p) => ({ '/d/admin.token': 't', '/d/ca.crt': '-----BEGIN CERTIFICATE-----' } as Record<string, string>)[p]);
  assert.is(c.server.href, 'https://127.0.0.1:8443/');
});

// ---- the HTTPS client against a real TLS server ----

const ca = createCertificateAuthority({ bits: 2048 });
const otherCa = createCertificateAuthority({ bits: 2048 });
const serverCert = issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
let server: Server;
let base: URL;
const seen: { auth?: string; url?: string; body?: string }[] = [];

test.before(async () => {
  server = createServer({ key: serverCert.keyPem, cert: serverCert.certPem, minVersion: 'TLSv1.2' }, (req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push({ auth: req.headers.authorization, url: req.url, body });
      if (req.headers.authorization !== 'Bearer good') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'ADMIN_TOKEN_INVALID', message: 'Wrong admin token' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ pools: [{ id: 'pool_1', name: 'prod', workers: 2, busy: 1, pending: 3, keys: [{ id: 'k', state: 'active' }] }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

test.after(async () => {
  await new Promise((r) => server.close(r));
});

test('client: pinned CA and bearer token reach the server', async () => {
  const client = new AdminClient({ server: base, token: 'good', ca: ca.certPem });
  try {
    const answer = await client.get<{ pools: { id: string }[] }>('/v1/pools', { pool: 'p' });
    assert.is(answer.pools[0]!.id, 'pool_1');
    const last = seen.at(-1)!;
    assert.is(last.auth, 'Bearer good');
    assert.is(last.url, '/v1/pools?pool=p');
  } finally {
    await client.close();
  }
});

test('client: a server certificate from another CA is refused with a hint', async () => {
  const client = new AdminClient({ server: base, token: 'good', ca: otherCa.certPem });
  try {
    await client.get('/v1/pools');
    assert.unreachable('should have failed');
  } catch (e) {
    assert.ok(e instanceof LauncherError);
    assert.is((e as LauncherError).code, 'SERVER_UNTRUSTED');
    assert.match((e as Error).message, /--ca FILE/);
  } finally {
    await client.close();
  }
});

test('CLI: pool list plain and --json against a TLS server; wrong token exits 1 with code', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'admin-test-'));
  try {
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    const env = { LAUNCHER_SERVER: base.href, LAUNCHER_CA: join(dir, 'ca.crt') };
    let r = await admin(['pool', 'list'], { ...env, LAUNCHER_ADMIN_TOKEN: 'good' });
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /^ID\s+NAME\s+WORKERS\s+BUSY\s+PENDING\s+KEYS\npool_1\s+prod\s+2\s+1\s+3\s+1\n$/);
    r = await admin(['pool', 'list', '--json'], { ...env, LAUNCHER_ADMIN_TOKEN: 'good' });
    assert.is(r.code, 0);
    assert.is(JSON.parse(r.out).pools[0].name, 'prod');
    r = await admin(['pool', 'list'], { ...env, LAUNCHER_ADMIN_TOKEN: 'bad' });
    assert.is(r.code, 1);
    assert.match(r.err, /Wrong admin token \(ADMIN_TOKEN_INVALID\)/);
    assert.not.match(r.err, /bad/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
