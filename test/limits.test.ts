// Connection limits and quotas on a real server (a `launcher server` process
// on loopback) attacked with raw TCP and TLS sockets: idle connections closed
// by the handshake timeout, a per-address cap on unauthenticated connections,
// the connection cap evicting idle strangers rather than launchers, slow and
// stalled bodies timed out, the per-run log cap with its marker and the
// launcher told to stop, upload slots per worker, the free-disk floor, and the
// open-file limit raised from soft to hard.
//
// Timing: the server's handshake timeout is long (60 s) except in the one test
// that waits for it, so connections closed while a test waits were closed by
// the cap under test, not by the timeout, however slowly a loaded machine runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { LogShipper } from '../lib/launcher/logship.ts';
import { truncationMarker } from '../lib/server/quotas.ts';
import { opensslCsr, ROOT, startTestServer, TestServer, tokenCertificate, type ClientCert } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

const LOG_CAP = 4096;
let srv: TestServer;
let dir: string;
let cert: ClientCert;
let stackId: string;
const SEALED = Buffer.from('age-encryption.org/v1\n-> X25519 stand-in\n--- x\nbody');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function register(): Promise<string> {
  const r = await srv.worker(cert, 'POST', '/v1/worker/register', { workerId: null, metadata: {}, version: 'test', host: {} });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

async function runningPhase(): Promise<{ runId: string; workerId: string }> {
  const t = await srv.admin('POST', `/v1/stacks/${stackId}/runs`, { proposed: false });
  assert.is(t.status, 201, t.text);
  const workerId = await register();
  const p = await srv.worker(cert, 'POST', '/v1/worker/poll?wait=0', { workerId, accept: true, runId: null });
  assert.is(p.body.assignment?.runId, t.body.run.id, p.text);
  const s = await srv.worker(cert, 'POST', `/v1/worker/runs/${t.body.run.id}/phases/0/start`, { workerId });
  assert.is(s.status, 200, s.text);
  return { runId: t.body.run.id, workerId };
}

/** Raw TCP connections from `from` (a loopback address) that never say anything. */
async function idleSockets(n: number, from: string): Promise<{ socks: Socket[]; closed: () => number }> {
  let closed = 0;
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise<Socket>((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port: srv.port, localAddress: from });
    s.on('error', () => {});
    s.on('close', () => { closed++; });
    s.on('connect', () => resolve(s));
    s.on('close', () => resolve(s));
  })));
  return { socks, closed: () => closed };
}

function rawTls(c?: ClientCert): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: srv.port, ca: srv.caPem, servername: 'localhost', ...(c ? { cert: c.certPem, key: c.keyPem } : {}) }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Everything the server sends until it closes the connection (bounded). */
function readAll(s: TLSSocket, ms = 20_000): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (d) => { text += d; });
    const t = setTimeout(() => { s.destroy(); resolve(`${text}\n[still open after ${ms} ms]`); }, ms);
    s.on('close', () => { clearTimeout(t); resolve(text); });
    s.on('error', () => {});
  });
}

const until = (what: string, check: () => boolean): Promise<true> => waitFor(() => check() || undefined, what);

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'limits-test-'));
  srv = await startTestServer({
    args: ['--handshake-timeout', '60s', '--max-pending-per-address', '20', '--max-connections', '150', '--body-timeout', '2s',
      '--max-run-log', `${LOG_CAP}`, '--max-uploads-per-worker', '1'],
  });
  const k = opensslCsr(dir, 'limits');
  const r = await srv.admin('POST', '/v1/pools', { name: 'limits', csr: k.csrPem });
  assert.is(r.status, 201, r.text);
  cert = { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem };
  const s = await srv.admin('POST', '/v1/stacks', { name: 'limits', pool: r.body.pool.id, image: 'launcher-test/none:latest', phases: [{ name: 'plan', script: 'true' }] });
  stackId = s.body.stack.id;
});

test.after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('idle TCP connections that never start TLS are closed by the handshake timeout', async () => {
  await srv.restart(['--handshake-timeout', '3s']);
  try {
    const { socks, closed } = await idleSockets(10, '127.0.0.1');
    await until('the server to close every idle connection', () => closed() === socks.length);
    const r = await srv.admin('GET', '/v1/pools');
    assert.is(r.status, 200);
  } finally {
    await srv.restart();
  }
});

