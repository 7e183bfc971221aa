// Attacks replayed against a real server (a `launcher server` process on
// 127.0.0.1) with real peers: curl, openssl s_client, raw TLS sockets. Each
// test asserts the defended behaviour: a JSON error with a stable code, the
// server still serving, nothing lost. One test per finding of issue 14.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { extract } from 'tar-stream';
import { packDirectory } from '../lib/workspace.ts';
import { opensslCsr, ROOT, TestServer, tokenCertificate, type ClientCert } from './helpers/server.ts';

const NODE = join(ROOT, 'node_modules/.bin/node');
let srv: TestServer;
let dir: string;
let dist: string;
let pool: { id: string; cert: ClientCert; certPath: string; keyPath: string };
let stackId: string;
const SEALED = Buffer.from('age-encryption.org/v1\n-> X25519 stand-in\n--- x\nbody');

function launcher(args: string[], o: { env?: Record<string, string>; cwd?: string; input?: Buffer } = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), ...args], {
    cwd: o.cwd ?? ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...o.env }, input: o.input, timeout: 120_000,
  });
  return { code: r.status, out: r.stdout.toString('latin1'), err: r.stderr.toString('latin1') };
}

/** curl with the server's CA; returns status and parsed body. */
function curl(path: string, args: string[] = []): { status: number; body: any; text: string } {
  const r = spawnSync('curl', ['-sS', '--cacert', srv.caPath, '-o', '-', '-w', '\n%{http_code}', ...args, `${srv.url}${path}`], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  const out = r.stdout;
  const i = out.lastIndexOf('\n');
  const text = out.slice(0, i);
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: Number(out.slice(i + 1)), body, text: `${text}${r.stderr}` };
}

/** The server answers an ordinary admin request: it is alive and serving. */
async function stillServing(): Promise<void> {
  assert.is(srv.proc!.exitCode, null, `the server exited:\n${srv.stderr.slice(-2000)}`);
  const r = await srv.admin('GET', '/v1/pools');
  assert.is(r.status, 200, r.text);
}

async function register(metadata: Record<string, string> = {}, version = '0.1.0'): Promise<string> {
  const r = await srv.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: null, metadata, version, host: { hostname: 'h1', os: 'linux', arch: 'x64' } });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

/** Triggers a run and has a fresh worker take and start its first phase. */
async function runningPhase(): Promise<{ runId: string; workerId: string }> {
  const t = await srv.admin('POST', `/v1/stacks/${stackId}/runs`, { proposed: false });
  assert.is(t.status, 201, t.text);
  const workerId = await register({ role: 'runner' });
  const p = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=0', { workerId, accept: true, runId: null });
  assert.is(p.status, 200, p.text);
  assert.is(p.body.assignment?.runId, t.body.run.id, p.text);
  const s = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${t.body.run.id}/phases/0/start`, { workerId });
  assert.is(s.status, 200, s.text);
  return { runId: t.body.run.id, workerId };
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hardening-test-'));
  dist = join(dir, 'dist');
  srv = new TestServer({ args: ['--max-workspace-size', '1MiB', '--dist', join(dir, 'dist')] });
  // The distribution directory links to the admin token: a link is never followed.
  mkdirSync(dist);
  symlinkSync(join(srv.dataDir, 'admin.token'), join(dist, 'launcher-linux-x64'));
  symlinkSync(join(srv.dataDir, 'admin.token'), join(dist, 'install.sh'));
  writeFileSync(join(dist, 'SHA256SUMS'), `${createHash('sha256').update('x').digest('hex')}  launcher-linux-x64\n`);
  // A data directory that already exists with a wide mode, and leftovers in tmp/.
  chmodSync(srv.dataDir, 0o755);
  mkdirSync(join(srv.dataDir, 'tmp'), { recursive: true });
  writeFileSync(join(srv.dataDir, 'tmp', 'upload-leftover'), Buffer.alloc(4096));
  await srv.start();
  const k = opensslCsr(dir, 'hard');
  const r = await srv.admin('POST', '/v1/pools', { name: 'hard', csr: k.csrPem });
  assert.is(r.status, 201, r.text);
  const certPath = join(dir, 'hard.crt');
  writeFileSync(certPath, tokenCertificate(r.body.token));
  pool = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem }, certPath, keyPath: k.keyPath };
  const s = await srv.admin('POST', '/v1/stacks', { name: 'hard', pool: pool.id, image: 'launcher-test/none:latest', phases: [{ name: 'plan', script: 'true' }] });
  assert.is(s.status, 201, s.text);
  stackId = s.body.stack.id;
});

test.before.each((ctx) => { if (process.env.TEST_TRACE) console.error(`[trace] ${(ctx as { __test__?: string }).__test__}`); });

test.after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a chunked admin POST over 1 MiB gets 413 BODY_TOO_LARGE and the server keeps serving (was: process exit in writeAudit)', async () => {
  const big = join(dir, 'big.json');
  writeFileSync(big, `{"name":"${'a'.repeat(2 * 1024 * 1024)}"}`);
  for (let i = 0; i < 3; i++) {
    const r = curl('/v1/pools', ['-H', `Authorization: Bearer ${srv.adminToken}`, '-H', 'content-type: application/json', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${big}`]);
    assert.is(r.status, 413, r.text);
    assert.is(r.body.error.code, 'BODY_TOO_LARGE');
  }
  await stillServing();
  const audit = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(audit.some((a) => a.action === 'POST /v1/pools' && a.status === 413 && a.remote === '127.0.0.1'), 'the refused request is audited with its address');
});

