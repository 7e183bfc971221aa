// A launcher killed with kill -9 during an apply and away past the server's
// grace period: the server fails the run as worker lost; when the launcher comes
// back it stops the orphaned container and stores the state the apply wrote, as
// the next version if nothing else wrote one meanwhile, or kept sealed beside
// the run (GET /v1/runs/{id}/state) if something did. Nothing is lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publicKeyPem, parsePoolPrivateKey } from '../lib/keys.ts';
import { LauncherFleet } from './helpers/fleet.ts';
import type { TestServer } from './helpers/server.ts';
import {
  runLogs, sealToKey, tarOf, waitRun, ended, type LauncherProcess, type PoolKey,
} from './helpers/launcher.ts';
import { TERRAFORM_IMAGE, ensureTerraformImage } from './helpers/terraform.ts';

const fleet = new LauncherFleet('tfrec', { image: ensureTerraformImage, keyBits: 2048, serverArgs: ['--worker-lease', '2s', '--worker-grace', '2s'] });
let srv: TestServer;
let key: PoolKey;
let pub: string;
let pool: { poolId: string; token: string };

async function launch(stateDir: string): Promise<LauncherProcess> {
  const l = fleet.launch({ stateDir });
  await fleet.registered(l);
  return l;
}

function opened(blob: Buffer): string {
  const d = fleet.stateDir('open');
  writeFileSync(join(d, 's.age'), blob);
  const r = spawnSync('age', ['-d', '-i', key.keyPath, join(d, 's.age')], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return r.stdout;
}

const slow = (name: string) => ({
  'main.tf': `resource "terraform_data" "${name}" {\n  input = "${name}"\n  provisioner "local-exec" {\n    command = "echo apply-started; sleep 20; echo apply-done"\n  }\n}\n`,
});

/** Starts an apply, kills the launcher during it, waits until the server gives the run up. */
async function abandonedApply(stack: string, name: string, stateDir: string): Promise<string> {
  const l = await launch(stateDir);
  const ws = await sealToKey(await tarOf(slow(name)), pub);
  const r = await srv.admin('POST', `/v1/stacks/${stack}/runs`, { proposed: false, workspace: ws.toString('base64') });
  assert.is(r.status, 201, r.text);
  const id = r.body.run.id;
  await waitRun(srv, id, (x) => x.status === 'APPLYING' || ended(x), 120_000);
  for (let i = 0; i < 300 && !(await runLogs(srv, id)).includes('apply-started'); i++) await new Promise((res) => setTimeout(res, 100));
  l.kill('SIGKILL');
  await l.exitCode();
  const run = await waitRun(srv, id, ended, 60_000);
  assert.is(run.state, 'FAILED', JSON.stringify(run));
  assert.match(run.reason, /worker lost/);
  return id;
}

test.before(async () => {
  await fleet.start();
  ({ srv, key, pool } = fleet);
  pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
});

test('back after the grace period: the partial state of the abandoned apply becomes the next version', async () => {
  const st = await srv.admin('POST', '/v1/stacks', { name: 'rec', pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform', autodeploy: true } });
  assert.is(st.status, 201, st.text);
  const d = fleet.stateDir();
  const id = await abandonedApply('rec', 'salvaged', d);
  assert.is((await srv.admin('GET', '/v1/stacks/rec/state')).body.versions.length, 0);
  const back = await launch(d);
  await back.waitFor(/Stored the state of a phase the server had given up on/, 120_000);
  const v = (await srv.admin('GET', '/v1/stacks/rec/state')).body;
  assert.is(v.versions.length, 1, JSON.stringify(v));
  assert.is(v.versions[0].run, id);
  const blob = await srv.admin('GET', '/v1/stacks/rec/state/1');
  assert.match(opened(blob.raw), /"name": "salvaged"/);
  back.kill('SIGTERM');
  await back.exitCode();
});

test('back after someone else wrote the state: the abandoned apply\'s state is kept sealed beside its run', async () => {
  const st = await srv.admin('POST', '/v1/stacks', { name: 'rec2', pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform', autodeploy: true } });
  assert.is(st.status, 201, st.text);
  const d = fleet.stateDir();
  const id = await abandonedApply('rec2', 'orphan', d);
  // Meanwhile an admin imports another state (the run no longer holds it).
  const other = await sealToKey('{"version": 4, "terraform_version": "1.11.4", "serial": 1, "lineage": "11111111-2222-3333-4444-555555555555", "outputs": {}, "resources": []}', pub);
  assert.is((await srv.admin('PUT', '/v1/stacks/rec2/state?base=none&serial=1&lineage=11111111-2222-3333-4444-555555555555', other)).status, 201);
  assert.is((await srv.admin('GET', `/v1/runs/${id}/state`)).status, 404);
  const back = await launch(d);
  await back.waitFor(/Could not store the state of a phase the server had given up on.*STATE_CONFLICT/, 120_000);
  const v = (await srv.admin('GET', '/v1/stacks/rec2/state')).body;
  assert.equal(v.versions.map((x: any) => x.source), ['push'], 'the newer version was not overwritten');
  const kept = await srv.admin('GET', `/v1/runs/${id}/state`);
  assert.is(kept.status, 200, kept.text);
  assert.is(kept.headers['x-state-base'], 'none');
  assert.is(kept.headers['x-state-current'], '1');
  assert.match(opened(kept.raw), /"name": "orphan"/);
  assert.match(readFileSync(join(srv.dataDir, 'audit.log'), 'utf8') + srv.stderr, /State upload refused: kept beside its run/);
  back.kill('SIGTERM');
  await back.exitCode();
});

test('a canceled apply stops Terraform gracefully and stores the partial state: the created resource, the interrupted one tainted', async () => {
  const d = fleet.stateDir();
  const l = await launch(d);
  const st = await srv.admin('POST', '/v1/stacks', { name: 'canceled', pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform', autodeploy: true } });
  assert.is(st.status, 201, st.text);
  const code = {
    'main.tf': 'resource "terraform_data" "first" {\n  input = "first"\n}\nresource "terraform_data" "slow" {\n  depends_on = [terraform_data.first]\n  provisioner "local-exec" {\n    command = "echo apply-started; sleep 60"\n  }\n}\n',
  };
  const r = await srv.admin('POST', '/v1/stacks/canceled/runs', { proposed: false, workspace: (await sealToKey(await tarOf(code), pub)).toString('base64') });
  const id = r.body.run.id;
  await waitRun(srv, id, (x) => x.status === 'APPLYING' || ended(x), 120_000);
  for (let i = 0; i < 300 && !(await runLogs(srv, id)).includes('apply-started'); i++) await new Promise((res) => setTimeout(res, 100));
  assert.is((await srv.admin('POST', `/v1/runs/${id}/cancel`)).status, 200);
  const run = await waitRun(srv, id, ended, 120_000);
  assert.is(run.state, 'CANCELED', JSON.stringify(run));
  assert.match(await runLogs(srv, id), /Interrupt received/);
  const v = (await srv.admin('GET', '/v1/stacks/canceled/state')).body;
  assert.is(v.versions.length, 1, JSON.stringify(v));
  const state = JSON.parse(opened((await srv.admin('GET', '/v1/stacks/canceled/state/1')).raw));
  const byName = Object.fromEntries(state.resources.map((x: any) => [x.name, x.instances[0].status ?? 'ok']));
  assert.equal(byName, { first: 'ok', slow: 'tainted' });
  l.kill('SIGTERM');
  await l.exitCode();
});

test.after(() => fleet.close());

test.run();
