// The tool workflow end to end with real Terraform: a `launcher server`
// subprocess, launchers as subprocesses, the busybox+terraform runner image on
// the real dockerd (network none), only the built-in terraform_data resource
// and local-exec, so no provider is downloaded. State is checked with the
// stock `age` CLI and the host's own `terraform`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publicKeyPem, parsePoolPrivateKey } from '../lib/keys.ts';
import { LauncherFleet } from './helpers/fleet.ts';
import type { TestServer } from './helpers/server.ts';
import {
  filesContaining, getRun, runLogs, sealToKey, tarOf,
  trigger, waitRun, ended, type LauncherProcess, type PoolKey,
} from './helpers/launcher.ts';
import { TERRAFORM_BIN, TERRAFORM_IMAGE, ensureTerraformImage } from './helpers/terraform.ts';

const fleet = new LauncherFleet('tf', { image: ensureTerraformImage, keyBits: 2048 });
let srv: TestServer;
let key: PoolKey;
let pool: { poolId: string; token: string };
let pub: string;
const TF_ENV = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1' };

function launch(stateDir = fleet.stateDir()): { l: LauncherProcess; stateDir: string } {
  return { l: fleet.launch({ stateDir, env: { SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '2m' } }), stateDir };
}

const registered = (l: LauncherProcess): Promise<string> => fleet.registered(l);

