// The server's worker and admin APIs over real HTTPS with real certificates:
// pool creation from an openssl CSR, registration, long-poll assignment, logs
// with sequence numbers, results, confirmation, workspaces and size limits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';

let srv: TestServer;
let dir: string;
let poolA: { id: string; cert: ClientCert };
let poolB: { id: string; cert: ClientCert };
const SEALED = (tag: string): Buffer => Buffer.concat([Buffer.from('age-encryption.org/v1\n-> X25519 stand-in\n'), Buffer.from(tag)]);

async function createPool(name: string): Promise<{ id: string; cert: ClientCert; token: string }> {
  const k = opensslCsr(dir, name);
  const r = await srv.admin('POST', '/v1/pools', { name, csr: k.csrPem });
  assert.is(r.status, 201, r.text);
  return { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem }, token: r.body.token };
}

async function register(cert: ClientCert, metadata: Record<string, string> = {}): Promise<string> {
  const r = await srv.worker(cert, 'POST', '/v1/worker/register', { workerId: null, metadata, version: '0.1.0', host: { hostname: 'h1', os: 'linux', arch: 'x64' } });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

async function createStack(name: string, pool: string, phases = [{ name: 'plan', script: 'echo plan' }, { name: 'apply', script: 'echo apply', confirm: true }]): Promise<string> {
  const r = await srv.admin('POST', '/v1/stacks', { name, pool, image: 'launcher-test/busybox:latest', env: { A: '1' }, phases });
  assert.is(r.status, 201, r.text);
  return r.body.stack.id;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'server-api-test-'));
  srv = await startTestServer({ args: ['--max-workspace-size', '256KiB'] });
  const a = await createPool('pool-a');
  const b = await createPool('pool-b');
  poolA = a;
  poolB = b;
});

test.after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('pool creation returns a token whose certificate chains to the server CA', async () => {
  const r = await srv.admin('GET', `/v1/pools/${poolA.id}`);
  assert.is(r.status, 200);
  assert.is(r.body.pool.name, 'pool-a');
  assert.is(r.body.pool.keys.length, 1);
  assert.is(r.body.pool.keys[0].state, 'active');
  assert.match(r.body.pool.keys[0].publicKeyPem, /BEGIN PUBLIC KEY/);
  const byName = await srv.admin('GET', '/v1/pools/pool-a');
  assert.is(byName.body.pool.id, poolA.id);
  const dup = await srv.admin('POST', '/v1/pools', { name: 'pool-a', csr: opensslCsr(dir, 'dup').csrPem });
  assert.is(dup.status, 409);
  assert.is(dup.body.error.code, 'NAME_TAKEN');
});

test('PATCH a pool\'s description: the new text is shown, audited like the other pool actions; bad bodies name what is accepted', async () => {
  const r = await srv.admin('PATCH', '/v1/pools/pool-b', { description: 'rack 4, owned by the platform team' });
  assert.is(r.status, 200, r.text);
  assert.is(r.body.pool.id, poolB.id);
  assert.is(r.body.pool.description, 'rack 4, owned by the platform team');
  assert.is((await srv.admin('GET', `/v1/pools/${poolB.id}`)).body.pool.description, 'rack 4, owned by the platform team');
  const lines = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const line = lines.findLast((l) => l.action === 'PATCH /v1/pools/{pool}');
  const createShape = Object.keys(lines.find((l) => l.action === 'POST /v1/pools')).sort();
  assert.equal(line, { time: line.time, action: 'PATCH /v1/pools/{pool}', status: 200, remote: '127.0.0.1', pool: poolB.id });
  assert.equal(Object.keys(line).sort(), createShape, 'the same fields as the other pool actions');

  const refused = async (body: unknown, re: RegExp): Promise<void> => {
    const b = await srv.admin('PATCH', `/v1/pools/${poolB.id}`, body);
    assert.is(b.status, 400, b.text);
    assert.is(b.body.error.code, 'INVALID_FIELD');
    assert.match(b.body.error.message, re);
  };
  await refused({ description: 'x'.repeat(1025) }, /"description": expected free text of at most 1024 characters/);
  await refused({ description: 42 }, /"description": expected free text of at most 1024 characters/);
  await refused({ name: 'renamed' }, /Unknown field "name": a pool update accepts only "description"/);
  await refused({ description: 'ok', cycle: 3 }, /Unknown field "cycle": a pool update accepts only "description"/);
  await refused({}, /"description".*the only field a pool update accepts/);
  assert.is((await srv.admin('GET', `/v1/pools/${poolB.id}`)).body.pool.description, 'rack 4, owned by the platform team', 'refusals change nothing');
  const cleared = await srv.admin('PATCH', `/v1/pools/${poolB.id}`, { description: '' });
  assert.is(cleared.body.pool.description, '');
  assert.is((await srv.admin('PATCH', '/v1/pools/nope', { description: 'x' })).body.error.code, 'POOL_NOT_FOUND');
});

