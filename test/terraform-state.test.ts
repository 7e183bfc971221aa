// Managed state from the admin's side, through `launcher admin stack state …`
// and real runs: import (push), pull opened with the stock `age` CLI, rollback,
// retention, pushes refused while a run holds the state, delete with and
// without --purge-state, and key rotation (old versions open with the old key;
// once it is retired, new versions are sealed to the remaining keys only).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { publicKeyPem, parsePoolPrivateKey } from '../lib/keys.ts';
import { removeWorkerContainers } from './helpers/docker.ts';
import { runLauncher, type CliResult } from './helpers/cli.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  createPool, sealToKey, seedPoolKey, startLauncher, tarOf, tempDir, trigger, waitRun, ended,
  type LauncherProcess, type PoolKey,
} from './helpers/launcher.ts';
import { TERRAFORM_BIN, TERRAFORM_IMAGE, ensureTerraformImage } from './helpers/terraform.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const docker = new DockerClient();
const TF_ENV = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1' };
let srv: TestServer;
let keyA: PoolKey;
let pool: { poolId: string; token: string };
let work: { path: string; remove(): void };
const launchers: LauncherProcess[] = [];
const dirs: Array<{ remove(): void }> = [];
const workerIds = new Set<string>();

const cli = (args: string[]): Promise<CliResult> =>
  runLauncher(['admin', ...args], { env: { HOME: work.path, LAUNCHER_SERVER: srv.url, LAUNCHER_ADMIN_TOKEN: srv.adminToken, LAUNCHER_CA: srv.caPath } });

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assert.is(r.code, 0, `launcher admin ${args.join(' ')}: ${r.err}`);
  return r.out;
}

async function launch(token: string, key: PoolKey): Promise<LauncherProcess> {
  const d = tempDir('launcher-tfstate-');
  dirs.push(d);
  const l = startLauncher({ token, keyB64: key.keyB64, stateDir: d.path });
  launchers.push(l);
  const line = await l.waitFor(/Registered with the server/);
  workerIds.add((JSON.parse(line) as { workerId: string }).workerId);
  return l;
}

/** A real terraform.tfstate made by the host's terraform (one terraform_data holding `value`). */
function realState(value: string): string {
  const d = tempDir('launcher-tfstate-src-');
  dirs.push(d);
  writeFileSync(join(d.path, 'main.tf'), `resource "terraform_data" "imported" {\n  input = "${value}"\n}\n`);
  execFileSync(TERRAFORM_BIN, ['init', '-input=false'], { cwd: d.path, env: TF_ENV, stdio: 'pipe' });
  execFileSync(TERRAFORM_BIN, ['apply', '-input=false', '-auto-approve'], { cwd: d.path, env: TF_ENV, stdio: 'pipe' });
  return join(d.path, 'terraform.tfstate');
}

function ageOpen(file: string, keyPath: string): { ok: boolean; text: string } {
  const r = spawnSync('age', ['-d', '-i', keyPath, file], { encoding: 'utf8' });
  return { ok: r.status === 0, text: r.stdout };
}

async function stateList(stack: string): Promise<any> {
  return JSON.parse(await ok(['stack', 'state', 'list', stack, '--json']));
}

test.before(async () => {
  await ensureTerraformImage(docker);
  work = tempDir('launcher-tfstate-work-');
  keyA = seedPoolKey(2048, 'keya');
  srv = await startTestServer();
  pool = await createPool(srv, 'tfstate', keyA.csrPem);
});

