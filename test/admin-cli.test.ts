// `launcher admin` end to end: the CLI as a subprocess against a real
// `launcher server` subprocess over real HTTPS (test/helpers/server.ts), CSRs
// from the openssl CLI, sealed secrets and workspaces opened with the age CLI,
// and the worker side played through the real worker API with the pool
// certificate (mutual TLS).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { startTestServer, type ClientCert, type TestServer } from './helpers/server.ts';
import { decodeToken } from '../lib/token.ts';
import { runLauncher, type CliOptions, type CliResult } from './helpers/cli.ts';


let srv: TestServer;
let tmp: string;
let env: Record<string, string>;

/** `launcher admin ARGS` with the test's admin environment (or `o.env` instead). */
const cli = (args: string[], o: CliOptions = {}): Promise<CliResult> => runLauncher(['admin', ...args], { ...o, env: o.env ?? env });

/** A running CLI whose exit we await later (drain --wait, logs --follow). */
function cliBackground(args: string[]): { done: Promise<CliResult>; exited: () => boolean; stderrMatches: (re: RegExp) => Promise<void>; stdoutMatches: (re: RegExp) => Promise<void> } {
  let finished = false;
  const text = { err: '', out: '' };
  const waiters: { stream: 'err' | 'out'; re: RegExp; resolve: () => void }[] = [];
  const wake = (): void => {
    for (const w of waiters.filter((x) => x.re.test(text[x.stream]))) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  };
  const done = cli(args, {
    onErr: (t) => { text.err = t; wake(); },
    onOut: (t) => { text.out = t; wake(); },
  }).then((r) => { finished = true; return r; });
  const matches = (stream: 'err' | 'out') => (re: RegExp) => new Promise<void>((resolve, reject) => {
    if (re.test(text[stream])) return resolve();
    waiters.push({ stream, re, resolve });
    void done.then((r) => reject(new Error(`exited (${r.code}) before printing ${re} on std${stream}: ${r.err}`)));
  });
  return { done, exited: () => finished, stderrMatches: matches('err'), stdoutMatches: matches('out') };
}

function ok(r: CliResult, what: string): string {
  assert.is(r.code, 0, `${what} failed (${r.code}): ${r.err}`);
  return r.out;
}

function csr(name: string): { key: string; csr: string } {
  const key = join(tmp, `${name}.key`);
  const csrPath = join(tmp, `${name}.csr`);
  // The seed's command, with a 2048-bit key to keep the test quick.
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csrPath, '-subj', `/O=${name}`], { stdio: 'ignore' });
  return { key, csr: csrPath };
}

function ageOpen(sealed: Buffer, keyPath: string): Buffer {
  return execFileSync('age', ['-d', '-i', keyPath], { input: sealed });
}