test('ESC and NUL in worker metadata and version are shown escaped by `admin worker list`', async () => {
  const id = await register({ evil: 'x\u001b[2J\u001b]0;pwned\u0007y\u0000z', 'k\u001b[31m': 'v' }, '1.0\u001b[1A\u0000');
  const env = { LAUNCHER_SERVER: srv.url, LAUNCHER_ADMIN_TOKEN: srv.adminToken, LAUNCHER_CA: srv.caPath };
  const r = launcher(['admin', 'worker', 'list'], { env });
  assert.is(r.code, 0, r.err);
  assert.ok(r.out.includes(id), r.out);
  assert.not.match(r.out, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'no raw control characters reach the terminal');
  assert.ok(r.out.includes('\\x1b[2J'), r.out);
  assert.ok(r.out.includes('\\x00'), r.out);
  assert.ok(r.out.includes('1.0\\x1b[1A\\x00'), r.out);
  // --json keeps the data exact (JSON escapes control characters itself).
  const j = launcher(['admin', 'worker', 'list', '--json'], { env });
  const w = JSON.parse(j.out).workers.find((x: { id: string }) => x.id === id);
  assert.is(w.version, '1.0\u001b[1A\u0000');
});

test('a symlink inside dist/ is never followed: the admin token is not served', async () => {
  const token = srv.adminToken;
  for (const path of ['/launcher-linux-x64', '/install.sh']) {
    const r = curl(path);
    assert.is(r.status, 404, r.text);
    assert.not.ok(r.text.includes(token), `${path} leaked the admin token`);
  }
  await stillServing();
});

test('the data directory is made private even when it existed; launcher.db and its -wal are 0600; tmp/ was cleaned at start', async () => {
  assert.is(statSync(srv.dataDir).mode & 0o777, 0o700);
  // (No -shm file: the database is opened in exclusive locking mode.)
  for (const f of ['launcher.db', 'launcher.db-wal']) {
    const p = join(srv.dataDir, f);
    assert.ok(existsSync(p), `${f} exists`);
    assert.is(statSync(p).mode & 0o777, 0o600, f);
  }
  if (existsSync(join(srv.dataDir, 'launcher.db-shm'))) assert.is(statSync(join(srv.dataDir, 'launcher.db-shm')).mode & 0o777, 0o600);
  for (const d of ['tmp', 'logs', 'workspaces']) assert.is(statSync(join(srv.dataDir, d)).mode & 0o777, 0o700, d);
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')), [], 'the leftover upload is gone');
  assert.ok(srv.logLines().some((l) => l.msg === 'Removed unfinished uploads from tmp/' && l.files === 1), srv.stderr);
});