test('a bad CSR is refused with CSR_INVALID naming the problem', async () => {
  const r = await srv.admin('POST', '/v1/pools', { name: 'bad', csr: 'not a csr' });
  assert.is(r.status, 400);
  assert.is(r.body.error.code, 'CSR_INVALID');
  assert.match(r.body.error.message, /PEM/);
});

test('admin API without or with a wrong token is 401', async () => {
  const none = await srv.admin('GET', '/v1/pools', undefined, { token: null });
  assert.is(none.status, 401);
  assert.is(none.body.error.code, 'ADMIN_TOKEN_MISSING');
  const wrong = await srv.admin('GET', '/v1/pools', undefined, { token: srv.adminToken.slice(0, -2) + 'xx' });
  assert.is(wrong.status, 401);
  assert.is(wrong.body.error.code, 'ADMIN_TOKEN_INVALID');
  assert.not.match(wrong.text, srv.adminToken);
});

test('unknown path is 404 and wrong method is 405, both as JSON errors', async () => {
  const r = await srv.admin('GET', '/v1/nothing');
  assert.is(r.status, 404);
  assert.is(r.body.error.code, 'NOT_FOUND');
  const m = await srv.admin('PUT', '/v1/pools');
  assert.is(m.status, 405);
  assert.is(m.body.error.code, 'METHOD_NOT_ALLOWED');
});

test('a JSON body over 1 MiB is 413 BODY_TOO_LARGE', async () => {
  const r = await srv.admin('POST', '/v1/stacks', { name: 'big', phases: [{ name: 'p', script: 'x'.repeat(1100 * 1024) }] });
  assert.is(r.status, 413);
  assert.is(r.body.error.code, 'BODY_TOO_LARGE');
});