test('push imports a terraform.tfstate (sealed by the CLI), pull writes the sealed file that age opens, rollback makes a new version equal to an old one, retention keeps the last N', async () => {
  await ok(['stack', 'create', 'imp', '--pool', pool.poolId, '--tool', 'terraform', '--image', TERRAFORM_IMAGE, '--state-history', '3']);
  const values = ['one', 'two', 'three', 'four'].map((v) => `${v}-${randomBytes(4).toString('hex')}`);
  for (const v of values) {
    const out = await ok(['stack', 'state', 'push', 'imp', realState(v)]);
    assert.match(out, /State version \d+ stored for imp \(serial \d+, sealed here to 1 pool key\(s\)\)/);
  }
  let list = await stateList('imp');
  assert.equal(list.versions.map((v: any) => v.version), [4, 3, 2], 'the last 3 of 4 versions are kept');
  assert.is(list.current, 4);
  assert.ok(list.versions.every((v: any) => v.source === 'push' && v.run === null && /^[0-9a-f]{64}$/.test(v.sha256)));
  const table = await ok(['stack', 'state', 'list', 'imp']);
  assert.match(table, /^VERSION\s+SERIAL\s+LINEAGE\s+RUN\s+SOURCE\s+CREATED\s+SIZE\s+SHA256/);
  assert.match(table, /^4 \(current\)/m);
  // The server holds none of the values in plaintext, and the first version's file is gone.
  for (const v of values) assert.is(spawnSync('grep', ['-rqF', v, srv.dataDir]).status, 1, `${v} in plaintext on the server`);
  const stackId = list.stack;
  assert.equal(readdirSync(join(srv.dataDir, 'state', stackId)).sort(), ['2.age', '3.age', '4.age']);

  // pull: the sealed bytes as stored (sha256 matches the list), opened by age with the pool key.
  const pulled = join(work.path, 'v3.age');
  assert.match(await ok(['stack', 'state', 'pull', 'imp', '--version', '3', '-o', pulled]), /age -d -i spacelift\.key/);
  const sha = execFileSync('sha256sum', [pulled], { encoding: 'utf8' }).split(' ')[0];
  assert.is(sha, list.versions.find((v: any) => v.version === 3).sha256);
  const opened = ageOpen(pulled, keyA.keyPath);
  assert.ok(opened.ok);
  assert.ok(opened.text.includes(values[2]!));
  const gone = await cli(['stack', 'state', 'pull', 'imp', '--version', '1', '-o', join(work.path, 'v1.age')]);
  assert.is(gone.code, 1);
  assert.match(gone.err, /STATE_VERSION_NOT_FOUND|State version 1 of stack imp not found/);
  assert.not.ok(existsSync(join(work.path, 'v1.age')), 'no file is left behind by a failed pull');

  // rollback: version 5 is a copy of version 3.
  assert.match(await ok(['stack', 'state', 'rollback', 'imp', '--version', '3']), /State version 5 is now current: a copy of version 3/);
  list = await stateList('imp');
  assert.equal(list.versions.map((v: any) => v.version), [5, 4, 3]);
  assert.is(list.versions[0].source, 'rollback:3');
  assert.is(list.versions[0].sha256, list.versions[2].sha256);
  const cur = join(work.path, 'cur.age');
  await ok(['stack', 'state', 'pull', 'imp', '-o', cur]);
  assert.ok(ageOpen(cur, keyA.keyPath).text.includes(values[2]!));

  // Bad input is named.
  const notState = join(work.path, 'not-state.json');
  writeFileSync(notState, '{"hello": "world"}');
  const bad = await cli(['stack', 'state', 'push', 'imp', notState]);
  assert.is(bad.code, 2);
  assert.match(bad.err, /not a Terraform state file/);
  const badVersion = await cli(['stack', 'state', 'rollback', 'imp', '--version', 'latest']);
  assert.is(badVersion.code, 2);
  assert.match(badVersion.err, /--version latest: expected a state version number/);
  const badAction = await cli(['stack', 'state', 'frobnicate', 'imp']);
  assert.is(badAction.code, 2);
  assert.match(badAction.err, /Unknown state action "frobnicate": expected one of list, pull, push, rollback/);
});