test('workspace archives carry no setuid, setgid or sticky bits', async () => {
  const ws = join(dir, 'ws');
  mkdirSync(join(ws, 'sub'), { recursive: true });
  writeFileSync(join(ws, 'suid'), '#!/bin/sh\n');
  chmodSync(join(ws, 'suid'), 0o6755);
  chmodSync(join(ws, 'sub'), 0o1777);
  assert.is(statSync(join(ws, 'suid')).mode & 0o7777, 0o6755, 'the file really has the bits');
  const modes = new Map<string, number>();
  const x = extract();
  x.on('entry', (h, s, next) => { modes.set(h.name, h.mode ?? -1); s.resume(); s.on('end', next); });
  await new Promise<void>((resolve, reject) => { x.on('finish', resolve); x.on('error', reject); packDirectory(ws).pipe(x); });
  assert.is(modes.get('suid'), 0o755);
  assert.is(modes.get('sub/'), 0o777);
});

test('keygen writes key and CSR through fsynced temporary files: right modes whatever the umask, nothing left over', () => {
  const out = mkdtempSync(join(dir, 'keygen-'));
  const r = spawnSync('sh', ['-c', `umask 000 && exec "$@"`, 'sh', NODE, '--import', 'tsx', join(ROOT, 'launcher.ts'), 'keygen', '--bits', '2048', '--out', join(out, 'pool')], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  assert.equal(readdirSync(out).sort(), ['pool.csr', 'pool.key']);
  assert.is(statSync(join(out, 'pool.key')).mode & 0o777, 0o600);
  assert.is(statSync(join(out, 'pool.csr')).mode & 0o777, 0o644);
  // A second run refuses to overwrite and leaves both files as they were.
  const key = readFileSync(join(out, 'pool.key'));
  const again = spawnSync(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'keygen', '--bits', '2048', '--out', join(out, 'pool')], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.is.not(again.status, 0);
  assert.equal(readFileSync(join(out, 'pool.key')), key);
  assert.equal(readdirSync(out).sort(), ['pool.csr', 'pool.key']);
});

test('install.sh stages files under mktemp names: a symlink planted at the old NAME.tmp.PID name is left alone', async () => {
  const script = readFileSync(join(ROOT, 'scripts/install.sh'), 'utf8');
  assert.not.match(script, /\.tmp\.\$\$/, 'no PID-based temporary names');
  // Run the crontab step for real with a fake binary source.
  const work = mkdtempSync(join(dir, 'install-'));
  const victim = join(work, 'victim');
  writeFileSync(victim, 'precious\n');
  const crontab = join(work, 'crontab');
  // Plant links at every PID the shell is likely to get next.
  const r0 = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  const pid = Number(r0.stdout.trim());
  for (let p = pid; p < pid + 200; p++) symlinkSync(victim, `${crontab}.tmp.${p}`);
  const bin = join(work, 'launcher-linux-x64');
  writeFileSync(bin, '#!/bin/sh\necho launcher 0.1.0\n');
  const sums = `${createHash('sha256').update(readFileSync(bin)).digest('hex')}  launcher-linux-x64\n`;
  writeFileSync(join(work, 'SHA256SUMS'), sums);
  mkdirSync(join(work, 'bin'));
  // The files over plain HTTP on loopback, as the server's distribution endpoint would serve them.
  const files = createHttpServer((req, res) => {
    const p = join(work, String(req.url).replace(/^\/+/, ''));
    if (!/^\/(SHA256SUMS|launcher-linux-x64)$/.test(String(req.url)) || !existsSync(p)) { res.writeHead(404).end(); return; }
    res.writeHead(200).end(readFileSync(p));
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(files.address() as { port: number }).port}`;
  const args = ['--base-url', base, '--arch', 'x64', '--prefix', join(work, 'bin'), '--env-file', join(work, 'launcher.env'), '--log-file', join(work, 'launcher.log'), '--crontab-file', crontab, '--cron'];
  const run = await new Promise<{ status: number | null; out: string }>((resolve) => {
    const p = spawn('sh', [join(ROOT, 'scripts/install.sh'), ...args], { env: { ...process.env, TMPDIR: work } });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (status) => resolve({ status, out }));
  });
  files.close();
  assert.is(run.status, 0, run.out);
  assert.is(readFileSync(victim, 'utf8'), 'precious\n', 'the planted link was not written through');
  assert.match(readFileSync(crontab, 'utf8'), /launcher/);
  assert.not.ok(lstatSync(crontab).isSymbolicLink());
});

test('lenient numbers on the wire are refused: seq 0x0, 2.0, 1e0; phase 0x0; exit code 1e308', async () => {
  const { runId, workerId } = await runningPhase();
  for (const seq of ['0x0', '2.0', '1e0', '+0', ' 0', '', '-1', '00']) {
    const r = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=${encodeURIComponent(seq)}`, Buffer.from('line\n'));
    assert.is(r.status, 400, `seq ${JSON.stringify(seq)}: ${r.text}`);
    assert.is(r.body.error.code, 'INVALID_FIELD');
    assert.match(r.body.error.message, /"seq"/);
  }
  const ph = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0x0/logs?seq=0`, Buffer.from('line\n'));
  assert.is(ph.status, 400, ph.text);
  assert.match(ph.body.error.message, /"phase"/);
  const wait = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=1e1', { workerId, accept: true, runId });
  assert.is(wait.status, 400, wait.text);
  // Nothing was stored by the refused chunks: seq 0 is still the next one.
  const ok = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=0`, Buffer.from('line\n'));
  assert.is(ok.status, 200, ok.text);
  assert.is(ok.body.nextSeq, 1);
  for (const exitCode of [1e308, 2 ** 31, -(2 ** 31) - 1, 1.5]) {
    const r = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId, outcome: 'failed', exitCode, error: null, logSeq: 1 });
    assert.is(r.status, 400, `exitCode ${exitCode}: ${r.text}`);
    assert.match(r.body.error.message, /"exitCode"/);
  }
  const done = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId, outcome: 'failed', exitCode: 255, error: null, logSeq: 1 });
  assert.is(done.status, 200, done.text);
  const logs = await srv.admin('GET', `/v1/runs/${runId}/logs`);
  assert.is(logs.text, 'line\n');
});

