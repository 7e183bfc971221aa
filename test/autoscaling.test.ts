// The autoscaling recipe in docs/autoscaling.md, run verbatim: its shell
// scripts are cut out of the page and run with sh against a real server
// subprocess, reading /metrics with curl and draining with the real `launcher
// admin` CLI. The cloud's side (set the desired capacity, let a terminating
// machine go) is the one thing not here: two stand-in commands on PATH that
// record what they were asked. The alert rules on the page pass promtool.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const PAGE = readFileSync(join(ROOT, 'docs/autoscaling.md'), 'utf8');

let srv: TestServer;
let tmp: string;
let bin: string;
let env: Record<string, string>;
let pool: { id: string; cert: ClientCert };

/** The fenced block between `<!-- NAME begins -->` and `<!-- NAME ends -->`. */
function block(name: string): string {
  const m = new RegExp(`<!-- ${name.replace('.', '\\.')} begins -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n<!-- ${name.replace('.', '\\.')} ends -->`).exec(PAGE);
  if (!m) throw new Error(`docs/autoscaling.md has no block ${name}`);
  return m[1]!;
}

function script(name: string): string {
  const path = join(tmp, name);
  writeFileSync(path, block(name));
  chmodSync(path, 0o755);
  return path;
}

interface Result { code: number | null; out: string; err: string }
function sh(path: string, args: string[], extra: Record<string, string> = {}, onErr?: (s: string) => void): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn('sh', [path, ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; onErr?.(err); });
    const t = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

async function register(instance: string): Promise<string> {
  const r = await srv.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: null, metadata: { instance_id: instance }, version: '0.1.0', host: {} });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'autoscaling-test-'));
  srv = await startTestServer({ args: ['--metrics-listen', '127.0.0.1:0'] });
  const port = Number(/"msg":"Metrics listening".*?"metricsPort":(\d+)/.exec(srv.stderr)?.[1]);
  const k = opensslCsr(tmp, 'prod');
  const r = await srv.admin('POST', '/v1/pools', { name: 'prod', csr: k.csrPem });
  pool = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem } };
  assert.is((await srv.admin('POST', '/v1/stacks', { name: 'infra', pool: pool.id, phases: [{ name: 'apply', script: 'true' }] })).status, 201);
  // `launcher` on PATH is this tree's launcher; the cloud's commands are stand-ins that record their calls.
  bin = join(tmp, 'bin');
  spawnSync('mkdir', ['-p', bin]);
  const node = join(ROOT, 'node_modules/.bin/node');
  writeFileSync(join(bin, 'launcher'), `#!/bin/sh\ncd ${ROOT} && exec ${node} --import tsx ${join(ROOT, 'launcher.ts')} "$@"\n`);
  writeFileSync(join(bin, 'set_desired_capacity'), `#!/bin/sh\necho "$1" >> ${join(tmp, 'capacity.calls')}\n`);
  writeFileSync(join(bin, 'complete_termination'), `#!/bin/sh\necho "$1" >> ${join(tmp, 'terminated.calls')}\n`);
  for (const f of ['launcher', 'set_desired_capacity', 'complete_termination']) chmodSync(join(bin, f), 0o755);
  env = {
    PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '/root',
    METRICS_URL: `http://127.0.0.1:${port}/metrics`, POOL: 'prod', MIN_MACHINES: '1', MAX_MACHINES: '5',
    LAUNCHER_SERVER: srv.url, LAUNCHER_ADMIN_TOKEN: srv.adminToken, LAUNCHER_CA: srv.caPath,
  };
});

test.after(async () => {
  await srv?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const calls = (name: string): string[] => (existsSync(join(tmp, name)) ? readFileSync(join(tmp, name), 'utf8').trim().split('\n') : []);

test('desired capacity: the minimum when idle, busy + pending when runs queue up, capped at the maximum', async () => {
  const desired = script('autoscale-desired.sh');
  let r = await sh(desired, []);
  assert.is(r.code, 0, r.err);
  assert.equal(calls('capacity.calls'), ['1']);

  // One machine busy with a run, three runs queued behind it.
  const w1 = await register('i-0001');
  for (let i = 0; i < 4; i++) assert.is((await srv.admin('POST', '/v1/stacks/infra/runs', {})).status, 201);
  const a = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: w1, accept: true, runId: null });
  assert.ok(a.body.assignment, a.text);
  r = await sh(desired, []);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /pool prod: 1 busy, 3 pending -> 4 machines/);
  assert.is(calls('capacity.calls').at(-1), '4');

  for (let i = 0; i < 6; i++) assert.is((await srv.admin('POST', '/v1/stacks/infra/runs', {})).status, 201);
  r = await sh(desired, []);
  assert.match(r.out, /1 busy, 9 pending -> 5 machines/);
  assert.is(calls('capacity.calls').at(-1), '5');
  // Leave the queue empty for the next test.
  for (const run of (await srv.admin('GET', '/v1/runs?state=QUEUED&limit=100')).body.runs) {
    assert.is((await srv.admin('POST', `/v1/runs/${run.id}/cancel`)).status, 200);
  }
});

test('termination hook: drains the machine\'s worker by instance_id, waits for its run, then lets it go', async () => {
  const hook = script('autoscale-terminate.sh');
  // i-0001 holds the run from the previous test (RUNNING): the hook must wait for it.
  const w = (await srv.admin('GET', '/v1/workers?metadata=instance_id=i-0001')).body.workers[0];
  assert.is(w.status, 'BUSY');
  const runId = w.currentRun;
  let waiting!: () => void;
  const announced = new Promise<void>((resolve) => { waiting = resolve; });
  const done = sh(hook, ['i-0001'], {}, (err) => { if (/Waiting for 1 busy worker/.test(err)) waiting(); });
  await announced;
  // Drained and still running: nothing terminated yet, and the worker gets no new run.
  assert.equal(calls('terminated.calls'), []);
  assert.is((await srv.admin('POST', '/v1/stacks/infra/runs', {})).status, 201);
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: w.id })).status, 200);
  const ctl = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=0', { workerId: w.id, accept: false, runId });
  assert.is(ctl.body.control.drain, true);
  assert.equal(calls('terminated.calls'), []);
  // The run ends; the hook goes on.
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: w.id, outcome: 'succeeded', exitCode: 0, logSeq: 0 })).status, 200);
  const r = await done;
  assert.is(r.code, 0, r.err);
  assert.equal(calls('terminated.calls'), ['i-0001']);
  const after = (await srv.admin('GET', '/v1/workers?metadata=instance_id=i-0001')).body.workers[0];
  assert.is(after.status, 'DRAINED');
  // The queued run is still waiting for another machine.
  assert.is((await srv.admin('GET', '/v1/runs?state=QUEUED')).body.runs.length, 1);

  // A machine whose launcher never registered goes at once.
  const none = await sh(hook, ['i-never']);
  assert.is(none.code, 0, none.err);
  assert.match(none.err, /No worker matched/);
  assert.equal(calls('terminated.calls'), ['i-0001', 'i-never']);
});

test('the alert rules on the page pass promtool check rules', () => {
  const path = join(tmp, 'alerts.yml');
  writeFileSync(path, block('alerts.yml'));
  const r = spawnSync('promtool', ['check', 'rules', path], { encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is required (Debian package prometheus): ${r.error.message}`);
  assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /SUCCESS: 5 rules found/);
});

test.run();