test('a tracked run holding the state refuses pushes and rollbacks until it ends; delete keeps the state unless --purge-state', async () => {
  const l = await launch(pool.token, keyA);
  await ok(['stack', 'create', 'held', '--pool', pool.poolId, '--tool', 'terraform', '--image', TERRAFORM_IMAGE]);
  const st = readFileSync(realState('held'), 'utf8');
  const stFile = join(work.path, 'held.tfstate');
  writeFileSync(stFile, st);
  await ok(['stack', 'state', 'push', 'held', stFile]);
  const pub = publicKeyPem(parsePoolPrivateKey(keyA.keyPem));
  const code = await sealToKey(await tarOf({ 'main.tf': 'resource "terraform_data" "imported" {\n  input = "changed"\n}\n' }), pub);
  const run = await trigger(srv, 'held', { workspace: code });
  const r = await waitRun(srv, run, (x) => x.state === 'UNCONFIRMED' || ended(x), 120_000);
  assert.is(r.state, 'UNCONFIRMED', JSON.stringify(r));
  assert.is(r.changes.change, 1, 'the imported resource is updated, not created: the run started from the pushed state');
  const refused = await cli(['stack', 'state', 'push', 'held', stFile]);
  assert.is(refused.code, 1);
  assert.match(refused.err, new RegExp(`run ${run} holds it until it ends`));
  const refused2 = await cli(['stack', 'state', 'rollback', 'held', '--version', '1']);
  assert.is(refused2.code, 1);
  assert.match(refused2.err, /STATE_LOCKED|holds it until it ends/);
  assert.match(await ok(['stack', 'show', 'held']), new RegExp(`managed state:\\s+yes: version 1, held by ${run}`));
  await ok(['run', 'discard', run]);
  await ok(['stack', 'state', 'push', 'held', stFile]);
  assert.is((await stateList('held')).current, 2);

  const id = (await stateList('held')).stack;
  assert.match(await ok(['stack', 'delete', 'held']), /its state versions are kept/);
  assert.is((await stateList(id)).versions.length, 2, 'a deleted stack\'s state stays reachable by its id');
  await ok(['stack', 'create', 'gone', '--pool', pool.poolId, '--tool', 'terraform', '--image', TERRAFORM_IMAGE]);
  await ok(['stack', 'state', 'push', 'gone', stFile]);
  const goneId = (await stateList('gone')).stack;
  assert.match(await ok(['stack', 'delete', 'gone', '--purge-state']), /1 state version\(s\) purged/);
  assert.not.ok(existsSync(join(srv.dataDir, 'state', goneId)));
  assert.is((await stateList(goneId)).versions.length, 0);
  l.kill('SIGTERM');
  await l.exitCode();
});

test('the CLI end to end: --tool with --project-root, --var (sealed, masked, never on the server), --var-file, --hook, --arg; run show prints the counts and addresses', async () => {
  const l = await launch(pool.token, keyA);
  const word = `var-value-${randomBytes(6).toString('hex')}`;
  await ok(['stack', 'create', 'cli-tf', '--pool', pool.poolId, '--tool', 'terraform', '--image', TERRAFORM_IMAGE,
    '--project-root', 'infra/prod', '--var', `word=${word}`, '--var-file', 'prod.tfvars',
    '--hook', 'before-init=echo hook-before-init in $(basename $(pwd))', '--hook', 'after-plan=echo hook-after-plan',
    '--arg', 'plan=-parallelism=3', '--autodeploy']);
  const shown = await ok(['stack', 'show', 'cli-tf']);
  assert.match(shown, /project root:\s+infra\/prod/);
  assert.match(shown, /tool:\s+terraform \(terraform\)/);
  assert.match(shown, /hooks:\s+before-init: echo hook-before-init/);
  const src = join(work.path, 'cli-src');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(src, 'infra', 'prod'), { recursive: true });
  writeFileSync(join(src, 'infra', 'prod', 'main.tf'), [
    'variable "word" {\n  type = string\n}',
    'variable "count_of" {\n  type = number\n}',
    'resource "terraform_data" "w" {\n  count = var.count_of\n  input = var.word\n}',
    '',
  ].join('\n'));
  writeFileSync(join(src, 'infra', 'prod', 'prod.tfvars'), 'count_of = 2\n');
  const id = (await ok(['run', 'trigger', 'cli-tf', '--workspace', src])).trim();
  const run = await waitRun(srv, id, ended, 180_000);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.is(run.changes.add, 2);
  const show = await ok(['run', 'show', id]);
  assert.match(show, /^state:\s+FINISHED/m);
  assert.match(show, /^changes:\s+\+2 ~0 -0/m);
  assert.match(show, /^create\s+terraform_data\.w\[0\]$/m);
  assert.match(show, /^create\s+terraform_data\.w\[1\]$/m);
  assert.match(await ok(['run', 'list', '--stack', 'cli-tf']), /\+2 ~0 -0/);
  const logs = await ok(['run', 'logs', id]);
  assert.match(logs, /hook-before-init in prod/);
  assert.match(logs, /hook-after-plan/);
  assert.not.ok(logs.includes(word), 'the variable value is masked in the logs');
  assert.is(spawnSync('grep', ['-rqF', word, srv.dataDir]).status, 1, 'the variable value is nowhere on the server');
  const st = join(work.path, 'cli-tf.age');
  await ok(['stack', 'state', 'pull', 'cli-tf', '-o', st]);
  assert.ok(ageOpen(st, keyA.keyPath).text.includes(word), 'the value is in the sealed state');
  l.kill('SIGTERM');
  await l.exitCode();
});

