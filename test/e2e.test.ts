// End to end, real everything: a `launcher server` subprocess, a pool made
// from the seed's openssl key and CSR, launchers as subprocesses with
// SPACELIFT_POOL_PRIVATE_KEY="$(base64 -w 0 spacelift.key)", the busybox test
// image on the real dockerd, containers on network none.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publicKeyPem, parsePoolPrivateKey } from '../lib/keys.ts';
import { freePort } from './helpers/docker.ts';
import { LauncherFleet } from './helpers/fleet.ts';
import type { TestServer } from './helpers/server.ts';
import {
  createStack, filesContaining, runLogs, sealToKey, tarOf, trigger, waitRun, workers, ended, type LauncherProcess, type PoolKey,
} from './helpers/launcher.ts';

const fleet = new LauncherFleet('e2e');
let srv: TestServer;
let key: PoolKey;
let pool: { poolId: string; token: string };
let pub: string;

const launch = (metadata: Record<string, string>, env: Record<string, string> = {}): LauncherProcess => fleet.launch({ metadata, env });
const registered = (l: LauncherProcess): Promise<string> => fleet.registered(l);

test.before(async () => {
  await fleet.start();
  ({ srv, key, pool } = fleet);
  pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
});

const MARKER = `workspace-marker-${randomBytes(8).toString('hex')}`;
const SECRET = `secret-value-${randomBytes(8).toString('hex')}`;
const HOST_SECRET = `host-secret-${randomBytes(8).toString('hex')}`;
const DYN_SECRET = `dyn-secret-${randomBytes(6).toString('hex')}`;

