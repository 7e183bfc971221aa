// The main job, end to end on one machine, with the same commands a user types:
// a Terraform stack whose code lives in a Git repository. A local Git server
// (git http-backend behind basic auth on 127.0.0.1) holds the code; a push
// reaches the server as a signed webhook, the worker fetches exactly the pushed
// commit, plans, waits for confirmation, applies; a second push that changes no
// infrastructure plans "no changes" and finishes without an apply. Then the
// checks: the secret is masked, the server's data directory holds neither the
// secret, the Git credential nor the code, and the sealed state and workspace
// open with the stock `age` tool and the pool key.
//
//   npm run demo                 (after `bash scripts/setup-host.sh && npm ci`)
//   npm run demo -- --keep       leave the server data and keys in the printed folder
//
// The runner image is busybox plus this machine's /usr/local/bin/terraform, built
// locally (no registry), the run's containers use network `none`, Terraform needs
// no provider download (terraform_data, local-exec), and everything listens on
// 127.0.0.1 only.
import { $, fs, path, os } from 'zx';
import { randomBytes } from 'node:crypto';
import { DockerClient } from '../lib/docker/client.ts';
import { signBody } from '../lib/vcs/webhook.ts';
import { freePort } from '../test/helpers/docker.ts';
import { githubPushPayload, startGitServer } from '../test/helpers/git-server.ts';
import { ensureTerraformImage } from '../test/helpers/terraform.ts';

$.verbose = false;
$.quiet = true;
// zx spawns through a shell; Node 26 warns about that on every call.
process.noDeprecation = true;
const root = path.resolve(import.meta.dirname, '..');
// tsx resolved from this project, so the commands work from any folder.
const launcher = [process.execPath, '--import', import.meta.resolve('tsx'), path.join(root, 'launcher.ts')];
const keep = process.argv.includes('--keep');
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-demo-'));
const say = (s: string) => console.log(`\n== ${s}`);
const indent = (s: string) => s.trim().split('\n').map((l) => `   ${l}`).join('\n');

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const SECRET = `s3cr3t-demo-${randomBytes(4).toString('hex')}`;
const GIT_TOKEN = `git-token-${randomBytes(6).toString('hex')}`;
const CODE_MARKER = `only-in-the-repository-${randomBytes(4).toString('hex')}`;
const MAIN_TF = `# ${CODE_MARKER}
resource "terraform_data" "network" {
  input = "10.0.0.0/16"
}

resource "terraform_data" "app" {
  input = "app-v1 on \${terraform_data.network.output}"
  provisioner "local-exec" {
    command = "echo deploying app-v1"
  }
}

output "app" {
  value = terraform_data.app.output
}
`;

const children: Array<{ kill(sig?: NodeJS.Signals): unknown }> = [];
let gitServer: Awaited<ReturnType<typeof startGitServer>> | undefined;
const failures: string[] = [];
const check = (ok: boolean, good: string, bad: string) => {
  console.log(ok ? `ok: ${good}` : `FAILED: ${bad}`);
  if (!ok) failures.push(bad);
};