test('`launcher state open` without -o: a one-line message and exit 1, no stack trace', () => {
  const k1 = join(dir, 'state1.key');
  const k2 = join(dir, 'state2.key');
  execFileSync('openssl', ['genrsa', '-out', k1, '2048'], { stdio: 'ignore' });
  execFileSync('openssl', ['genrsa', '-out', k2, '2048'], { stdio: 'ignore' });
  const pub = join(dir, 'state1.pub');
  execFileSync('openssl', ['rsa', '-in', k1, '-pubout', '-out', pub], { stdio: 'ignore' });
  const sealed = join(dir, 'state.age');
  const s = launcher(['state', 'seal', '-R', pub, '-o', sealed], { input: Buffer.from('{"version":4}\n') });
  assert.is(s.code, 0, s.err);
  for (const args of [['state', 'open', '-i', k2, sealed], ['state', 'open', '-i', k2]]) {
    const r = launcher(args, { input: readFileSync(sealed) });
    assert.is(r.code, 1, r.err);
    assert.is(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, /^launcher state: No identity matches/);
    assert.not.match(r.err, /\n\s+at /);
  }
  const ok = launcher(['state', 'open', '-i', k1, sealed]);
  assert.is(ok.code, 0, ok.err);
  assert.is(ok.out, '{"version":4}\n');
  // CRLF line ends (a text-mode copy) are named as the problem.
  const bytes = readFileSync(sealed);
  const end = bytes.indexOf('\n---') + 1;
  const headerEnd = bytes.indexOf('\n', end) + 1;
  const crlf = Buffer.concat([Buffer.from(bytes.subarray(0, headerEnd).toString('latin1').replace(/\n/g, '\r\n'), 'latin1'), bytes.subarray(headerEnd)]);
  const c = launcher(['state', 'open', '-i', k1], { input: crlf });
  assert.is(c.code, 1, c.err);
  assert.match(c.err, /CRLF/);
  assert.not.match(c.err, /Unsupported age format version/);
});