async function tfStack(name: string, o: { tool?: Record<string, unknown>; [k: string]: unknown } = {}): Promise<string> {
  const { tool, ...rest } = o;
  const r = await srv.admin('POST', '/v1/stacks', { name, pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform', ...tool }, ...rest });
  assert.is(r.status, 201, r.text);
  return r.body.stack.id;
}

async function code(files: Record<string, string>): Promise<Buffer> {
  return sealToKey(await tarOf(files), pub);
}

async function versions(stack: string): Promise<any> {
  const r = await srv.admin('GET', `/v1/stacks/${stack}/state`);
  assert.is(r.status, 200, r.text);
  return r.body;
}

/** Pulls a state version, opens it with the stock age CLI and the seed's key file. */
async function pulledState(stack: string, version: number | 'current' = 'current'): Promise<{ path: string; json: any }> {
  const r = await srv.admin('GET', `/v1/stacks/${stack}/state/${version}`);
  assert.is(r.status, 200, r.text);
  const d = fleet.stateDir('pull');
  writeFileSync(join(d, 'state.age'), r.raw);
  const plain = execFileSync('age', ['-d', '-i', key.keyPath, join(d, 'state.age')]);
  writeFileSync(join(d, 'terraform.tfstate'), plain);
  return { path: join(d, 'terraform.tfstate'), json: JSON.parse(plain.toString('utf8')) };
}

/** Terraform's own plan JSON for `files` against `statePath`, on the host. */
function hostPlan(files: Record<string, string>, statePath: string): any {
  const d = fleet.stateDir('host');
  for (const [n, body] of Object.entries(files)) writeFileSync(join(d, n), body);
  execFileSync(TERRAFORM_BIN, ['init', '-input=false'], { cwd: d, env: TF_ENV, stdio: 'pipe' });
  execFileSync(TERRAFORM_BIN, ['plan', '-input=false', `-state=${statePath}`, '-out=p'], { cwd: d, env: TF_ENV, stdio: 'pipe' });
  return JSON.parse(execFileSync(TERRAFORM_BIN, ['show', '-json', 'p'], { cwd: d, env: TF_ENV, encoding: 'utf8', maxBuffer: 64 << 20 }));
}

function countActions(plan: any): { add: number; change: number; destroy: number; replace: number } {
  const c = { add: 0, change: 0, destroy: 0, replace: 0 };
  for (const rc of plan.resource_changes ?? []) {
    const a = (rc.change.actions as string[]).join(',');
    if (a === 'create') c.add++;
    else if (a === 'update') c.change++;
    else if (a === 'delete') c.destroy++;
    else if (a === 'delete,create' || a === 'create,delete') c.replace++;
  }
  return c;
}

test.before(async () => {
  await fleet.start();
  ({ srv, key, pool } = fleet);
  pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
  await registered(launch().l);
});

const ONLY_IN_STATE = `state-only-${randomBytes(8).toString('hex')}`;
// The attribute value a changed configuration plans: long and random, so that
// finding it in a file means it was written there, not that sealed (random)
// bytes in the database happened to spell a short string such as "b-2".
const CHANGED_VALUE = `changed-${randomBytes(8).toString('hex')}`;
const V1 = {
  'main.tf': [
    'resource "terraform_data" "a" {',
    `  input = sensitive("${ONLY_IN_STATE}")`,
    '}',
    'resource "terraform_data" "b" {',
    '  input = "b-1"',
    '}',
    '',
  ].join('\n'),
};

test('two tracked runs of the same code: the second plans no changes and finishes without an apply; proposed runs never add a version', async () => {
  const stack = await tfStack('tf-basic');
  const r1 = await trigger(srv, stack, { workspace: await code(V1) });
  let run = await waitRun(srv, r1, (r) => r.state === 'UNCONFIRMED' || ended(r), 120_000);
  assert.is(run.state, 'UNCONFIRMED', JSON.stringify(run));
  assert.equal(run.phases.map((p: any) => p.step), ['init', 'plan', 'apply']);
  assert.is(run.changes.add, 2);
  assert.is(run.changes.change, 0);
  assert.is(run.changes.destroy, 0);
  assert.equal(run.changes.resources.map((r: any) => r.address).sort(), ['terraform_data.a', 'terraform_data.b']);
  assert.equal((await versions(stack)).versions, [], 'planning wrote no state');
  assert.is((await srv.admin('POST', `/v1/runs/${r1}/confirm`)).status, 200);
  run = await waitRun(srv, r1, ended, 120_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  const logs1 = await runLogs(srv, r1);
  assert.match(logs1, /launcher_override\.tf pins the local backend/);
  assert.match(logs1, /Apply complete! Resources: 2 added/);
  assert.match(logs1, /State version 1 stored/);

  const v = await versions(stack);
  assert.is(v.current, 1);
  assert.is(v.versions.length, 1);
  assert.is(v.versions[0].run, r1);
  assert.ok(v.versions[0].serial >= 1);
  assert.match(v.versions[0].lineage, /^[0-9a-f-]{36}$/);
  assert.match(v.versions[0].sha256, /^[0-9a-f]{64}$/);
  const st = await pulledState(stack);
  assert.is(st.json.lineage, v.versions[0].lineage);
  assert.is(st.json.serial, v.versions[0].serial);
  assert.ok(JSON.stringify(st.json).includes(ONLY_IN_STATE), 'the sensitive value is in the (sealed) state');

  // The same code again: nothing to apply, so no confirmation and no apply.
  const r2 = await trigger(srv, stack, { workspace: await code(V1) });
  run = await waitRun(srv, r2, ended, 120_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.is(run.changes.hasChanges, false);
  assert.equal([run.changes.add, run.changes.change, run.changes.destroy, run.changes.replace], [0, 0, 0, 0]);
  assert.is(run.phases[2].state, 'PENDING', 'the apply step never ran');
  assert.match(run.reason, /no changes/);
  assert.is((await versions(stack)).versions.length, 1);

  // A changed configuration: counts equal Terraform's own plan JSON on the host.
  const V2 = {
    'main.tf': V1['main.tf'].replace('"b-1"', `"${CHANGED_VALUE}"`) + 'resource "terraform_data" "c" {\n  input = "c"\n}\nresource "terraform_data" "d" {\n  triggers_replace = ["x"]\n}\n',
  };
  const expected = countActions(hostPlan(V2, st.path));
  const r3 = await trigger(srv, stack, { workspace: await code(V2), proposed: true });
  run = await waitRun(srv, r3, ended, 120_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.equal(run.phases.map((p: any) => p.step), ['init', 'plan'], 'a proposed run never applies');
  assert.equal({ add: run.changes.add, change: run.changes.change, destroy: run.changes.destroy, replace: run.changes.replace }, expected);
  assert.equal(expected, { add: 2, change: 1, destroy: 0, replace: 0 });
  assert.is((await versions(stack)).versions.length, 1, 'a proposed run never adds a state version');
  const plogs = await runLogs(srv, r3);
  assert.match(plogs, /read-only: a proposed run never writes state/);

  // What the server holds: counts and addresses, never values.
  assert.equal(filesContaining(srv.dataDir, ONLY_IN_STATE), [], 'a value only in the state reached the server in plaintext');
  // Terraform prints plain attribute values in its plan output, which are the run's
  // (masked) logs; nothing else on the server (database, state, workspaces) holds one.
  const withValue = filesContaining(srv.dataDir, CHANGED_VALUE);
  assert.ok(withValue.length > 0 && withValue.every((f) => f.includes('/logs/')), `files holding an attribute value: ${withValue}`);
});

test('an apply that fails after one resource is created keeps that resource in the stored state; the next run does not create it again', async () => {
  const stack = await tfStack('tf-partial', { tool: { autodeploy: true } });
  const failing = {
    'main.tf': [
      'resource "terraform_data" "first" {',
      '  input = "first"',
      '}',
      'resource "terraform_data" "second" {',
      '  depends_on = [terraform_data.first]',
      '  provisioner "local-exec" {',
      '    command = "echo provisioning second; exit 1"',
      '  }',
      '}',
      '',
    ].join('\n'),
  };
  const r1 = await trigger(srv, stack, { workspace: await code(failing) });
  let run = await waitRun(srv, r1, ended, 120_000);
  assert.is(run.state, 'FAILED', JSON.stringify(run));
  assert.is(run.phases[2].step, 'apply');
  assert.is(run.phases[2].outcome, 'failed');
  const logs = await runLogs(srv, r1);
  assert.match(logs, /partial: the step ended failed/);
  const v = await versions(stack);
  assert.is(v.versions.length, 1, 'the partial state was stored');
  assert.is(v.versions[0].run, r1);
  const st = await pulledState(stack);
  const shown = execFileSync(TERRAFORM_BIN, ['show', '-json', st.path], { env: TF_ENV, encoding: 'utf8' });
  const addresses = (JSON.parse(shown).values?.root_module?.resources ?? []).map((r: any) => r.address);
  assert.ok(addresses.includes('terraform_data.first'), `terraform show of the pulled state: ${addresses}`);

  const fixed = { 'main.tf': failing['main.tf'].replace('exit 1', 'exit 0') };
  const r2 = await trigger(srv, stack, { workspace: await code(fixed) });
  run = await waitRun(srv, r2, ended, 120_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  const first = run.changes.resources.find((r: any) => r.address === 'terraform_data.first');
  assert.is(first, undefined, 'the resource the failed apply created is not created again');
  assert.is(run.changes.add + run.changes.replace, 1, JSON.stringify(run.changes));
  assert.is((await versions(stack)).current, 2);
});

test('kill -9 of the launcher during an apply: after the restart the run ends and the state version is there', async () => {
  await fleet.stopAll();
  const { l, stateDir } = launch();
  await registered(l);
  const stack = await tfStack('tf-kill', { tool: { autodeploy: true } });
  const slow = {
    'main.tf': [
      'resource "terraform_data" "slow" {',
      '  input = "slow"',
      '  provisioner "local-exec" {',
      '    command = "echo apply-started; sleep 10; echo apply-done"',
      '  }',
      '}',
      '',
    ].join('\n'),
  };
  const r1 = await trigger(srv, stack, { workspace: await code(slow) });
  await waitRun(srv, r1, (r) => r.status === 'APPLYING' || ended(r), 120_000);
  for (let i = 0; i < 300 && !(await runLogs(srv, r1)).includes('apply-started'); i++) await new Promise((r) => setTimeout(r, 100));
  l.kill('SIGKILL');
  await l.exitCode();
  const mid = await getRun(srv, r1);
  assert.is(mid.status, 'APPLYING', `the launcher was killed during the apply: ${JSON.stringify(mid)}`);
  const again = launch(stateDir);
  await again.l.waitFor(/Re-attached to the phase container/, 60_000);
  const run = await waitRun(srv, r1, ended, 120_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  const v = await versions(stack);
  assert.is(v.versions.length, 1, JSON.stringify(v));
  assert.is(v.versions[0].run, r1);
  const st = await pulledState(stack);
  assert.ok(st.json.resources.some((r: any) => r.type === 'terraform_data' && r.name === 'slow'));
  assert.match(await runLogs(srv, r1), /apply-done/);
});

test('two tracked runs triggered together are serialized: the second waits and says why, versions in order, no lost update; a stale push is refused', async () => {
  const second = launch();
  await registered(second.l);
  const stack = await tfStack('tf-serial', { tool: { autodeploy: true } });
  // timestamp() is unknown until apply: every tracked run replaces it and writes a new state.
  const always = { 'main.tf': 'resource "terraform_data" "t" {\n  triggers_replace = [timestamp()]\n}\n' };
  const ws = await code(always);
  const a = await trigger(srv, stack, { workspace: ws });
  const b = await trigger(srv, stack, { workspace: ws });
  const waiting = await waitRun(srv, b, (r) => /holds the stack's state/.test(r.reason ?? '') || r.state !== 'QUEUED', 60_000);
  assert.match(waiting.reason ?? '', new RegExp(`waiting: run ${a} holds the stack's state`), JSON.stringify(waiting));
  const ra = await waitRun(srv, a, ended, 120_000);
  const rb = await waitRun(srv, b, ended, 120_000);
  assert.is(ra.state, 'FINISHED', JSON.stringify(ra));
  assert.is(rb.state, 'FINISHED', JSON.stringify(rb));
  assert.ok(Date.parse(rb.phases[0].assignedAt) >= Date.parse(ra.endedAt), 'the second run started only after the first ended');
  const v = await versions(stack);
  assert.equal(v.versions.map((x: any) => [x.version, x.run]), [[2, b], [1, a]]);
  assert.ok(v.versions[0].serial > v.versions[1].serial, 'the second run started from the first one\'s state');
  assert.is(v.versions[0].lineage, v.versions[1].lineage);

  // A push based on version 1 when the current one is 2: refused, nothing stored.
  const sealed = await sealToKey('{"version":4,"serial":99,"lineage":"x","resources":[]}', pub);
  const stale = await srv.admin('PUT', `/v1/stacks/${stack}/state?base=1&serial=99`, sealed);
  assert.is(stale.status, 409, stale.text);
  assert.is(stale.body.error.code, 'STATE_CONFLICT');
  assert.match(stale.body.error.message, /based on version 1 but the stack's current state is version 2/);
  assert.is((await versions(stack)).versions.length, 2);
  // Plaintext is refused outright.
  const plain = await srv.admin('PUT', `/v1/stacks/${stack}/state?base=2`, Buffer.from('{"version":4}'));
  assert.is(plain.status, 400);
  assert.is(plain.body.error.code, 'NOT_SEALED');
});

test('a module runs init, validate and test as a proposed run with no state; a failing test fails the run', async () => {
  const r = await srv.admin('POST', '/v1/stacks', { name: 'tf-module', kind: 'module', pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform' } });
  assert.is(r.status, 201, r.text);
  const mod = {
    'main.tf': 'variable "name" {\n  type = string\n}\nresource "terraform_data" "m" {\n  input = upper(var.name)\n}\noutput "shout" {\n  value = terraform_data.m.output\n}\n',
    'tests/shout.tftest.hcl': 'variables {\n  name = "quiet"\n}\nrun "shouts" {\n  assert {\n    condition     = output.shout == "QUIET"\n    error_message = "not shouted"\n  }\n}\n',
  };
  // Asked for a tracked run: a module only ever checks, so it runs proposed.
  const id = await trigger(srv, 'tf-module', { workspace: await code(mod) });
  const run = await waitRun(srv, id, ended, 120_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.is(run.proposed, true);
  assert.equal(run.phases.map((p: any) => p.step), ['init', 'validate', 'test']);
  const logs = (await runLogs(srv, id)).replace(/\x1b\[[0-9;]*m/g, '');
  assert.match(logs, /Success! The configuration is valid/);
  assert.match(logs, /1 passed, 0 failed/);
  assert.not.match(logs, /Managed state/);
  assert.equal((await versions('tf-module')).versions, []);

  const broken = { ...mod, 'tests/shout.tftest.hcl': mod['tests/shout.tftest.hcl'].replace('"QUIET"', '"quiet"') };
  const id2 = await trigger(srv, 'tf-module', { workspace: await code(broken) });
  const run2 = await waitRun(srv, id2, ended, 120_000);
  assert.is(run2.state, 'FAILED', JSON.stringify(run2));
  assert.is(run2.phases[2].outcome, 'failed');
  assert.match((await runLogs(srv, id2, 2)).replace(/\x1b\[[0-9;]*m/g, ''), /not shouted/);
});

test.after(() => fleet.close());

test.run();