test('plan on one launcher, confirm, apply on a second (the first drained): apply sees what plan wrote; logs masked; server holds no plaintext', async () => {
  const secretEnv = (await sealToKey(JSON.stringify({ DB_PASSWORD: SECRET }), pub)).toString('base64');
  const stack = await createStack(srv, {
    name: 'infra', pool: pool.poolId, secretEnv, env: { GREETING: 'hello' },
    phases: [
      { name: 'plan', script: [
        'set -e',
        'echo "$GREETING from plan"',
        'echo "db password is $DB_PASSWORD"',
        'echo "host secret is $HOST_TOKEN"',
        `echo "::add-mask::dyn-$(echo secret)-${DYN_SECRET.slice('dyn-secret-'.length)}"`,
        `echo "dynamic: dyn-$(echo secret)-${DYN_SECRET.slice('dyn-secret-'.length)}"`,
        'cp input.txt plan.txt',
        'echo planned > plan.done',
      ].join('\n') },
      { name: 'apply', confirm: true, script: 'set -e\ncmp input.txt plan.txt\ntest -f plan.done\necho "apply sees the plan files"' },
    ],
  });
  const a = launch({ role: 'a' }, { HOST_TOKEN: HOST_SECRET, SPACELIFT_WHITELIST_ENVS: 'HOST_TOKEN', SPACELIFT_MASK_ENVS: 'HOST_TOKEN' });
  const aId = await registered(a);
  const workspace = await sealToKey(await tarOf({ 'input.txt': `${MARKER}\n` }), pub);
  const runId = await trigger(srv, stack, { workspace });

  let run = await waitRun(srv, runId, (r) => r.state === 'UNCONFIRMED' || ended(r));
  assert.is(run.state, 'UNCONFIRMED', JSON.stringify(run));
  assert.is(run.phases[0].worker, aId);

  const b = launch({ role: 'b' });
  const bId = await registered(b);
  const drained = await srv.admin('POST', '/v1/workers/drain', { metadata: { role: 'a' } });
  assert.is(drained.status, 200);
  assert.equal(drained.body.workers.map((w: { id: string }) => w.id), [aId]);
  await a.waitFor(/Drained/);
  assert.is((await srv.admin('POST', `/v1/runs/${runId}/confirm`)).status, 200);
  run = await waitRun(srv, runId, ended);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.is(run.phases[1].worker, bId, 'apply ran on the second launcher');

  const logs = await runLogs(srv, runId);
  assert.match(logs, /hello from plan/);
  assert.match(logs, /apply sees the plan files/);
  assert.match(logs, /db password is \*{5}/);
  assert.match(logs, /host secret is \*{5}/);
  for (const s of [SECRET, HOST_SECRET, DYN_SECRET]) assert.not.ok(logs.includes(s), 'a masked value reached the stored logs');
  assert.match(logs, /dynamic: \*{5}/);

  // The server's data directory: no plaintext of the workspace marker or any secret.
  for (const s of [MARKER, SECRET, HOST_SECRET, DYN_SECRET]) assert.equal(filesContaining(srv.dataDir, s), [], `plaintext of ${s.slice(0, 12)}… on the server`);
  // Nor did the launchers print them in their own logs.
  for (const l of [a, b]) for (const s of [SECRET, HOST_SECRET, DYN_SECRET]) assert.not.ok(l.out.includes(s));

  // The sealed workspace opens with the stock age CLI and the seed's key file.
  const ws = await srv.admin('GET', `/v1/runs/${runId}/workspace`);
  assert.is(ws.status, 200);
  const d = { path: fleet.stateDir() };
  writeFileSync(join(d.path, 'ws.age'), ws.raw);
  const tarBytes = execFileSync('age', ['-d', '-i', key.keyPath, join(d.path, 'ws.age')]);
  writeFileSync(join(d.path, 'ws.tar'), tarBytes);
  const names = execFileSync('tar', ['-tf', join(d.path, 'ws.tar')], { encoding: 'utf8' }).split('\n').map((n) => n.replace(/^\.\//, ''));
  assert.ok(names.includes('plan.txt') && names.includes('input.txt') && names.includes('plan.done'), names.join(','));
  assert.is(execFileSync('tar', ['-xOf', join(d.path, 'ws.tar'), names.find((n) => n === 'plan.txt')!], { encoding: 'utf8' }), `${MARKER}\n`);

  // Undrain a, drain b: the next run goes to a.
  await srv.admin('POST', '/v1/workers/drain', { ids: [bId] });
  await srv.admin('POST', '/v1/workers/undrain', { ids: [aId] });
  await a.waitFor(/Undrained/);
  const quick = await createStack(srv, { name: 'quick', pool: pool.poolId, phases: [{ name: 'only', script: 'echo quick' }] });
  const r2 = await trigger(srv, quick);
  const done = await waitRun(srv, r2, ended);
  assert.is(done.state, 'FINISHED');
  assert.is(done.phases[0].worker, aId, 'the undrained launcher took the run');
  const ws2 = (await workers(srv, pool.poolId)).find((w) => w.id === bId);
  assert.is(ws2.status, 'DRAINED');
});

test('run logs on standard output as structured lines when enabled, masked; metrics count the phase', async () => {
  await fleet.stopAll();
  const mport = await freePort();
  const l = launch({ role: 'stdout' }, {
    SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED: 'true', HOST_TOKEN: HOST_SECRET, SPACELIFT_WHITELIST_ENVS: 'HOST_TOKEN', SPACELIFT_MASK_ENVS: 'HOST_TOKEN',
    SPACELIFT_LAUNCHER_METRICS_ADDR: `127.0.0.1:${mport}`,
  });
  await registered(l);
  const st = await createStack(srv, { name: 'printer', pool: pool.poolId, phases: [{ name: 'p', script: 'echo "first line"; echo "token $HOST_TOKEN"' }] });
  const runId = await trigger(srv, st);
  await waitRun(srv, runId, ended);
  const line = await l.waitFor(/"msg":"token \*{5}"/);
  const j = JSON.parse(line);
  assert.is(j.runId, runId);
  assert.is(j.source, 'run');
  assert.ok(l.json().some((x) => x.msg === 'first line'));
  assert.not.ok(l.out.includes(HOST_SECRET));
  const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
  assert.match(metrics, /^launcher_phases_total\{result="succeeded"\} 1$/m);
  assert.match(metrics, /^launcher_busy 0$/m);
  assert.ok(Number(/^launcher_log_bytes_total (\d+)$/m.exec(metrics)?.[1]) >= 'first line\ntoken *****\n'.length, metrics);
  const health = await fetch(`http://127.0.0.1:${mport}/healthz`);
  assert.is(health.status, 200);
  assert.is((await health.json() as { ok: boolean }).ok, true);
});

test('a graceful stop deregisters the worker and exits 0', async () => {
  const l = launch({ role: 'leaver' });
  const id = await registered(l);
  l.kill('SIGTERM');
  assert.is(await l.exitCode(), 0, l.out);
  const ws = await workers(srv, pool.poolId);
  assert.not.ok(ws.some((w) => w.id === id), 'deregistered workers leave the list');
});

test.after(() => fleet.close());
test.run();
