// Managed-state cost per tracked run, with a 10 MiB Terraform state. Two stacks
// run the same code (a terraform_data holding 5 MiB, sensitive so it stays out of the logs, so the state is about
// 10 MiB, and one resource replaced on every apply, so every apply writes state)
// on the same server and launcher, with autodeploy:
//   managed:   the state is a sealed version on the server: downloaded, opened,
//              put in place before init; copied out, sealed and uploaded after apply;
//   unmanaged: --manage-state=false, the same 10 MiB terraform.tfstate comes with
//              the uploaded source (the local backend), nothing else.
// Both carry the state in their sealed workspace between steps. The rounds
// alternate (managed, unmanaged, …) so both see the same machine load; each run is
// timed from the trigger until its log stream ends (the run ended). Target: the
// managed run's extra wall time ≤ 5 % of the unmanaged run's.
//
//   node_modules/.bin/node --import tsx bench/tf-state.bench.ts [ROUNDS=5] [STATE_MIB=10]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { parsePoolPrivateKey, publicKeyPem } from '../lib/keys.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { createPool, sealToKey, seedPoolKey, startLauncher, tarOf, tempDir } from '../test/helpers/launcher.ts';
import { TERRAFORM_BIN, TERRAFORM_IMAGE, ensureTerraformImage } from '../test/helpers/terraform.ts';

const ROUNDS = Number(process.argv[2] ?? 5);
const STATE_MIB = Number(process.argv[3] ?? 10);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const TF_ENV = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1' };

const docker = new DockerClient();
await ensureTerraformImage(docker);
const srv = await startTestServer({ args: ['--max-workspace-size', '1GiB'] }).catch(() => startTestServer());
const key = seedPoolKey(4096);
const pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
const pool = await createPool(srv, 'bench', key.csrPem);
const dir = tempDir('tf-state-bench-');
const launcher = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: dir.path, env: { SPACELIFT_DEBUG: 'false' } });
await launcher.waitFor(/Registered with the server/);

// The state holds the file twice (input and output): half the target size each.
const big = randomBytes(Math.floor((STATE_MIB * 1024 * 1024) / 4)).toString('hex');
const code = {
  'big.txt': big,
  'main.tf': [
    'resource "terraform_data" "big" {',
    '  input = sensitive(file("${path.module}/big.txt"))',
    '}',
    'resource "terraform_data" "tick" {',
    '  triggers_replace = [timestamp()]',
    '}',
    '',
  ].join('\n'),
};

// The unmanaged stack's state: made once by the host's terraform, uploaded with the source.
const hostDir = tempDir('tf-state-bench-host-');
for (const [n, b] of Object.entries(code)) writeFileSync(join(hostDir.path, n), b);
execFileSync(TERRAFORM_BIN, ['init', '-input=false'], { cwd: hostDir.path, env: TF_ENV, stdio: ['ignore', 'ignore', 'inherit'] });
execFileSync(TERRAFORM_BIN, ['apply', '-input=false', '-auto-approve'], { cwd: hostDir.path, env: TF_ENV, stdio: ['ignore', 'ignore', 'inherit'] });
const stateFile = join(hostDir.path, 'terraform.tfstate');
const stateBytes = statSync(stateFile).size;

async function stack(name: string, manageState: boolean): Promise<string> {
  const r = await srv.admin('POST', '/v1/stacks', { name, pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform', autodeploy: true, manageState } });
  if (r.status !== 201) throw new Error(r.text);
  return r.body.stack.id;
}
const managed = await stack('managed', true);
const unmanaged = await stack('unmanaged', false);
const managedWs = await sealToKey(await tarOf(code), pub);
const unmanagedWs = await sealToKey(await tarOf({ ...code, 'terraform.tfstate': readFileSync(stateFile, 'utf8') }), pub);
// The managed stack starts from the same state, imported as its first version.
const imported = await srv.admin('PUT', `/v1/stacks/${managed}/state?base=none`, await sealToKey(readFileSync(stateFile), pub));
if (imported.status !== 201) throw new Error(imported.text);

async function timedRun(stackId: string, ws: Buffer): Promise<number> {
  const t0 = performance.now();
  const r = await srv.admin('POST', `/v1/stacks/${stackId}/runs?proposed=0`, ws, { headers: { 'content-type': 'application/octet-stream' } });
  if (r.status !== 201) throw new Error(r.text);
  const id = r.body.run.id;
  await srv.admin('GET', `/v1/runs/${id}/logs?follow=1`);
  const ms = performance.now() - t0;
  const run = (await srv.admin('GET', `/v1/runs/${id}`)).body.run;
  if (run.state !== 'FINISHED') throw new Error(`run ${id} ended ${run.state}: ${run.reason}`);
  return ms;
}

// One warm-up each (image in the page cache, plugins initialised).
await timedRun(managed, managedWs);
await timedRun(unmanaged, unmanagedWs);
const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  a.push(await timedRun(managed, managedWs));
  b.push(await timedRun(unmanaged, unmanagedWs));
  process.stderr.write(`round ${i + 1}: managed ${a.at(-1)!.toFixed(0)} ms, unmanaged ${b.at(-1)!.toFixed(0)} ms\n`);
}
const versions = (await srv.admin('GET', `/v1/stacks/${managed}/state`)).body.versions;
const ratios = a.map((x, i) => x / b[i]!);
console.log(`\nManaged state, ${(stateBytes / 1048576).toFixed(1)} MiB terraform.tfstate (sealed version ${(versions[0].size / 1048576).toFixed(1)} MiB), ${ROUNDS} rounds, load ${loadavg()[0]!.toFixed(1)}`);
console.log('| tracked run (init, plan, apply) | median wall | min | max |');
console.log('| --- | --- | --- | --- |');
console.log(`| managed state | ${median(a).toFixed(0)} ms | ${Math.min(...a).toFixed(0)} | ${Math.max(...a).toFixed(0)} |`);
console.log(`| --manage-state=false, state in the source (peer) | ${median(b).toFixed(0)} ms | ${Math.min(...b).toFixed(0)} | ${Math.max(...b).toFixed(0)} |`);
console.log(`| managed / peer, pair by pair | ${median(ratios).toFixed(3)}× (${((median(ratios) - 1) * 100).toFixed(1)} %) | ${Math.min(...ratios).toFixed(3)} | ${Math.max(...ratios).toFixed(3)} |`);

launcher.kill('SIGTERM');
await launcher.exitCode();
await srv.stop();
dir.remove();
hostDir.remove();