test('one address gets at most --max-pending-per-address unauthenticated connections; launchers and admins elsewhere are unaffected', async () => {
  const { socks, closed } = await idleSockets(60, '127.0.0.2');
  // The ones over the cap are closed at once (the handshake timeout is 60 s).
  await until('the connections over the cap to be closed', () => closed() >= 40);
  assert.ok(closed() <= 60);
  const w = await srv.worker(cert, 'POST', '/v1/worker/register', { workerId: null });
  assert.is(w.status, 200, w.text);
  assert.is((await srv.admin('GET', '/v1/pools')).status, 200);
  for (const s of socks) s.destroy();
});

test('at --max-connections a new connection evicts the oldest unauthenticated one: a held long-poll survives and is answered', async () => {
  const workerId = await register();
  const held = srv.worker(cert, 'POST', '/v1/worker/poll?wait=50', { workerId, accept: true, runId: null });
  await srv.waitHeldPolls(1);
  // 8 addresses × 20 idle sockets = 160 > 150 connections.
  const floods = await Promise.all(Array.from({ length: 8 }, (_, i) => idleSockets(20, `127.0.1.${i + 1}`)));
  const closedNow = (): number => floods.reduce((n, f) => n + f.closed(), 0);
  // Closed at once (the handshake timeout is 60 s) to stay under the cap.
  await until('connections over the cap to be closed', () => closedNow() >= 10);
  assert.ok(srv.logLines().some((l) => l.msg === 'Connection limit reached: closing the oldest unauthenticated connection'), srv.stderr.slice(-3000));
  // An admin (a new connection) still gets in, and the held poll still gets its run.
  const t = await srv.admin('POST', `/v1/stacks/${stackId}/runs`, { proposed: false });
  assert.is(t.status, 201, t.text);
  const got = await held;
  assert.is(got.status, 200, got.text);
  assert.is(got.body.assignment?.runId, t.body.run.id);
  for (const f of floods) for (const s of f.socks) s.destroy();
  // Finish that run so later tests start from an empty queue.
  await srv.worker(cert, 'POST', `/v1/worker/runs/${t.body.run.id}/phases/0/start`, { workerId });
  await srv.worker(cert, 'POST', `/v1/worker/runs/${t.body.run.id}/phases/0/result`, { workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 0 });
});

test('a slow request body with a valid client certificate gets 408 BODY_TIMEOUT and the connection is closed', async () => {
  const s = await rawTls(cert);
  const answer = readAll(s);
  s.write('POST /v1/worker/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{');
  // A byte every 300 ms: never idle long, but never done in 2 s either.
  const drip = setInterval(() => { if (!s.destroyed) s.write(' '); }, 300);
  const text = await answer;
  clearInterval(drip);
  assert.match(text, /^HTTP\/1\.1 408/);
  assert.match(text, /"code":"BODY_TIMEOUT"/);
  assert.not.match(text, /still open/);
});