try {
  say(`Working in ${dir}`);
  const docker = DockerClient.fromEnv(process.env);
  const image = await ensureTerraformImage(docker);
  console.log(`runner image ${image} is present (busybox + ${(await $`/usr/local/bin/terraform version`).stdout.split('\n')[0]}, imported locally)`);

  say('1. The infrastructure code in a Git repository, on a local Git server (git http-backend, basic auth, 127.0.0.1)');
  gitServer = await startGitServer({ username: 'deploy', password: GIT_TOKEN });
  const repo = gitServer.createRepo('infra');
  repo.commit({ 'README.md': '# infra\n' }, 'Start the infra repository');
  console.log(`repository ${repo.url} (user "deploy", a token as password)`);

  say('2. The user makes the pool key and CSR (the key never leaves this folder)');
  await $`${launcher} keygen --out ${path.join(dir, 'spacelift')}`.pipe(process.stdout);

  say('3. The server starts on 127.0.0.1 (first start makes its CA and admin token)');
  const port = await freePort();
  const data = path.join(dir, 'server');
  const server = $`${launcher} server --data ${data} --listen 127.0.0.1:${port}`.nothrow();
  children.push(server);
  const admin = (...args: string[]) => $`${launcher} admin --data ${data} --server https://127.0.0.1:${port} ${args}`;
  await until('the server', 60_000, async () => ((await admin('pool', 'list')).exitCode === 0 ? true : undefined));
  console.log(`server listening on https://127.0.0.1:${port}, data in ${data}`);

  say('4. The admin creates the pool from the CSR and gets the token');
  const token = (await admin('pool', 'create', 'demo', '--csr', path.join(dir, 'spacelift.csr'))).stdout.trim();
  await fs.writeFile(path.join(dir, 'token'), token + '\n', { mode: 0o600 });
  const poolId: string = JSON.parse((await admin('pool', 'show', 'demo', '--json')).stdout).pool.id;
  console.log(`pool ${poolId}; token saved to ${path.join(dir, 'token')} (${token.length} characters)`);

  say('5. A Terraform stack from the repository; the Git credential and a secret are sealed on this machine');
  const stackId = (await $({ input: `deploy:${GIT_TOKEN}\n` })`${launcher} admin --data ${data} --server https://127.0.0.1:${port} stack create infra --pool ${poolId} --image ${image} --tool terraform --repo ${repo.url} --branch main --repo-credential-file - --secret ${`DEMO_SECRET=${SECRET}`} --hook ${'before-plan=echo "the secret is $DEMO_SECRET"'}`).stdout.trim();
  console.log(indent((await admin('stack', 'show', stackId)).stdout));

  say('6. The launcher joins the pool (SPACELIFT_TOKEN and the base64 of the key)');
  const keyB64 = (await fs.readFile(path.join(dir, 'spacelift.key'))).toString('base64');
  const worker = $({
    env: {
      ...process.env,
      SPACELIFT_TOKEN: token,
      SPACELIFT_POOL_PRIVATE_KEY: keyB64,
      SPACELIFT_WORKER_NETWORK: 'none',
      SPACELIFT_LAUNCHER_STATE_DIR: path.join(dir, 'launcher-state'),
      SPACELIFT_METADATA_demo: 'yes',
    },
  })`${launcher}`.nothrow();
  children.push(worker);
  await until('the worker to register', 60_000, async () => {
    const w = JSON.parse((await admin('worker', 'list', '--pool', poolId, '--json')).stdout);
    return w.workers.length > 0 ? true : undefined;
  });
  console.log(indent((await admin('worker', 'list', '--pool', poolId)).stdout));

  say('7. The Git server gets the webhook URL and secret');
  const hook = JSON.parse((await admin('stack', 'webhook', stackId, '--json')).stdout).webhook as { url: string; secret: string };
  console.log(`url ${hook.url}, secret ${hook.secret.slice(0, 4)}… (signs every delivery: X-Hub-Signature-256)`);
  const push = async (sha: string, delivery: string) => {
    const body = JSON.stringify(githubPushPayload(repo, sha));
    await fs.writeFile(path.join(dir, 'push.json'), body);
    const out = await $`curl -sS --cacert ${path.join(data, 'ca.crt')} -H ${'content-type: application/json'} -H ${'x-github-event: push'} -H ${`x-github-delivery: ${delivery}`} -H ${`x-hub-signature-256: ${signBody(body, hook.secret)}`} --data-binary ${`@${path.join(dir, 'push.json')}`} ${hook.url}`;
    console.log(`POST ${hook.url} (signed) → ${out.stdout.trim()}`);
    return JSON.parse(out.stdout) as { runs: Array<{ id: string }> };
  };
  const runView = async (id: string) => JSON.parse((await admin('run', 'show', id, '--json')).stdout).run;

  say('8. A developer pushes main.tf; the push queues a tracked run at exactly that commit');
  const sha1 = repo.commit({ 'main.tf': MAIN_TF }, 'Add the network and the app');
  console.log(`pushed ${sha1} to main`);
  const r1 = (await push(sha1, 'demo-1')).runs[0]!.id;
  await until('the plan (UNCONFIRMED)', 180_000, async () => {
    const r = await runView(r1);
    if (['FAILED', 'CANCELED'].includes(r.state)) throw Object.assign(new Error(`run ${r1} ${r.state}: ${r.reason}`), { fatal: true });
    return r.state === 'UNCONFIRMED' ? true : undefined;
  }).catch(async (e) => { console.log((await admin('run', 'logs', r1)).stdout); throw e; });
  console.log(indent((await admin('run', 'show', r1)).stdout));
  console.log(`run ${r1} planned its changes and waits; confirming`);
  await admin('run', 'confirm', r1);
  await admin('run', 'logs', r1, '--follow').pipe(process.stdout);
  const first = await until('the apply', 180_000, async () => {
    const r = await runView(r1);
    return ['FINISHED', 'FAILED', 'CANCELED'].includes(r.state) ? r : undefined;
  });
  console.log(`run ${r1} ended: ${first.state}`);
  check(first.state === 'FINISHED' && first.commit?.sha === sha1, `the first push was planned and applied at ${sha1.slice(0, 12)}`, `the first run ended ${first.state} at ${first.commit?.sha}`);

  say('9. A second push changes only the README: the plan finds no changes, nothing to confirm or apply');
  const sha2 = repo.commit({ 'README.md': '# infra\n\nThe network and the app.\n' }, 'Describe the repository');
  console.log(`pushed ${sha2} to main`);
  const r2 = (await push(sha2, 'demo-2')).runs[0]!.id;
  const second = await until('the second run', 180_000, async () => {
    const r = await runView(r2);
    return ['FINISHED', 'FAILED', 'CANCELED', 'UNCONFIRMED'].includes(r.state) ? r : undefined;
  });
  console.log(indent((await admin('run', 'show', r2)).stdout));
  check(second.state === 'FINISHED' && second.changes?.hasChanges === false && second.commit?.sha === sha2,
    'the second run planned no changes and finished without an apply', `the second run is ${second.state} (changes ${JSON.stringify(second.changes)})`);
  console.log(indent((await admin('run', 'list', '--stack', stackId)).stdout));

  say('10. What the server holds: masked logs, metadata, and sealed state only the pool key opens');
  const logs = (await admin('run', 'logs', r1)).stdout;
  check(logs.includes('the secret is *****') && !logs.includes(SECRET), 'the secret is masked in the run logs', 'the secret was not masked in the logs');
  for (const [what, needle] of [['the secret', SECRET], ['the Git credential', GIT_TOKEN], ['the repository content', CODE_MARKER]] as const) {
    const found = await $`grep -rl ${needle} ${data}`.nothrow();
    check(found.exitCode === 1, `${what} appears nowhere in the server data directory`, `${what} found in ${found.stdout.trim()}`);
  }
  const adminToken = (await fs.readFile(path.join(data, 'admin.token'), 'utf8')).trim();
  const curlAdmin = (urlPath: string, out: string) => $`curl -fsS --cacert ${path.join(data, 'ca.crt')} -H ${`Authorization: Bearer ${adminToken}`} -o ${out} https://127.0.0.1:${port}${urlPath}`;
  const stateFile = path.join(dir, 'state.age');
  await curlAdmin(`/v1/stacks/${stackId}/state/current`, stateFile);
  const state = JSON.parse((await $`age -d -i ${path.join(dir, 'spacelift.key')} ${stateFile}`).stdout);
  const resources = (state.resources as Array<{ type: string; name: string }>).map((r) => `${r.type}.${r.name}`);
  console.log(`age -d state.age: Terraform state serial ${state.serial}, resources ${resources.join(', ')}, output app = ${JSON.stringify(state.outputs?.app?.value)}`);
  check(resources.includes('terraform_data.app') && resources.includes('terraform_data.network'), 'the sealed state opens with age and the pool key', 'the state does not hold the applied resources');
  const wsFile = path.join(dir, 'workspace.age');
  await curlAdmin(`/v1/runs/${r1}/workspace`, wsFile);
  const listing = (await $`age -d -i ${path.join(dir, 'spacelift.key')} ${wsFile} | tar -tf -`).stdout.trim().split('\n');
  console.log(`age -d workspace.age | tar -t: ${listing.filter((n) => !n.includes('/.terraform/')).join(' ')}`);
  check(listing.some((n) => n.replace(/^\.\//, '') === 'main.tf'), 'the sealed workspace holds the fetched commit\'s files', 'main.tf missing from the workspace');
  const withoutToken = await $({ env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } })`git ls-remote ${repo.url}`.nothrow();
  check(withoutToken.exitCode !== 0, 'the Git server refuses anyone without the credential', 'the Git server answered without credentials');

  if (failures.length > 0) {
    console.log(`\n${failures.length} check(s) failed`);
    process.exitCode = 1;
  } else {
    console.log('\nAll checks passed.');
  }
} finally {
  for (const c of children.reverse()) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1500));
  await gitServer?.stop();
  if (!keep) await fs.rm(dir, { recursive: true, force: true });
  else console.log(`\nkept ${dir}`);
}