test('key rotation: old versions open with the old key; with both keys active new versions are sealed to both; once the old key is retired the next tracked run seals to the new key only', async () => {
  const la = await launch(pool.token, keyA);
  await ok(['stack', 'create', 'rot', '--pool', pool.poolId, '--tool', 'terraform', '--image', TERRAFORM_IMAGE, '--autodeploy']);
  const pubA = publicKeyPem(parsePoolPrivateKey(keyA.keyPem));
  const code = async (pub: string) => sealToKey(await tarOf({ 'main.tf': 'resource "terraform_data" "t" {\n  triggers_replace = [timestamp()]\n}\n' }), pub);
  const r1 = await trigger(srv, 'rot', { workspace: await code(pubA) });
  assert.is((await waitRun(srv, r1, ended, 120_000)).state, 'FINISHED');

  // Add key B: the pool has two active keys.
  const keyB = seedPoolKey(2048, 'keyb');
  const added = await srv.admin('POST', `/v1/pools/${pool.poolId}/keys`, { csr: keyB.csrPem });
  assert.is(added.status, 201, added.text);
  const r2 = await trigger(srv, 'rot', { workspace: await code(pubA) });
  assert.is((await waitRun(srv, r2, ended, 120_000)).state, 'FINISHED');

  const v1 = join(work.path, 'rot1.age');
  const v2 = join(work.path, 'rot2.age');
  await ok(['stack', 'state', 'pull', 'rot', '--version', '1', '-o', v1]);
  await ok(['stack', 'state', 'pull', 'rot', '--version', '2', '-o', v2]);
  assert.ok(ageOpen(v1, keyA.keyPath).ok, 'version 1 opens with the old key');
  assert.not.ok(ageOpen(v1, keyB.keyPath).ok, 'version 1 was sealed before key B existed');
  assert.ok(ageOpen(v2, keyA.keyPath).ok && ageOpen(v2, keyB.keyPath).ok, 'version 2 is sealed to both active keys');

  // Retire key A; a launcher with key B takes over and reads version 2.
  const keyAId = added.body.key && (await srv.admin('GET', `/v1/pools/${pool.poolId}`)).body.pool.keys.find((k: any) => k.id !== added.body.key.id).id;
  assert.is((await srv.admin('POST', `/v1/pools/${pool.poolId}/keys/${keyAId}/retire`)).status, 200);
  await la.exitCode(60_000);
  await launch(added.body.token, keyB);
  const pubB = publicKeyPem(parsePoolPrivateKey(keyB.keyPem));
  const r3 = await trigger(srv, 'rot', { workspace: await code(pubB) });
  const run3 = await waitRun(srv, r3, ended, 120_000);
  assert.is(run3.state, 'FINISHED', JSON.stringify(run3));
  const v3 = join(work.path, 'rot3.age');
  await ok(['stack', 'state', 'pull', 'rot', '--version', '3', '-o', v3]);
  assert.ok(ageOpen(v3, keyB.keyPath).ok, 'version 3 opens with the remaining key');
  assert.not.ok(ageOpen(v3, keyA.keyPath).ok, 'version 3 is not sealed to the retired key');
  assert.ok(ageOpen(v1, keyA.keyPath).ok, 'state sealed to the old key still opens with it');
});

test('an online backup carries every state version; a server restored from it lists and serves them byte for byte', async () => {
  const before = await stateList('rot');
  const file = join(work.path, 'backup.tar');
  assert.match(await ok(['backup', '-o', file]), /Backup written to/);
  const restored = join(work.path, 'restored', 'data');
  const r = spawnSync(NODE, ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', 'restore', file, '--data', restored], { cwd: ROOT, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const again = await startTestServer({ dataDir: restored });
  try {
    const list = await again.admin('GET', `/v1/stacks/${before.stack}/state`);
    assert.is(list.status, 200, list.text);
    assert.equal(list.body.versions.map((v: any) => [v.version, v.sha256]), before.versions.map((v: any) => [v.version, v.sha256]));
    for (const v of before.versions) {
      const blob = await again.admin('GET', `/v1/stacks/${before.stack}/state/${v.version}`);
      assert.is(blob.status, 200);
      assert.is(createHash('sha256').update(blob.raw).digest('hex'), v.sha256);
    }
  } finally {
    await again.terminate();
  }
});

test.after(async () => {
  for (const l of launchers) { l.kill('SIGTERM'); await l.exitCode(); }
  for (const id of workerIds) await removeWorkerContainers(docker, id).catch(() => {});
  await srv?.stop();
  for (const d of dirs) d.remove();
  work?.remove();
});

test.run();