test('a stalled workspace upload gets 408, its slot is freed and tmp/ is left empty', async () => {
  const { runId } = await runningPhase();
  const s = await rawTls(cert);
  const answer = readAll(s);
  s.write(`PUT /v1/worker/runs/${runId}/phases/0/workspace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
  s.write(SEALED);
  // While it is stalled, the worker's one upload slot is taken (it is taken
  // before the upload's temp file is made).
  await until('the stalled upload to reach tmp/', () => readdirSync(join(srv.dataDir, 'tmp')).length > 0);
  const second = await srv.worker(cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, SEALED);
  assert.is(second.status, 429, second.text);
  assert.is(second.body.error.code, 'TOO_MANY_UPLOADS');
  const text = await answer;
  assert.match(text, /^HTTP\/1\.1 408/);
  assert.match(text, /BODY_TIMEOUT/);
  await until('tmp/ to be empty', () => readdirSync(join(srv.dataDir, 'tmp')).length === 0);
  // The slot is given back as the refused upload's handler unwinds.
  const ok = await waitFor(async () => {
    const r = await srv.worker(cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, SEALED);
    return r.status === 429 ? undefined : r;
  }, 'the upload slot to be given back', 120_000, 100);
  assert.is(ok.status, 200, ok.text);
});

test('--max-run-log: past the cap the log ends with a marker, later chunks are acknowledged and dropped, the launcher is told to stop', async () => {
  const { runId, workerId } = await runningPhase();
  const base = `/v1/worker/runs/${runId}/phases/0`;
  const a = await srv.worker(cert, 'POST', `${base}/logs?seq=0`, Buffer.alloc(3000, 'a'));
  assert.equal(a.body, { nextSeq: 1 });
  const b = await srv.worker(cert, 'POST', `${base}/logs?seq=1`, Buffer.alloc(3000, 'b'));
  assert.equal(b.body, { nextSeq: 2, truncated: true });
  const c = await srv.worker(cert, 'POST', `${base}/logs?seq=2`, Buffer.alloc(3000, 'c'));
  assert.equal(c.body, { nextSeq: 3, truncated: true });
  const r = await srv.worker(cert, 'POST', `${base}/result`, { workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 3 });
  assert.is(r.status, 200, r.text);
  const logs = await srv.admin('GET', `/v1/runs/${runId}/logs`);
  const marker = truncationMarker(LOG_CAP).toString();
  assert.is(logs.text, 'a'.repeat(3000) + 'b'.repeat(LOG_CAP - 3000) + marker);
  assert.not.match(logs.text, /ccc/);
});

test('the launcher\'s log shipper stops sending once the server says the run\'s log is full', async () => {
  const { runId, workerId } = await runningPhase();
  let sent = 0;
  const shipper = new LogShipper({
    spillDir: join(dir, 'spill'), flushMs: 20, maxChunkBytes: 1000,
    upload: async (seq, bytes) => {
      sent++;
      const r = await srv.worker(cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=${seq}`, Buffer.from(bytes));
      if (r.status !== 200) throw new Error(r.text);
      return { nextSeq: r.body.nextSeq, stop: r.body.truncated === true };
    },
  });
  for (let i = 0; i < 20; i++) { shipper.write(Buffer.alloc(1000, 'x')); await sleep(10); }
  await shipper.flush();
  for (let i = 0; i < 20; i++) shipper.write(Buffer.alloc(1000, 'y'));
  const logSeq = await shipper.close();
  assert.ok(shipper.stopped);
  assert.ok(sent <= 6, `sent ${sent} chunks for a ${LOG_CAP}-byte cap`);
  const r = await srv.worker(cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq });
  assert.is(r.status, 200, r.text);
  const logs = await srv.admin('GET', `/v1/runs/${runId}/logs`);
  assert.ok(logs.text.endsWith(truncationMarker(LOG_CAP).toString()));
});

test('below the free-disk floor an upload gets 507 INSUFFICIENT_STORAGE and nothing lands in tmp/', async () => {
  await srv.restart(['--min-free-disk', '1000TB']);
  try {
    const { runId } = await runningPhase();
    const r = await srv.worker(cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, SEALED);
    assert.is(r.status, 507, r.text);
    assert.is(r.body.error.code, 'INSUFFICIENT_STORAGE');
    assert.match(r.body.error.message, /--min-free-disk/);
    assert.equal(readdirSync(join(srv.dataDir, 'tmp')), []);
    assert.is((await srv.admin('GET', '/v1/pools')).status, 200);
  } finally {
    await srv.restart();
  }
});

test('the server raises its open-file limit from soft to hard and sizes --max-connections from it', async () => {
  const other = new TestServer({});
  const limits = await new Promise<{ soft: string; hard: string; log: string }>((resolve) => {
    const p = spawn('sh', ['-c', 'ulimit -S -n 512; echo "soft=$(ulimit -S -n) hard=$(ulimit -H -n)" >&2; exec "$@"', 'sh',
      join(ROOT, 'node_modules/.bin/node'), '--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', '--data', other.dataDir, '--listen', '127.0.0.1:0'], { cwd: ROOT });
    let log = '';
    p.stderr.on('data', (d) => {
      log += d;
      if (log.includes('"Server listening"')) p.kill('SIGTERM');
    });
    p.on('close', () => {
      const m = /soft=(\d+) hard=(\d+)/.exec(log);
      resolve({ soft: m?.[1] ?? '', hard: m?.[2] ?? '', log });
    });
  });
  rmSync(join(other.dataDir, '..'), { recursive: true, force: true });
  assert.is(limits.soft, '512', limits.log);
  const line = JSON.parse(limits.log.split('\n').find((l) => l.includes('"Server listening"'))!);
  assert.is(line.fileLimit, Number(limits.hard), limits.log);
  assert.ok(line.maxConnections > 5000 || Number(limits.hard) < 8000, `max connections ${line.maxConnections} from a limit of ${limits.hard}`);
  assert.ok(line.maxConnections < line.fileLimit);
  assert.is(line.handshakeTimeoutMs, 10_000);
});

test.run();
