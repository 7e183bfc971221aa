// The main job, end to end on one machine, with the same commands a user types:
// keygen -> server -> pool -> stack with plan/confirm/apply -> launcher -> run ->
// logs -> the sealed workspace opened with the stock `age` tool.
//
//   npm run demo                 (after `bash scripts/setup-host.sh && npm ci`)
//   npm run demo -- --keep       leave the server data and keys in the printed folder
//
// The runner image is a busybox image built locally (no registry needed), the run's
// containers use network `none`, and everything listens on 127.0.0.1 only.
import { $, fs, path, os } from 'zx';
import { DockerClient } from '../lib/docker/client.ts';
import { ensureTestImage, freePort, TEST_IMAGE } from '../test/helpers/docker.ts';

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

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const children: Array<{ kill(sig?: NodeJS.Signals): unknown }> = [];
try {
  say(`Working in ${dir}`);
  const docker = DockerClient.fromEnv(process.env);
  await ensureTestImage(docker);
  console.log(`runner image ${TEST_IMAGE} is present (busybox imported locally)`);

  say('1. The user makes the pool key and CSR (the key never leaves this folder)');
  await $`${launcher} keygen --out ${path.join(dir, 'spacelift')}`.pipe(process.stdout);

  say('2. The server starts on 127.0.0.1 (first start makes its CA and admin token)');
  const port = await freePort();
  const data = path.join(dir, 'server');
  const server = $`${launcher} server --data ${data} --listen 127.0.0.1:${port}`.nothrow();
  children.push(server);
  const admin = (...args: string[]) => $`${launcher} admin --data ${data} --server https://127.0.0.1:${port} ${args}`;
  await until('the server', 60_000, async () => ((await admin('pool', 'list')).exitCode === 0 ? true : undefined));
  console.log(`server listening on https://127.0.0.1:${port}, data in ${data}`);

  say('3. The admin creates the pool from the CSR and gets the token');
  const token = (await admin('pool', 'create', 'demo', '--csr', path.join(dir, 'spacelift.csr'))).stdout.trim();
  await fs.writeFile(path.join(dir, 'token'), token + '\n', { mode: 0o600 });
  const pool = JSON.parse((await admin('pool', 'show', 'demo', '--json')).stdout);
  const poolId: string = pool.pool?.id ?? pool.id;
  console.log(`pool ${poolId}; token saved to ${path.join(dir, 'token')} (${token.length} characters)`);

  say('4. A stack with plan -> confirm -> apply and a secret sealed on this machine');
  const stackId = (await admin('stack', 'create', 'demo-stack', '--pool', poolId, '--image', TEST_IMAGE,
    '--env', 'GREETING=hello',
    '--secret', 'DEMO_SECRET=s3cr3t-demo-value',
    '--phase', 'plan=echo "$GREETING from plan"; echo "the secret is $DEMO_SECRET"; date > plan.txt; ls',
    '--phase', 'apply=echo "applying the plan made at $(cat plan.txt)"; echo done > applied.txt',
    '--confirm', 'apply')).stdout.trim();
  console.log(`stack ${stackId}`);

  say('5. The launcher joins the pool (SPACELIFT_TOKEN and the base64 of the key)');
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
    return (w.workers ?? w).length > 0 ? true : undefined;
  });
  console.log((await admin('worker', 'list', '--pool', poolId)).stdout.trim());

  say('6. Trigger a run; plan runs, then the run waits for confirmation');
  const runId = (await admin('run', 'trigger', stackId)).stdout.trim();
  const runState = async () => {
    const r = JSON.parse((await admin('run', 'show', runId, '--json')).stdout);
    return (r.run ?? r).state as string;
  };
  await until('UNCONFIRMED', 120_000, async () => ((await runState()) === 'UNCONFIRMED' ? true : undefined));
  console.log(`run ${runId} is UNCONFIRMED; confirming`);
  await admin('run', 'confirm', runId);

  say('7. Logs, as the server stored them (the secret is masked)');
  await admin('run', 'logs', runId, '--follow').pipe(process.stdout);
  const final = await until('the run to end', 120_000, async () => {
    const s = await runState();
    return ['FINISHED', 'FAILED', 'CANCELED'].includes(s) ? s : undefined;
  });
  console.log(`run ended: ${final}`);

  say('8. The server holds the workspace sealed; only the pool key opens it (age CLI)');
  const sealed = path.join(dir, 'workspace.age');
  await $`curl -fsS --cacert ${path.join(data, 'ca.crt')} -H ${`Authorization: Bearer ${(await fs.readFile(path.join(data, 'admin.token'), 'utf8')).trim()}`} -o ${sealed} https://127.0.0.1:${port}/v1/runs/${runId}/workspace`;
  console.log((await $`age -d -i ${path.join(dir, 'spacelift.key')} ${sealed} | tar -tvf -`).stdout.trim());
  const leaked = await $`grep -rl s3cr3t-demo-value ${data}`.nothrow();
  console.log(leaked.exitCode === 1 ? 'the secret appears nowhere in the server data directory' : `SECRET FOUND IN ${leaked.stdout}`);
  if (final !== 'FINISHED' || leaked.exitCode !== 1) process.exitCode = 1;
} finally {
  for (const c of children.reverse()) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1500));
  if (!keep) await fs.rm(dir, { recursive: true, force: true });
  else console.log(`\nkept ${dir}`);
}
