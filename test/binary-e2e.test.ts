// End to end with nothing but the built executable: keygen → server → pool →
// stack → launcher → run with a confirmed second phase → logs → the sealed
// workspace opened by the stock `age` CLI. Every step is a subprocess of
// dist/launcher-linux-x64 (the admin steps too), so this proves what ships.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { ensureBuilt } from './helpers/build.ts';
import { adminCli, startBinaryLauncher, startBinaryServer, waitRunState, type AdminCli } from './helpers/binary.ts';
import { startProcess, type Started, stopProcesses } from './helpers/processes.ts';
import { TEST_IMAGE, ensureTestImage } from './helpers/docker.ts';

const binary = ensureBuilt();
const work = mkdtempSync(join(tmpdir(), 'launcher-binary-e2e-'));
const data = join(work, 'data');
const children: ChildProcess[] = [];
let cli: AdminCli;

const started = (args: string[], env: Record<string, string> = {}): Started => startProcess(binary, args, env, children);


/** `launcher admin … --json` through the binary, against the server's data directory. */
const admin = (args: string[]): any => cli.json(args);

test.after(async () => {
  await stopProcesses(children);
  rmSync(work, { recursive: true, force: true });
});

test('the binary alone: keygen, server, pool, stack, launcher, confirmed apply, logs, age opens the sealed workspace', async () => {
  await ensureTestImage(new DockerClient());

  // keygen: the pool key and CSR, on the user's side.
  const keyDir = join(work, 'key');
  mkdirSync(keyDir);
  const kg = spawnSync(binary, ['keygen', '--out', join(keyDir, 'spacelift'), '--bits', '2048'], { encoding: 'utf8' });
  assert.is(kg.status, 0, kg.stderr);
  const keyPath = join(keyDir, 'spacelift.key');

  // server
  const { url } = await startBinaryServer(started, data);
  cli = adminCli(binary, { data, url });

  // pool and stack through the admin CLI
  const created = admin(['pool', 'create', 'binary-e2e', '--csr', join(keyDir, 'spacelift.csr')]);
  const poolId: string = created.pool.id;
  const token: string = created.token;
  assert.ok(token.length > 100);
  const stack = admin(['stack', 'create', 'binary-e2e', '--pool', poolId, '--image', TEST_IMAGE,
    '--phase', 'plan=echo "plan from the binary" > plan.txt; echo planned',
    '--phase', 'apply=cat plan.txt; echo applied',
    '--confirm', 'apply']);
  const stackId: string = (stack.stack ?? stack).id;

  // the launcher, configured as the seed says
  await startBinaryLauncher(started, { token, keyPath, stateDir: join(work, 'state') });

  const triggered = admin(['run', 'trigger', stackId]);
  const runId: string = (triggered.run ?? triggered).id;
  await waitRunState(cli, runId, ['UNCONFIRMED']);
  admin(['run', 'confirm', runId]);
  await waitRunState(cli, runId, ['FINISHED']);

  const logs = spawnSync(binary, ['admin', 'run', 'logs', runId, '--data', data, '--server', url], { encoding: 'utf8' });
  assert.is(logs.status, 0, logs.stderr);
  assert.match(logs.stdout, /planned/);
  assert.match(logs.stdout, /plan from the binary/, 'apply read what plan wrote');
  assert.match(logs.stdout, /applied/);

  // The sealed workspace, fetched from the admin API, opens with the age CLI and the pool key.
  const adminToken = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  const sealed = join(work, 'ws.age');
  execFileSync('curl', ['-sS', '--fail', '--cacert', join(data, 'ca.crt'), '-H', `authorization: Bearer ${adminToken}`, '-o', sealed, `${url}/v1/runs/${runId}/workspace`]);
  const tar = execFileSync('age', ['-d', '-i', keyPath, sealed]);
  writeFileSync(join(work, 'ws.tar'), tar);
  const members = execFileSync('tar', ['-tf', join(work, 'ws.tar')], { encoding: 'utf8' }).split('\n');
  const plan = members.find((n) => n.replace(/^\.\//, '') === 'plan.txt');
  assert.ok(plan, members.join(','));
  assert.is(execFileSync('tar', ['-xOf', join(work, 'ws.tar'), plan!], { encoding: 'utf8' }).trim(), 'plan from the binary');
});

test.run();