/** Every file under `dir`, for plaintext greps of the server's data directory. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function dataDirContains(needle: string): string[] {
  return filesUnder(srv.dataDir).filter((f) => readFileSync(f).includes(needle));
}

async function worker(cert: ClientCert, path: string, body: unknown): Promise<any> {
  const r = await srv.worker(cert, 'POST', path, body);
  assert.ok(r.status < 300, `${path}: ${r.status} ${r.text}`);
  return r.body;
}

let prod: { key: string; csr: string; token: string; poolId: string; cert: ClientCert };

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'admin-cli-test-'));
  srv = await startTestServer();
  env = { LAUNCHER_SERVER: srv.url, LAUNCHER_ADMIN_TOKEN: srv.adminToken, LAUNCHER_CA: srv.caPath };
});

test.after(async () => {
  await srv?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('pool create prints only the token; it decodes and holds the pool certificate for the CSR key', async () => {
  const k = csr('prod');
  const r = await cli(['pool', 'create', 'prod', '--csr', k.csr]);
  const out = ok(r, 'pool create');
  assert.match(out, /^[A-Za-z0-9+/]+=*\n$/, 'stdout is the token line alone');
  const token = decodeToken(out.trim());
  const cert = new X509Certificate(token.certificate);
  const csrKey = execFileSync('openssl', ['req', '-in', k.csr, '-noout', '-pubkey']).toString();
  assert.ok(cert.publicKey.equals(createPublicKey(csrKey)), 'certificate is for the CSR key');
  assert.ok(cert.verify(new X509Certificate(srv.caPem).publicKey), 'issued by the server CA');
  assert.is(token.caCertificate.trim(), srv.caPem.trim());
  prod = { ...k, token: out.trim(), poolId: token.poolId, cert: { certPem: token.certificate, keyPem: readFileSync(k.key, 'utf8') } };
});

test('pool list and show, plain and --json', async () => {
  const plain = ok(await cli(['pool', 'list']), 'pool list');
  assert.match(plain, /^ID\s+NAME\s+WORKERS\s+BUSY\s+PENDING\s+KEYS$/m);
  assert.match(plain, new RegExp(`^${prod.poolId}\\s+prod\\s+0\\s+0\\s+0\\s+1$`, 'm'));
  const json = JSON.parse(ok(await cli(['pool', 'list', '--json']), 'pool list --json'));
  assert.equal(json.pools.map((p: { name: string }) => p.name), ['prod']);
  const show = ok(await cli(['pool', 'show', 'prod']), 'pool show');
  assert.match(show, new RegExp(`^id:\\s+${prod.poolId}$`, 'm'));
  assert.match(show, /^key_\S+\s+active\s+[0-9a-f]+$/m);
  const showJson = JSON.parse(ok(await cli(['pool', 'show', prod.poolId, '--json']), 'pool show --json'));
  assert.is(showJson.pool.keys[0].state, 'active');
});

test('pool update --description changes it (pool show says so); missing or too long is a usage error', async () => {
  const out = ok(await cli(['pool', 'update', 'prod', '--description', 'lab rack, platform team']), 'pool update');
  assert.is(out, 'Updated pool prod: lab rack, platform team\n');
  assert.match(ok(await cli(['pool', 'show', prod.poolId]), 'pool show'), /^description:\s+lab rack, platform team$/m);
  const json = JSON.parse(ok(await cli(['pool', 'update', prod.poolId, '--description', '', '--json']), 'pool update --json'));
  assert.is(json.pool.description, '');
  const missing = await cli(['pool', 'update', 'prod']);
  assert.is(missing.code, 2);
  assert.match(missing.err, /Missing --description/);
  const long = await cli(['pool', 'update', 'prod', '--description', 'x'.repeat(1025)]);
  assert.is(long.code, 2);
  assert.match(long.err, /--description: it has 1025 characters; expected at most 1024/);
  const unknown = await cli(['pool', 'update', 'nope', '--description', 'x']);
  assert.is(unknown.code, 1);
  assert.match(unknown.err, /\(POOL_NOT_FOUND\)/);
  ok(await cli(['pool', 'update', 'prod', '--description', 'lab rack']), 'pool update');
  const lines = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.action === 'PATCH /v1/pools/{pool}' && l.status === 200 && l.pool === prod.poolId), 'audited');
});

test('stack create seals --secret locally: no plaintext on the server, age opens the stored blob', async () => {
  const r = await cli(['stack', 'create', 'infra', '--pool', 'prod', '--image', 'busybox:latest', '--env', 'PLAIN=visible',
    '--secret', 'K=topsecretvalue', '--phase', 'plan=echo plan', '--phase', 'apply=echo apply', '--confirm', 'apply']);
  const id = ok(r, 'stack create').trim();
  assert.match(id, /^stk_/);
  assert.equal(dataDirContains('topsecretvalue'), [], 'secret plaintext absent from the data directory');
  assert.equal(dataDirContains(Buffer.from('topsecretvalue').toString('base64').slice(0, 16)), []);
  const shown = JSON.parse(ok(await cli(['stack', 'show', id, '--json']), 'stack show --json')).stack;
  assert.equal(shown.phases, [
    { name: 'plan', script: 'echo plan', confirm: false },
    { name: 'apply', script: 'echo apply', confirm: true },
  ]);
  assert.equal(shown.env, { PLAIN: 'visible' });
  const opened = ageOpen(Buffer.from(shown.secretEnv, 'base64'), prod.key);
  assert.equal(JSON.parse(opened.toString()), { K: 'topsecretvalue' });
  const plain = ok(await cli(['stack', 'show', 'infra']), 'stack show');
  assert.match(plain, /^secret env: sealed$/m);
  assert.not.match(plain, /topsecretvalue/);
  assert.match(plain, /^1\s+apply\s+yes\s+echo apply$/m);
});

let runId = '';

test('run trigger --workspace tars and seals the directory; the server holds only ciphertext', async () => {
  const ws = join(tmp, 'ws');
  mkdirSync(join(ws, 'sub'), { recursive: true });
  writeFileSync(join(ws, 'main.tf'), 'workspace-marker-7f3a91\n');
  writeFileSync(join(ws, 'sub', 'vars.txt'), 'x=1\n');
  const out = ok(await cli(['run', 'trigger', 'infra', '--workspace', ws]), 'run trigger');
  runId = out.trim();
  assert.match(runId, /^run_[0-9a-f]+$/);
  assert.equal(dataDirContains('workspace-marker-7f3a91'), []);
  const sealed = await srv.admin('GET', `/v1/runs/${runId}/workspace`);
  assert.is(sealed.status, 200);
  const tarFile = join(tmp, 'ws.tar');
  writeFileSync(tarFile, ageOpen(sealed.raw, prod.key));
  const listing = execFileSync('tar', ['-tf', tarFile]).toString().split('\n').filter(Boolean).sort();
  assert.equal(listing, ['main.tf', 'sub/', 'sub/vars.txt']);
  assert.is(execFileSync('tar', ['-xOf', tarFile, 'main.tf']).toString(), 'workspace-marker-7f3a91\n');
});

test('run list, run show and queue list, plain and --json', async () => {
  const list = ok(await cli(['run', 'list', '--stack', 'infra']), 'run list');
  assert.match(list, new RegExp(`^${runId}\\s+infra\\s+${prod.poolId}\\s+QUEUED\\s+0 plan \\(of 2\\)\\s+tracked`, 'm'));
  const listJson = JSON.parse(ok(await cli(['run', 'list', '--state', 'queued', '--json']), 'run list --json'));
  assert.equal(listJson.runs.map((r: { id: string }) => r.id), [runId]);
  const show = ok(await cli(['run', 'show', runId]), 'run show');
  assert.match(show, /^state:\s+QUEUED$/m);
  assert.match(show, /^workspace:\s+sealed$/m);
  assert.match(show, /^1\s+apply \(confirm\)\s+PENDING/m);
  const queue = JSON.parse(ok(await cli(['queue', 'list', 'prod', '--json']), 'queue list'));
  assert.equal(queue.runs.map((r: { id: string }) => r.id), [runId]);
});

test('queue prioritize moves a run to the head of the queue', async () => {
  const second = ok(await cli(['run', 'trigger', 'infra', '--proposed']), 'run trigger --proposed').trim();
  let queue = JSON.parse(ok(await cli(['queue', 'list', 'prod', '--json']), 'queue list')).runs.map((r: { id: string }) => r.id);
  assert.equal(queue, [runId, second]);
  ok(await cli(['queue', 'prioritize', second]), 'queue prioritize');
  queue = JSON.parse(ok(await cli(['queue', 'list', 'prod', '--json']), 'queue list')).runs.map((r: { id: string }) => r.id);
  assert.equal(queue, [second, runId]);
  const canceled = ok(await cli(['run', 'cancel', second]), 'run cancel');
  assert.match(canceled, new RegExp(`^${second} CANCELED$`, 'm'));
  const show = JSON.parse(ok(await cli(['run', 'show', second, '--json']), 'run show')).run;
  assert.is(show.proposed, true);
  assert.is(show.state, 'CANCELED');
});

let workerId = '';

test('worker list shows a registered launcher with its tags; --metadata filters', async () => {
  const reg = await worker(prod.cert, '/v1/worker/register', {
    workerId: null, metadata: { instance_id: 'i-0abc', zone: 'a' }, version: '0.1.0',
    host: { hostname: 'host-1', os: 'linux', arch: 'x64', docker: '20.10.24' },
  });
  workerId = reg.workerId;
  const list = ok(await cli(['worker', 'list', '--pool', 'prod']), 'worker list');
  assert.match(list, new RegExp(`^${workerId}\\s+${prod.poolId}\\s+IDLE\\s+instance_id=i-0abc,zone=a\\s+0\\.1\\.0\\s+host-1 linux/x64 docker 20\\.10\\.24`, 'm'));
  const none = JSON.parse(ok(await cli(['worker', 'list', '--metadata', 'instance_id=i-other', '--json']), 'worker list --metadata'));
  assert.equal(none.workers, []);
  const one = JSON.parse(ok(await cli(['worker', 'list', '--metadata', 'instance_id=i-0abc', '--metadata', 'zone=a', '--json']), 'worker list --metadata'));
  assert.equal(one.workers.map((w: { id: string }) => w.id), [workerId]);
});

test('run logs prints stored logs; --follow streams until the run ends; confirm and discard', async () => {
  const poll = await worker(prod.cert, '/v1/worker/poll?wait=5', { workerId, accept: true, runId: null });
  assert.is(poll.assignment?.runId, runId);
  const base = `/v1/worker/runs/${runId}/phases/0`;
  await worker(prod.cert, `${base}/start`, { workerId });
  let r = await srv.worker(prod.cert, 'POST', `${base}/logs?seq=0`, Buffer.from('first line\n'));
  assert.is(r.status, 200, r.text);
  const logs = ok(await cli(['run', 'logs', runId]), 'run logs');
  assert.is(logs, 'first line\n');
  await worker(prod.cert, `${base}/result`, { workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 1, workspaceUploaded: false });
  let show = JSON.parse(ok(await cli(['run', 'show', runId, '--json']), 'run show')).run;
  assert.is(show.state, 'UNCONFIRMED');
  ok(await cli(['run', 'confirm', runId]), 'run confirm');
  const poll2 = await worker(prod.cert, '/v1/worker/poll?wait=5', { workerId, accept: true, runId: null });
  assert.is(poll2.assignment?.phase, 1);
  await worker(prod.cert, `/v1/worker/runs/${runId}/phases/1/start`, { workerId });
  // Follow phase 1 from the start: the CLI must stay attached until the phase ends.
  const follow = cliBackground(['run', 'logs', runId, '--phase', '1', '--follow']);
  r = await srv.worker(prod.cert, 'POST', `/v1/worker/runs/${runId}/phases/1/logs?seq=0`, Buffer.from('apply output\n'));
  assert.is(r.status, 200, r.text);
  // It has streamed the first chunk and is still attached while the phase runs.
  await follow.stdoutMatches(/^apply output\n$/);
  assert.not.ok(follow.exited(), 'follow stays attached while the phase runs');
  r = await srv.worker(prod.cert, 'POST', `/v1/worker/runs/${runId}/phases/1/logs?seq=1`, Buffer.from('apply done\n'));
  assert.is(r.status, 200, r.text);
  await worker(prod.cert, `/v1/worker/runs/${runId}/phases/1/result`, { workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 2, workspaceUploaded: false });
  const followed = await follow.done;
  assert.is(followed.code, 0, followed.err);
  assert.is(followed.out, 'apply output\napply done\n');
  show = JSON.parse(ok(await cli(['run', 'show', runId, '--json']), 'run show')).run;
  assert.is(show.state, 'FINISHED');
  // discard: a run waiting for confirmation of a first phase with confirm.
  ok(await cli(['stack', 'update', 'infra', '--phase', 'apply=echo apply', '--confirm', 'apply']), 'stack update');
  const waiting = ok(await cli(['run', 'trigger', 'infra']), 'run trigger').trim();
  assert.is(JSON.parse(ok(await cli(['run', 'show', waiting, '--json']), 'run show')).run.state, 'UNCONFIRMED');
  const discarded = ok(await cli(['run', 'discard', waiting]), 'run discard');
  assert.match(discarded, new RegExp(`^${waiting} DISCARDED$`, 'm'));
  const again = await cli(['run', 'confirm', waiting]);
  assert.is(again.code, 1);
  assert.match(again.err, /\(RUN_STATE\)/);
});

test('worker drain --metadata --wait blocks until the busy worker finishes; undrain', async () => {
  ok(await cli(['stack', 'update', 'infra', '--phase', 'plan=echo plan']), 'stack update');
  const id = ok(await cli(['run', 'trigger', 'infra']), 'run trigger').trim();
  const poll = await worker(prod.cert, '/v1/worker/poll?wait=5', { workerId, accept: true, runId: null });
  assert.is(poll.assignment?.runId, id);
  await worker(prod.cert, `/v1/worker/runs/${id}/phases/0/start`, { workerId });
  const drain = cliBackground(['worker', 'drain', '--metadata', 'instance_id=i-0abc', '--wait']);
  // The drain reaches the worker in its poll reply; then the worker finishes.
  const p = await worker(prod.cert, '/v1/worker/poll?wait=10', { workerId, accept: false, runId: id });
  assert.is(p.control.drain, true);
  // It reports the busy worker and keeps waiting until the run ends.
  await drain.stderrMatches(/Waiting for 1 busy worker/);
  assert.not.ok(drain.exited(), 'drain --wait still waiting while the worker is BUSY');
  await worker(prod.cert, `/v1/worker/runs/${id}/phases/0/result`, { workerId, outcome: 'succeeded', exitCode: 0, error: null, logSeq: 0, workspaceUploaded: false });
  const done = await drain.done;
  assert.is(done.code, 0, done.err);
  assert.match(done.out, new RegExp(`^${workerId}\\s+${prod.poolId}\\s+DRAINED`, 'm'));
  const un = JSON.parse(ok(await cli(['worker', 'undrain', workerId, '--json']), 'worker undrain'));
  assert.is(un.workers[0].drained, false);
});

test('pool key add prints a token for the new key; key retire; reset issues a new token', async () => {
  const k2 = csr('prod2');
  const t2 = decodeToken(ok(await cli(['pool', 'key', 'add', 'prod', '--csr', k2.csr]), 'pool key add').trim());
  assert.is(t2.poolId, prod.poolId);
  const keys = JSON.parse(ok(await cli(['pool', 'show', 'prod', '--json']), 'pool show')).pool.keys;
  assert.is(keys.filter((k: { state: string }) => k.state === 'active').length, 2);
  // A secret sealed now is sealed to both active keys: either private key opens it.
  ok(await cli(['stack', 'update', 'infra', '--secret', 'ROTATE=both-keys-open-this']), 'stack update --secret');
  const blob = Buffer.from(JSON.parse(ok(await cli(['stack', 'show', 'infra', '--json']), 'stack show')).stack.secretEnv, 'base64');
  assert.equal(JSON.parse(ageOpen(blob, prod.key).toString()), { ROTATE: 'both-keys-open-this' });
  assert.equal(JSON.parse(ageOpen(blob, k2.key).toString()), { ROTATE: 'both-keys-open-this' });
  const first = keys.find((k: { state: string; publicKeyPem: string }) => k.state === 'active' && createPublicKey(k.publicKeyPem).equals(createPublicKey(execFileSync('openssl', ['req', '-in', prod.csr, '-noout', '-pubkey']).toString())));
  const retired = ok(await cli(['pool', 'key', 'retire', 'prod', first.id]), 'pool key retire');
  assert.match(retired, /Retired key/);
  const last = await cli(['pool', 'key', 'retire', 'prod', keys.find((k: { id: string }) => k.id !== first.id).id]);
  assert.is(last.code, 1);
  assert.match(last.err, /\(LAST_KEY\)/);
  const k3 = csr('prod3');
  const t3 = ok(await cli(['pool', 'reset', 'prod', '--csr', k3.csr]), 'pool reset').trim();
  assert.is(decodeToken(t3).poolId, prod.poolId);
  const old = await srv.worker({ certPem: t2.certificate, keyPem: readFileSync(k2.key, 'utf8') }, 'POST', '/v1/worker/register', { workerId: null, metadata: {}, version: 'x', host: {} });
  assert.is(old.status, 403, 'the reset pool\'s older certificate is refused');
});

test('stack attach, detach, delete; pool cycle and delete', async () => {
  const k = csr('other');
  ok(await cli(['pool', 'create', 'other', '--csr', k.csr]), 'pool create other');
  const attached = await cli(['stack', 'attach', 'infra', '--pool', 'other']);
  ok(attached, 'stack attach');
  assert.match(attached.err, /sealed to the keys of the pool it was created for/);
  const detached = JSON.parse(ok(await cli(['stack', 'detach', 'infra', '--json']), 'stack detach'));
  assert.is(detached.stack.pool, null);
  const refused = await cli(['run', 'trigger', 'infra']);
  assert.is(refused.code, 1);
  assert.match(refused.err, /\(STACK_NO_POOL\)/);
  ok(await cli(['stack', 'delete', 'infra']), 'stack delete');
  const gone = await cli(['stack', 'show', 'infra']);
  assert.is(gone.code, 1);
  assert.match(gone.err, /\(STACK_NOT_FOUND\)/);
  const cycled = JSON.parse(ok(await cli(['pool', 'cycle', 'other', '--json']), 'pool cycle'));
  assert.is(cycled.pool.cycle, 1);
  ok(await cli(['pool', 'delete', 'other']), 'pool delete');
  const list = JSON.parse(ok(await cli(['pool', 'list', '--json']), 'pool list'));
  assert.not.ok(list.pools.some((p: { name: string }) => p.name === 'other'));
});

test('errors: wrong token exits 1 with the server code; usage errors exit 2; --data reads token and CA', async () => {
  const wrong = await cli(['pool', 'list'], { env: { ...env, LAUNCHER_ADMIN_TOKEN: 'lat_wrongtoken' } });
  assert.is(wrong.code, 1);
  assert.match(wrong.err, /\(ADMIN_TOKEN_INVALID\)/);
  assert.not.match(wrong.err, /lat_wrongtoken/);
  assert.is(wrong.out, '');
  const usage = await cli(['pool', 'create', 'x']);
  assert.is(usage.code, 2);
  assert.match(usage.err, /Missing --csr/);
  const missing = await cli(['pool', 'show', 'pool_doesnotexist']);
  assert.is(missing.code, 1);
  assert.match(missing.err, /\(POOL_NOT_FOUND\)/);
  const noCa = await cli(['pool', 'list'], { env: { LAUNCHER_SERVER: srv.url, LAUNCHER_ADMIN_TOKEN: srv.adminToken } });
  assert.is(noCa.code, 1);
  assert.match(noCa.err, /Cannot trust the server.*--ca FILE/);
  // --data on the server host: token and CA from the data directory.
  const viaData = await cli(['pool', 'list', '--data', srv.dataDir, '--server', srv.url, '--json'], { env: {} });
  assert.is(viaData.code, 0, viaData.err);
  assert.ok(JSON.parse(viaData.out).pools.some((p: { name: string }) => p.name === 'prod'));
});

test.run();
