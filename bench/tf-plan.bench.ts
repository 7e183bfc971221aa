// Plan of an unchanged stack with 1,000 terraform_data resources: the
// launcher's own overhead over running the same Terraform commands in
// `docker run` on the same image. The state (made once by the host's terraform
// and imported as the stack's first version) matches the code, so every plan
// finds no changes.
//   launcher: a proposed run (init, then plan + show -json, each its own
//             container; the sealed state downloaded, opened and put in place;
//             the workspace sealed between the steps; logs shipped), timed from
//             the trigger until its log stream ends;
//   peer:     `docker run --rm --network none -v DIR:/w -w /w IMAGE sh -c
//             'terraform init && terraform plan -out && terraform show -json'`
//             on a fresh copy of the same code and state.
// Interleaved round by round. Reports both medians and the difference.
//
//   node_modules/.bin/node --import tsx bench/tf-plan.bench.ts [ROUNDS=5] [RESOURCES=1000]
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { parsePoolPrivateKey, publicKeyPem } from '../lib/keys.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { createPool, sealToKey, seedPoolKey, startLauncher, tarOf, tempDir } from '../test/helpers/launcher.ts';
import { TERRAFORM_BIN, TERRAFORM_IMAGE, ensureTerraformImage } from '../test/helpers/terraform.ts';

const ROUNDS = Number(process.argv[2] ?? 5);
const RESOURCES = Number(process.argv[3] ?? 1000);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const TF_ENV = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1' };

const docker = new DockerClient();
await ensureTerraformImage(docker);
const srv = await startTestServer();
const key = seedPoolKey(4096);
const pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
const pool = await createPool(srv, 'bench', key.csrPem);
const dir = tempDir('tf-plan-bench-');
const launcher = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: dir.path, env: { SPACELIFT_DEBUG: 'false' } });
await launcher.waitFor(/Registered with the server/);

const mainTf = `resource "terraform_data" "r" {\n  count = ${RESOURCES}\n  input = "value-\${count.index}"\n}\n`;
const hostDir = tempDir('tf-plan-bench-host-');
writeFileSync(join(hostDir.path, 'main.tf'), mainTf);
execFileSync(TERRAFORM_BIN, ['init', '-input=false'], { cwd: hostDir.path, env: TF_ENV, stdio: ['ignore', 'ignore', 'inherit'] });
execFileSync(TERRAFORM_BIN, ['apply', '-input=false', '-auto-approve', '-parallelism=50'], { cwd: hostDir.path, env: TF_ENV, stdio: ['ignore', 'ignore', 'inherit'] });
const state = readFileSync(join(hostDir.path, 'terraform.tfstate'));

const created = await srv.admin('POST', '/v1/stacks', { name: 'thousand', pool: pool.poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform' } });
if (created.status !== 201) throw new Error(created.text);
const stack = created.body.stack.id;
const imported = await srv.admin('PUT', `/v1/stacks/${stack}/state?base=none`, await sealToKey(state, pub));
if (imported.status !== 201) throw new Error(imported.text);
const ws = await sealToKey(await tarOf({ 'main.tf': mainTf }), pub);

async function viaLauncher(): Promise<number> {
  const t0 = performance.now();
  const r = await srv.admin('POST', `/v1/stacks/${stack}/runs?proposed=1`, ws, { headers: { 'content-type': 'application/octet-stream' } });
  if (r.status !== 201) throw new Error(r.text);
  const id = r.body.run.id;
  await srv.admin('GET', `/v1/runs/${id}/logs?follow=1`);
  const ms = performance.now() - t0;
  const run = (await srv.admin('GET', `/v1/runs/${id}`)).body.run;
  if (run.state !== 'FINISHED' || run.changes?.hasChanges !== false) throw new Error(`run ${id}: ${run.state} ${run.reason} ${JSON.stringify(run.changes)}`);
  return ms;
}

async function viaDockerRun(i: number): Promise<number> {
  const w = tempDir(`tf-plan-bench-peer-${i}-`);
  cpSync(join(hostDir.path, 'main.tf'), join(w.path, 'main.tf'));
  writeFileSync(join(w.path, 'terraform.tfstate'), state);
  const t0 = performance.now();
  execFileSync('docker', ['run', '--rm', '--network', 'none', '-e', 'TF_IN_AUTOMATION=1', '-v', `${w.path}:/w`, '-w', '/w', TERRAFORM_IMAGE, 'sh', '-c',
    'set -e; terraform init -input=false; terraform plan -input=false -out=p; terraform show -json p > p.json'], { stdio: 'pipe', maxBuffer: 256 << 20 });
  const ms = performance.now() - t0;
  // Files the container wrote as root: remove them through the same engine.
  execFileSync('docker', ['run', '--rm', '--network', 'none', '-v', `${w.path}:/w`, TERRAFORM_IMAGE, 'rm', '-rf', '/w/.terraform', '/w/p', '/w/p.json']);
  w.remove();
  return ms;
}

await viaLauncher();
await viaDockerRun(-1);
const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  a.push(await viaLauncher());
  b.push(await viaDockerRun(i));
  process.stderr.write(`round ${i + 1}: launcher ${a.at(-1)!.toFixed(0)} ms, docker run ${b.at(-1)!.toFixed(0)} ms\n`);
}
const diffs = a.map((x, i) => x - b[i]!);
console.log(`\nPlan of an unchanged stack, ${RESOURCES} terraform_data resources (state ${(state.length / 1048576).toFixed(1)} MiB), ${ROUNDS} rounds, load ${loadavg()[0]!.toFixed(1)}`);
console.log('| how | median wall | min | max |');
console.log('| --- | --- | --- | --- |');
console.log(`| launcher: proposed run (init; plan + show -json), trigger → run ended | ${median(a).toFixed(0)} ms | ${Math.min(...a).toFixed(0)} | ${Math.max(...a).toFixed(0)} |`);
console.log(`| peer: docker run, init && plan && show -json | ${median(b).toFixed(0)} ms | ${Math.min(...b).toFixed(0)} | ${Math.max(...b).toFixed(0)} |`);
console.log(`| launcher overhead, pair by pair | ${median(diffs).toFixed(0)} ms (${(median(a) / median(b)).toFixed(2)}×) | ${Math.min(...diffs).toFixed(0)} | ${Math.max(...diffs).toFixed(0)} |`);

launcher.kill('SIGTERM');
await launcher.exitCode();
await srv.stop();
dir.remove();
hostDir.remove();