test('a client certificate from a foreign CA with the same DN gets a clear 401, not a reset', async () => {
  const caSubject = execFileSync('openssl', ['x509', '-in', srv.caPath, '-noout', '-subject', '-nameopt', 'compat'], { encoding: 'utf8' }).trim().replace(/^subject=/, '');
  const ski = execFileSync('openssl', ['x509', '-in', srv.caPath, '-noout', '-ext', 'subjectKeyIdentifier'], { encoding: 'utf8' }).split('\n')[1]!.trim();
  const cnf = join(dir, 'fake-ca.cnf');
  writeFileSync(cnf, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\nsubjectKeyIdentifier=${ski}\nbasicConstraints=critical,CA:true\nkeyUsage=keyCertSign,cRLSign\n`);
  const fakeKey = join(dir, 'fake-ca.key');
  const fakeCrt = join(dir, 'fake-ca.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', fakeKey, '-out', fakeCrt, '-subj', caSubject, '-days', '2', '-config', cnf, '-extensions', 'v3'], { stdio: 'ignore' });
  const k = opensslCsr(dir, 'forged');
  const ext = join(dir, 'forged.ext');
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n');
  const crt = join(dir, 'forged.crt');
  execFileSync('openssl', ['x509', '-req', '-in', k.csrPath, '-CA', fakeCrt, '-CAkey', fakeKey, '-CAcreateserial', '-out', crt, '-days', '1', '-extfile', ext], { stdio: 'ignore' });
  for (let i = 0; i < 5; i++) {
    const r = curl('/v1/worker/register', ['--cert', crt, '--key', k.keyPath, '-H', 'content-type: application/json', '-d', '{"workerId":null}']);
    assert.is(r.status, 401, r.text);
    assert.is(r.body.error.code, 'CLIENT_CERT_UNTRUSTED');
    assert.match(r.body.error.message, /another CA/);
  }
  const s = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${srv.port}`, '-CAfile', srv.caPath, '-quiet', '-ign_eof', '-cert', crt, '-key', k.keyPath], {
    input: 'POST /v1/worker/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}', encoding: 'utf8', timeout: 20_000,
  });
  assert.match(s.stdout, /HTTP\/1\.1 401/);
  await stillServing();
});

test('a certificate of this CA without clientAuth is refused as such (INVALID_PURPOSE), not as a foreign CA', async () => {
  const k = opensslCsr(dir, 'server-only');
  const ext = join(dir, 'server-only.ext');
  writeFileSync(ext, 'extendedKeyUsage=serverAuth\n');
  const crt = join(dir, 'server-only.crt');
  execFileSync('openssl', ['x509', '-req', '-in', k.csrPath, '-CA', srv.caPath, '-CAkey', join(srv.dataDir, 'ca.key'), '-CAcreateserial', '-out', crt, '-days', '1', '-extfile', ext], { stdio: 'ignore' });
  const r = curl('/v1/worker/register', ['--cert', crt, '--key', k.keyPath, '-H', 'content-type: application/json', '-d', '{}']);
  assert.is(r.status, 401, r.text);
  assert.is(r.body.error.code, 'CLIENT_CERT_WRONG_PURPOSE');
  assert.match(r.body.error.message, /client authentication/);
  assert.not.match(r.body.error.message, /not issued by this server's CA/);
});

test('CSR refusals name the problem: two PEM blocks; RSA exponent 3 (only 65537 is accepted)', async () => {
  const k = opensslCsr(dir, 'two');
  const both = `${k.csrPem}${readFileSync(k.keyPath, 'utf8')}`;
  const r = await srv.admin('POST', '/v1/pools', { name: 'two', csr: both });
  assert.is(r.status, 400, r.text);
  assert.is(r.body.error.code, 'CSR_INVALID');
  assert.match(r.body.error.message, /2 PEM blocks/);
  assert.match(r.body.error.message, /private key/);
  const twoCsrs = await srv.admin('POST', '/v1/pools', { name: 'two', csr: `${k.csrPem}${k.csrPem}` });
  assert.is(twoCsrs.status, 400);
  assert.match(twoCsrs.body.error.message, /2 PEM blocks/);

  const e3key = join(dir, 'e3.key');
  const e3csr = join(dir, 'e3.csr');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', e3key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', e3key, '-out', e3csr, '-subj', '/CN=e3'], { stdio: 'ignore' });
  const e3 = await srv.admin('POST', '/v1/pools', { name: 'e3', csr: readFileSync(e3csr, 'utf8') });
  assert.is(e3.status, 400, e3.text);
  assert.is(e3.body.error.code, 'CSR_INVALID');
  assert.match(e3.body.error.message, /exponent is 3, expected 65537/);
  const pools = await srv.admin('GET', '/v1/pools');
  assert.not.ok(pools.body.pools.some((p: { name: string }) => p.name === 'e3' || p.name === 'two'));
});