test('worker registers, a queued run reaches its waiting long-poll at once, phases flow to FINISHED', async () => {
  const wid = await register(poolA.cert, { instance_id: 'i-1' });
  await createStack('flow', poolA.id);
  // The worker is waiting (long-poll of 30 s) before the run exists.
  const events: string[] = [];
  const held = await srv.heldPolls();
  const poll = srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=30', { workerId: wid, accept: true, runId: null })
    .then((r) => { events.push('poll answered'); return r; });
  await srv.waitHeldPolls(held + 1);
  events.push('triggering');
  const trig = await srv.admin('POST', '/v1/stacks/flow/runs', { proposed: false, workspace: SEALED('ws0').toString('base64') });
  assert.is(trig.status, 201, trig.text);
  const runId = trig.body.run.id;
  const got = await poll;
  // Answered because of the trigger (a 30 s wait ending on its own carries no assignment).
  assert.equal(events, ['triggering', 'poll answered']);
  assert.is(got.status, 200);
  const a = got.body.assignment;
  assert.is(a.runId, runId);
  assert.is(a.phase, 0);
  assert.is(a.phaseName, 'plan');
  assert.is(a.phaseCount, 2);
  assert.is(a.script, 'echo plan');
  assert.equal(a.env, { A: '1' });
  assert.is(a.workspace, true);
  assert.is(a.recipients.length, 1);
  assert.equal(got.body.control, { drain: false, cycle: false, cancel: [] });

  // The sealed workspace downloads byte for byte.
  const ws = await srv.worker(poolA.cert, 'GET', `/v1/worker/runs/${runId}/workspace`);
  assert.is(ws.status, 200);
  assert.ok(ws.raw.equals(SEALED('ws0')));

  assert.is((await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid })).status, 200);
  // Logs: seq 0, 1; retry of 0 ignored; a gap is 409 with nextSeq.
  let r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=0`, Buffer.from('line one\n'));
  assert.equal(r.body, { nextSeq: 1 });
  r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=1`, Buffer.from('line two\n'));
  assert.equal(r.body, { nextSeq: 2 });
  r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=0`, Buffer.from('line one\n'));
  assert.equal(r.body, { nextSeq: 2 });
  r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=5`, Buffer.from('lost?\n'));
  assert.is(r.status, 409);
  assert.is(r.body.error.code, 'LOG_SEQ_GAP');
  assert.is(r.body.nextSeq, 2);
  const st = await srv.worker(poolA.cert, 'GET', `/v1/worker/runs/${runId}/phases/0`);
  assert.equal(st.body, { state: 'RUNNING', cancel: false, logs: { nextSeq: 2, bytes: 18 } });

  // Result claiming more chunks than stored is refused; then the real one.
  r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 3 });
  assert.is(r.status, 409);
  assert.is(r.body.error.code, 'LOG_SEQ_GAP');
  const up = await srv.worker(poolA.cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, SEALED('ws1'));
  assert.is(up.status, 200, up.text);
  r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 2, workspaceUploaded: true });
  assert.is(r.status, 200, r.text);
  // Identical repeat is fine; a different outcome is a conflict.
  assert.is((await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 2 })).status, 200);
  const conflict = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'failed', exitCode: 1, logSeq: 2 });
  assert.is(conflict.body.error.code, 'RESULT_CONFLICT');

  // Next phase needs confirmation.
  let run = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
  assert.is(run.state, 'UNCONFIRMED');
  assert.is(run.phase, 1);
  assert.is(run.phases[0].state, 'SUCCEEDED');
  assert.is(run.phases[0].logBytes, 18);
  const logs = await srv.admin('GET', `/v1/runs/${runId}/logs`);
  assert.is(logs.text, 'line one\nline two\n');

  // Confirm wakes the waiting worker with phase 1 and the workspace of phase 0.
  const held2 = await srv.heldPolls();
  const poll2 = srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=30', { workerId: wid, accept: true, runId: null });
  await srv.waitHeldPolls(held2 + 1);
  // QUEUED, or already RUNNING when the waiting worker took it in the same step.
  assert.ok(['QUEUED', 'RUNNING'].includes((await srv.admin('POST', `/v1/runs/${runId}/confirm`)).body.run.state));
  const a2 = (await poll2).body.assignment;
  assert.is(a2.runId, runId);
  assert.is(a2.phase, 1);
  assert.is(a2.script, 'echo apply');
  const ws2 = await srv.worker(poolA.cert, 'GET', `/v1/worker/runs/${runId}/workspace`);
  assert.ok(ws2.raw.equals(SEALED('ws1')));
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/1/start`, { workerId: wid });
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/1/logs?seq=0`, Buffer.from('applied\n'));
  r = await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/1/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 1 });
  assert.is(r.status, 200);
  run = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
  assert.is(run.state, 'FINISHED');
  assert.is((await srv.admin('GET', `/v1/runs/${runId}/logs?phase=1`)).text, 'applied\n');
  assert.is((await srv.admin('GET', `/v1/runs/${runId}/logs`)).text, 'line one\nline two\napplied\n');
  const admWs = await srv.admin('GET', `/v1/runs/${runId}/workspace`);
  assert.ok(admWs.raw.equals(SEALED('ws1')));
  await srv.worker(poolA.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('logs?follow=1 streams new chunks and ends when the run ends', async () => {
  const wid = await register(poolA.cert);
  await createStack('follow', poolA.id, [{ name: 'only', script: 'true' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/follow/runs', {})).body.run.id;
  const got = (await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body;
  assert.is(got.assignment.runId, runId);
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid });
  // The follower must have streamed the first chunk before the second exists.
  let sawFirst!: () => void;
  const firstStreamed = new Promise<void>((r) => { sawFirst = r; });
  const follow = srv.admin('GET', `/v1/runs/${runId}/logs?follow=1`, undefined, { onText: (t) => { if (t === 'a\n') sawFirst(); } });
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=0`, Buffer.from('a\n'));
  await Promise.race([firstStreamed, follow.then((r) => { throw new Error(`the follow ended before streaming the first chunk: ${r.status} ${r.text}`); })]);
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=1`, Buffer.from('b\n'));
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'failed', exitCode: 3, logSeq: 2 });
  const r = await follow;
  assert.is(r.status, 200);
  assert.is(r.text, 'a\nb\n');
  const run = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
  assert.is(run.state, 'FAILED');
  assert.match(run.reason, /exit code 3/);
  await srv.worker(poolA.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('another pool\'s certificate asking for a run it was not given is 404', async () => {
  const wa = await register(poolA.cert);
  await createStack('isolated', poolA.id, [{ name: 'only', script: 'true' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/isolated/runs', {})).body.run.id;
  const got = (await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wa, accept: true, runId: null })).body;
  assert.is(got.assignment.runId, runId);
  const wb = await register(poolB.cert);
  for (const [m, p, body] of [
    ['GET', `/v1/worker/runs/${runId}/phases/0`, undefined],
    ['POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wb }],
    ['POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=0`, Buffer.from('x')],
    ['GET', `/v1/worker/runs/${runId}/workspace`, undefined],
    ['POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wb, outcome: 'succeeded', exitCode: 0, logSeq: 0 }],
  ] as const) {
    const r = await srv.worker(poolB.cert, m, p, body);
    assert.is(r.status, 404, `${m} ${p}: ${r.text}`);
  }
  // Pool B's worker id used with pool A's certificate is not found either.
  const cross = await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: wb, accept: true });
  assert.is(cross.status, 404);
  assert.is(cross.body.error.code, 'WORKER_NOT_FOUND');
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
  await srv.worker(poolA.cert, 'POST', '/v1/worker/deregister', { workerId: wa });
  await srv.worker(poolB.cert, 'POST', '/v1/worker/deregister', { workerId: wb });
});

test('workspace over --max-workspace-size is 413 and nothing is kept', async () => {
  const wid = await register(poolA.cert);
  await createStack('bigws', poolA.id, [{ name: 'only', script: 'true' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/bigws/runs', {})).body.run.id;
  await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null });
  await srv.worker(poolA.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid });
  const big = Buffer.concat([SEALED(''), Buffer.alloc(300 * 1024, 7)]);
  const r = await srv.worker(poolA.cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, big);
  assert.is(r.status, 413);
  assert.is(r.body.error.code, 'WORKSPACE_TOO_LARGE');
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')), []);
  assert.not.ok(readdirSync(join(srv.dataDir, 'workspaces')).includes(`${runId}.age`));
  const ws = await srv.worker(poolA.cert, 'GET', `/v1/worker/runs/${runId}/workspace`);
  assert.is(ws.body.error.code, 'NO_WORKSPACE');
  // Without a Content-Length the limit is enforced while streaming.
  const streamed = await new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = request({
      method: 'PUT', host: '127.0.0.1', port: srv.port, path: `/v1/worker/runs/${runId}/phases/0/workspace`,
      // A keep-alive agent, as launchers use: with `Connection: close` the
      // server would end the connection right after its answer.
      agent: new Agent({ keepAlive: true, ca: srv.caPem, cert: poolA.cert.certPem, key: poolA.cert.keyPem }),
      headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    }, (res) => {
      const c: Buffer[] = [];
      res.on('data', (d: Buffer) => c.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(c).toString()) }));
    });
    req.on('error', reject);
    req.write(SEALED(''));
    let sent = 0;
    const pump = (): void => {
      // Keep sending (16 times the limit at most) until the server answers.
      while (sent < 4 * 1024 * 1024 && !req.destroyed) {
        sent += 16 * 1024;
        if (!req.write(Buffer.alloc(16 * 1024, 1))) { req.once('drain', pump); return; }
      }
      req.end();
    };
    req.on('response', () => { sent = Infinity; });
    pump();
  });
  assert.is(streamed.status, 413);
  assert.is(streamed.body.error.code, 'WORKSPACE_TOO_LARGE');
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')), []);
  // The raw trigger form streams and enforces the same limit.
  const t = await srv.admin('POST', '/v1/stacks/bigws/runs?proposed=1', big);
  assert.is(t.status, 413);
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')), []);
  // Plaintext is refused outright.
  const plain = await srv.admin('POST', '/v1/stacks/bigws/runs?proposed=1', Buffer.from('just a tar, not sealed'));
  assert.is(plain.body.error.code, 'NOT_SEALED');
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
  await srv.worker(poolA.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('drain by metadata tag reaches a waiting worker at once; undrained it gets work again', async () => {
  const wid = await register(poolB.cert, { instance_id: 'i-drain-me' });
  const other = await register(poolB.cert, { instance_id: 'i-other' });
  // First poll after registration settles the control state.
  const held = await srv.heldPolls();
  const poll = srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=30', { workerId: wid, accept: true, runId: null });
  await srv.waitHeldPolls(held + 1);
  const d = await srv.admin('POST', '/v1/workers/drain', { metadata: { instance_id: 'i-drain-me' } });
  assert.is(d.status, 200);
  assert.equal(d.body.workers.map((w: { id: string }) => w.id), [wid]);
  const got = (await poll).body;
  assert.is(got.assignment, null);
  assert.is(got.control.drain, true);
  const list = (await srv.admin('GET', `/v1/workers?pool=${poolB.id}&metadata=instance_id=i-drain-me`)).body.workers;
  assert.is(list.length, 1);
  assert.is(list[0].status, 'DRAINED');
  // A drained worker that still says accept: true gets no run.
  await createStack('drainstack', poolB.id, [{ name: 'only', script: 'true' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/drainstack/runs', {})).body.run.id;
  const p2 = await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: wid, accept: true, runId: null });
  assert.is(p2.body.assignment, null);
  await srv.admin('POST', '/v1/workers/undrain', { ids: [wid] });
  const p3 = await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null });
  assert.is(p3.body.assignment?.runId, runId);
  assert.is(p3.body.control.drain, false);
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
  await srv.worker(poolB.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
  await srv.worker(poolB.cert, 'POST', '/v1/worker/deregister', { workerId: other });
});

test('cancel of a started phase is delivered in the poll; the run ends CANCELED when the worker reports', async () => {
  const wid = await register(poolB.cert);
  await createStack('cancelme', poolB.id, [{ name: 'only', script: 'sleep 100' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/cancelme/runs', {})).body.run.id;
  const a = (await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, runId);
  await srv.worker(poolB.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid });
  const held = await srv.heldPolls();
  const busyPoll = srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=30', { workerId: wid, accept: false, runId });
  await srv.waitHeldPolls(held + 1);
  const c = await srv.admin('POST', `/v1/runs/${runId}/cancel`);
  assert.is(c.body.run.state, 'RUNNING');
  assert.is(c.body.run.cancelRequested, true);
  const got = (await busyPoll).body;
  assert.equal(got.control.cancel, [runId]);
  const st = await srv.worker(poolB.cert, 'GET', `/v1/worker/runs/${runId}/phases/0`);
  assert.is(st.body.cancel, true);
  await srv.worker(poolB.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'canceled', exitCode: 137, logSeq: 0 });
  assert.is((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state, 'CANCELED');
  await srv.worker(poolB.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('prioritize moves a run to the head of its pool queue; delete refuses a busy pool', async () => {
  await createStack('prio', poolB.id, [{ name: 'only', script: 'true' }]);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await srv.admin('POST', '/v1/stacks/prio/runs', {})).body.run.id);
  let q = (await srv.admin('GET', `/v1/pools/${poolB.id}/queue`)).body.runs.map((r: { id: string }) => r.id);
  assert.equal(q, ids);
  await srv.admin('POST', `/v1/runs/${ids[2]}/prioritize`);
  q = (await srv.admin('GET', `/v1/pools/${poolB.id}/queue`)).body.runs.map((r: { id: string }) => r.id);
  assert.equal(q, [ids[2], ids[0], ids[1]]);
  const wid = await register(poolB.cert);
  const a = (await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, ids[2]);
  const del = await srv.admin('DELETE', `/v1/pools/${poolB.id}`);
  assert.is(del.status, 409);
  assert.is(del.body.error.code, 'POOL_BUSY');
  for (const id of ids) await srv.admin('POST', `/v1/runs/${id}/cancel`);
  await srv.worker(poolB.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('cycle: registered workers are told to exit after their current run; later ones are not', async () => {
  const before = await register(poolA.cert);
  const held = await srv.heldPolls();
  const poll = srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=30', { workerId: before, accept: true, runId: null });
  await srv.waitHeldPolls(held + 1);
  const c = await srv.admin('POST', `/v1/pools/${poolA.id}/cycle`);
  assert.is(c.status, 200);
  assert.is(c.body.pool.cycle, 1);
  const got = (await poll).body;
  assert.is(got.control.cycle, true);
  const after = await register(poolA.cert);
  const p2 = await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: after, accept: true, runId: null });
  assert.is(p2.body.control.cycle, false);
  // A cycled worker gets no new run.
  await createStack('cyclestack', poolA.id, [{ name: 'only', script: 'true' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/cyclestack/runs', {})).body.run.id;
  const p3 = await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: before, accept: true, runId: null });
  assert.is(p3.body.assignment, null);
  const p4 = await srv.worker(poolA.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: after, accept: true, runId: null });
  assert.is(p4.body.assignment?.runId, runId);
  await srv.admin('POST', `/v1/runs/${runId}/cancel`);
  for (const w of [before, after]) await srv.worker(poolA.cert, 'POST', '/v1/worker/deregister', { workerId: w });
});

test('stack validation names the field at fault', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ name: 'v1', pool: poolA.id, phases: [] }, /Invalid field "phases"/],
    [{ name: 'v2', pool: poolA.id, env: { 'BAD-NAME': 'x' }, phases: [{ name: 'p', script: 's' }] }, /Invalid field "env.BAD-NAME"/],
    [{ name: 'bad name', phases: [{ name: 'p', script: 's' }] }, /Invalid field "name"/],
    [{ name: 'v3', kind: 'job', phases: [{ name: 'p', script: 's' }] }, /Invalid field "kind": expected "stack" or "module"/],
    [{ name: 'v4', phases: [{ name: 'p', script: 's' }, { name: 'p', script: 's' }] }, /phases\[1\]\.name/],
    [{ name: 'v5', secretEnv: 'bm90IHNlYWxlZA==', phases: [{ name: 'p', script: 's' }] }, /Invalid field "secretEnv"/],
  ];
  for (const [body, re] of cases) {
    const r = await srv.admin('POST', '/v1/stacks', body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.is(r.body.error.code, 'INVALID_FIELD');
    assert.match(r.body.error.message, re);
  }
  const nopool = await srv.admin('POST', '/v1/stacks', { name: 'v6', pool: 'pool_missing', phases: [{ name: 'p', script: 's' }] });
  assert.is(nopool.body.error.code, 'POOL_NOT_FOUND');
  // Detached stacks cannot be triggered; attaching by name works.
  assert.is((await srv.admin('POST', '/v1/stacks', { name: 'detached', kind: 'module', phases: [{ name: 'p', script: 's' }] })).status, 201);
  assert.is((await srv.admin('POST', '/v1/stacks/detached/runs', {})).body.error.code, 'STACK_NO_POOL');
  const att = await srv.admin('PATCH', '/v1/stacks/detached', { pool: 'pool-b' });
  assert.is(att.body.stack.pool, poolB.id);
  assert.is(att.body.stack.kind, 'module');
  assert.is((await srv.admin('DELETE', '/v1/stacks/detached')).status, 200);
  assert.is((await srv.admin('GET', '/v1/stacks/detached')).status, 404);
});

test('discard ends an UNCONFIRMED run; run list filters by stack and state', async () => {
  await createStack('confirmfirst', poolB.id, [{ name: 'apply', script: 'true', confirm: true }]);
  const run = (await srv.admin('POST', '/v1/stacks/confirmfirst/runs', { proposed: true })).body.run;
  assert.is(run.state, 'UNCONFIRMED');
  assert.is(run.proposed, true);
  assert.is((await srv.admin('POST', `/v1/runs/${run.id}/confirm`)).status, 200);
  assert.is((await srv.admin('POST', `/v1/runs/${run.id}/discard`)).body.error.code, 'RUN_STATE');
  const second = (await srv.admin('POST', '/v1/stacks/confirmfirst/runs', {})).body.run;
  const d = await srv.admin('POST', `/v1/runs/${second.id}/discard`);
  assert.is(d.body.run.state, 'DISCARDED');
  assert.is(d.body.run.reason, 'discarded');
  const listed = (await srv.admin('GET', '/v1/runs?stack=confirmfirst&state=DISCARDED')).body.runs;
  assert.equal(listed.map((r: { id: string }) => r.id), [second.id]);
  assert.is((await srv.admin('POST', `/v1/runs/${second.id}/cancel`)).body.error.code, 'RUN_STATE');
  await srv.admin('POST', `/v1/runs/${run.id}/cancel`);
});

test('a launcher that polls without the phase it started has lost it: worker-lost, never re-run', async () => {
  const wid = await register(poolB.cert);
  await createStack('forgotten', poolB.id, [{ name: 'apply', script: 'true' }]);
  const runId = (await srv.admin('POST', '/v1/stacks/forgotten/runs', {})).body.run.id;
  const a = (await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, runId);
  await srv.worker(poolB.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid });
  const p = await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: wid, accept: true, runId: null });
  assert.is(p.body.assignment, null);
  const run = (await srv.admin('GET', `/v1/runs/${runId}`)).body.run;
  assert.is(run.state, 'FAILED');
  assert.is(run.reason, 'worker lost');
  // A run id the server does not have on this worker comes back as a cancel.
  const stale = await srv.worker(poolB.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: wid, accept: false, runId });
  assert.equal(stale.body.control.cancel, [runId]);
  await srv.worker(poolB.cert, 'POST', '/v1/worker/deregister', { workerId: wid });
});

test('admin changes are audit lines without secrets', async () => {
  const csr = opensslCsr(dir, 'audited').csrPem;
  const r = await srv.admin('POST', '/v1/pools', { name: 'audited', csr });
  const lines = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const line = lines.find((l) => l.action === 'POST /v1/pools' && l.pool === r.body.pool.id);
  assert.ok(line, 'pool creation is audited');
  assert.is(line.status, 201);
  assert.is(line.remote, '127.0.0.1');
  const text = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8') + srv.stderr;
  assert.not.ok(text.includes(r.body.token), 'no token');
  assert.not.ok(text.includes('BEGIN CERTIFICATE REQUEST'), 'no CSR');
  assert.not.ok(text.includes(srv.adminToken), 'no admin token');
  assert.ok(lines.some((l) => l.action === 'POST /v1/workers/drain'));
  // Refused credentials are logged as warnings, without what was presented.
  assert.ok(srv.logLines().some((l) => l.msg === 'Request refused' && l.code === 'ADMIN_TOKEN_INVALID' && l.level === 'warn'));
});

test.run();