/** A raw TLS connection with the pool certificate; resolves once connected. */
function rawTls(cert?: ClientCert): Promise<import('node:tls').TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: srv.port, ca: srv.caPem, servername: 'localhost', ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) }, () => resolve(s));
    s.on('error', reject);
  });
}

test('a client that aborts a request is not an error in the server log; the server keeps serving', async () => {
  const { runId } = await runningPhase();
  const before = srv.logLines().length;
  for (let i = 0; i < 3; i++) {
    const s = await rawTls(pool.cert);
    s.write(`POST /v1/worker/runs/${runId}/phases/0/logs?seq=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
    s.write(Buffer.alloc(1000, 'x'));
    await new Promise((r) => setTimeout(r, 200));
    s.destroy();
    const a = await rawTls();
    a.write(`POST /v1/pools HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${srv.adminToken}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"name":`);
    await new Promise((r) => setTimeout(r, 200));
    a.destroy();
  }
  await new Promise((r) => setTimeout(r, 300));
  await stillServing();
  const errors = srv.logLines().slice(before).filter((l) => l.level === 'error');
  assert.equal(errors, [], 'no error-level lines for clients that went away');
  // Nothing was stored by the aborted chunk.
  const st = await srv.worker(pool.cert, 'GET', `/v1/worker/runs/${runId}/phases/0`);
  assert.is(st.body.logs.nextSeq, 0);
});

test('a refused upload (too large, chunked) or an aborted one leaves nothing in tmp/', async () => {
  const { runId } = await runningPhase();
  const big = join(dir, 'big.age');
  writeFileSync(big, Buffer.concat([SEALED, Buffer.alloc(3 * 1024 * 1024, 1)]));
  const r = curl(`/v1/worker/runs/${runId}/phases/0/workspace`, ['--cert', pool.certPath, '--key', pool.keyPath, '-X', 'PUT', '-H', 'Transfer-Encoding: chunked', '-H', 'content-type: application/octet-stream', '--data-binary', `@${big}`]);
  assert.is(r.status, 413, r.text);
  assert.is(r.body.error.code, 'WORKSPACE_TOO_LARGE');
  // Aborted part-way through.
  const s = await rawTls(pool.cert);
  s.write(`PUT /v1/worker/runs/${runId}/phases/0/workspace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 900000\r\n\r\n`);
  s.write(Buffer.concat([SEALED, Buffer.alloc(100_000, 2)]));
  await new Promise((r) => setTimeout(r, 300));
  s.destroy();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')), []);
  // A proper upload still works.
  const ok = await srv.worker(pool.cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, SEALED);
  assert.is(ok.status, 200, ok.text);
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')), []);
  await stillServing();
});

test.run();
