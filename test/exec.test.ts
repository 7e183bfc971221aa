// `launcher exec` as a subprocess against the real dockerd: exit codes, the
// launcher configuration from the environment, masking, the workspace.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { inspectImage, removeImage } from '../lib/docker/images.ts';
import { listManagedContainers } from '../lib/executor.ts';
import { TEST_IMAGE, dockerConfigDir, ensureTestImage, pushTestImage, startRegistry, type TestRegistry } from './helpers/docker.ts';

const docker = new DockerClient();
const root = new URL('..', import.meta.url).pathname;
const tmpDirs: string[] = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'launcher-exec-cli-')); tmpDirs.push(d); return d; };

interface Exec { code: number; stdout: string; stderr: string }

function exec(args: string[], env: Record<string, string> = {}): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'launcher.ts', 'exec', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', SPACELIFT_WORKER_NETWORK: 'none', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const img = ['--image', TEST_IMAGE];

test.before(async () => { await ensureTestImage(docker); });

test('exit code is the script\'s: 0 and N', async () => {
  const ok = await exec([...img, '--', 'echo hello; echo to-stderr >&2']);
  assert.is(ok.code, 0, ok.stderr);
  assert.is(ok.stdout, 'hello\n');
  assert.match(ok.stderr, /to-stderr\n/);
  const bad = await exec([...img, '--', 'echo before; exit 42']);
  assert.is(bad.code, 42);
  assert.is(bad.stdout, 'before\n');
});

test('a launcher timeout exits 124 and names the timeout', async () => {
  const logs = await exec([...img, '--', 'echo start; sleep 600'], { SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '1s' });
  assert.is(logs.code, 124);
  assert.is(logs.stdout, 'start\n');
  assert.match(logs.stderr, /logs timeout: nothing printed for 1000 ms \(SPACELIFT_LAUNCHER_LOGS_TIMEOUT\)/);
  const runT = await exec([...img, '--', 'while true; do echo tick; sleep 0.2; done'], { SPACELIFT_LAUNCHER_RUN_TIMEOUT: '2s' });
  assert.is(runT.code, 124);
  assert.match(runT.stderr, /run timeout: ran longer than 2000 ms \(SPACELIFT_LAUNCHER_RUN_TIMEOUT\)/);
});

test('configuration and usage errors exit 2 with a message naming the culprit', async () => {
  const dur = await exec([...img, '--', 'true'], { SPACELIFT_LAUNCHER_RUN_TIMEOUT: '70' });
  assert.is(dur.code, 2);
  assert.match(dur.stderr, /SPACELIFT_LAUNCHER_RUN_TIMEOUT/);
  const noScript = await exec([...img]);
  assert.is(noScript.code, 2);
  assert.match(noScript.stderr, /Missing SCRIPT/);
  const badEnv = await exec([...img, '--secret', 'no-equals-sign-supersecret', '--', 'true']);
  assert.is(badEnv.code, 2);
  assert.match(badEnv.stderr, /Cannot use --secret \(value not shown\): expected KEY=VALUE, e\.g\. --secret TF_VAR_region=eu-west-1/);
  assert.not.match(badEnv.stderr, /supersecret/);
  // The same rules as launcher admin (one parser): variable names only, each key once.
  const badName = await exec([...img, '--env', '1X=y', '--', 'true']);
  assert.is(badName.code, 2);
  assert.match(badName.stderr, /Cannot use --env 1X=…: "1X" is not a variable name/);
  const twice = await exec([...img, '--secret', 'T=s3cr3tvalue', '--secret', 'T=s3cr3tvalue', '--', 'true']);
  assert.is(twice.code, 2);
  assert.match(twice.stderr, /Cannot use --secret T=… twice/);
  assert.not.match(twice.stderr, /s3cr3tvalue/);
  const unknown = await exec(['--frobnicate', '--', 'true']);
  assert.is(unknown.code, 2);
  const mount = await exec([...img, '--', 'true'], { SPACELIFT_WORKER_EXTRA_MOUNTS: '/nonexistent/launcher-x:/x' });
  assert.is(mount.code, 2);
  assert.match(mount.stderr, /host path \/nonexistent\/launcher-x does not exist/);
  const cfg = await exec([...img, '--', 'true'], { SPACELIFT_DOCKER_CONFIG_DIR: '/nonexistent/dockercfg' });
  assert.is(cfg.code, 2);
  assert.match(cfg.stderr, /Cannot read SPACELIFT_DOCKER_CONFIG_DIR config \/nonexistent\/dockercfg\/config\.json: ENOENT/);
  const help = await exec(['--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /^Usage: launcher exec \[OPTIONS\] -- SCRIPT/);
  const ws = await exec([...img, '--workspace', '/nonexistent/ws', '--', 'true']);
  assert.is(ws.code, 2);
  assert.match(ws.stderr, /Cannot use --workspace \/nonexistent\/ws: not a directory/);
});

test('masking: SPACELIFT_MASK_ENVS and --secret values, split across writes with a pause, on both streams, add-mask across streams', async () => {
  // The pause before the stderr line: the engine orders the two streams only as
  // it reads its two pipes, so a directive on stdout masks stderr from then on.
  const r = await exec([...img, '--secret', 'API_TOKEN=tok-5ecret-value', '--',
    'echo "db=$DB_PASSWORD"; printf "tok-5ec"; sleep 1; printf "ret-value\\n"; echo "err $API_TOKEN" >&2; echo "::add-mask::later-hidden"; sleep 1; echo "later-hidden" >&2; echo done'], {
    SPACELIFT_WHITELIST_ENVS: 'DB_PASSWORD',
    SPACELIFT_MASK_ENVS: 'DB_PASSWORD',
    DB_PASSWORD: 'hunter2-long-password',
  });
  assert.is(r.code, 0, r.stderr);
  for (const secret of ['hunter2-long-password', 'tok-5ecret-value', 'later-hidden']) {
    assert.not.ok(r.stdout.includes(secret), `stdout leaks ${secret}`);
    assert.not.ok(r.stderr.includes(secret), `stderr leaks ${secret}`);
  }
  assert.match(r.stdout, /^db=\*+\n\*+\n::add-mask::\*+\ndone\n$/);
  assert.match(r.stderr, /err \*+\n\*+\n/);
});

test('whitelist: plain, ro_ and wo_ entries follow --read-only', async () => {
  const env = { SPACELIFT_WHITELIST_ENVS: 'PLAIN,ro_ONLY_RO,wo_ONLY_WO', PLAIN: 'p', ONLY_RO: 'r', ONLY_WO: 'w', NOT_LISTED: 'n' };
  const script = 'echo "PLAIN=$PLAIN RO=$ONLY_RO WO=$ONLY_WO NOT=$NOT_LISTED"';
  const write = await exec([...img, '--', script], env);
  assert.is(write.stdout, 'PLAIN=p RO= WO=w NOT=\n');
  const ro = await exec([...img, '--read-only', '--', script], env);
  assert.is(ro.stdout, 'PLAIN=p RO=r WO= NOT=\n');
  const phaseEnv = await exec([...img, '--env', 'PLAIN=overridden', '--', 'echo $PLAIN'], env);
  assert.is(phaseEnv.stdout, 'overridden\n');
});

test('extra mounts: all runs, read-only runs only, write runs only', async () => {
  const [all, ro, wo] = [tmp(), tmp(), tmp()];
  const env = {
    SPACELIFT_WORKER_EXTRA_MOUNTS: `${all}:/mnt/all`,
    SPACELIFT_WORKER_RO_EXTRA_MOUNTS: `${ro}:/mnt/ro`,
    SPACELIFT_WORKER_WO_EXTRA_MOUNTS: `${wo}:/mnt/wo`,
  };
  const script = 'for d in all ro wo; do if [ -d /mnt/$d ]; then echo "$d:yes"; echo x > /mnt/$d/from-run; else echo "$d:no"; fi; done';
  const write = await exec([...img, '--', script], env);
  assert.is(write.stdout, 'all:yes\nro:no\nwo:yes\n', write.stderr);
  assert.ok(existsSync(join(wo, 'from-run')));
  const readOnly = await exec([...img, '--read-only', '--', script], env);
  assert.is(readOnly.stdout, 'all:yes\nro:yes\nwo:no\n');
  assert.ok(existsSync(join(ro, 'from-run')));
});

test('--workspace is copied in, --out receives the workspace back', async () => {
  const ws = tmp();
  mkdirSync(join(ws, 'modules'));
  writeFileSync(join(ws, 'main.tf'), 'resource "x" "y" {}\n');
  writeFileSync(join(ws, 'modules/m.tf'), 'module\n');
  const out = join(tmp(), 'out');
  const r = await exec([...img, '--workspace', ws, '--out', out, '--', 'cat main.tf modules/m.tf; echo planned > plan.out']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'resource "x" "y" {}\nmodule\n');
  assert.is(readFileSync(join(out, 'plan.out'), 'utf8'), 'planned\n');
  assert.is(readFileSync(join(out, 'modules/m.tf'), 'utf8'), 'module\n');
});

test('runtime from the misspelled SPCELIFT_WORKER_RUNTIME is used with a warning', async () => {
  // The recording runtime (test/fixtures/recording-runtime) appends to the
  // file the container's environment names: this test's own file.
  const calls = join(tmp(), 'runtime.calls');
  const r = await exec([...img, '--env', `LAUNCHER_TEST_RUNTIME_CALLS=${calls}`, '--', 'echo ran'], { SPCELIFT_WORKER_RUNTIME: 'launcher-test-runtime' });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /SPCELIFT_WORKER_RUNTIME is a misspelling: rename it to SPACELIFT_WORKER_RUNTIME/);
  assert.ok(existsSync(calls), 'the recording runtime was called');
  assert.match(readFileSync(calls, 'utf8'), /\bcreate\b/);
});

let registry: TestRegistry | undefined;
test('private image pulled with SPACELIFT_DOCKER_CONFIG_DIR; a wrong password exits 1 with a clear error', async () => {
  registry = await startRegistry();
  const image = await pushTestImage(docker, registry, 'exec-private', 'v2');
  await removeImage(docker, image);
  const wrong = dockerConfigDir(registry.host, registry.username, 'not-the-password');
  tmpDirs.push(wrong);
  const bad = await exec(['--image', image, '--', 'echo never'], { SPACELIFT_DOCKER_CONFIG_DIR: wrong });
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /Docker pull image 127\.0\.0\.1:\d+\/launcher-test\/exec-private:v2 failed: .*credentials for 127\.0\.0\.1:\d+ in SPACELIFT_DOCKER_CONFIG_DIR\/config\.json were refused/);
  assert.not.match(bad.stderr, /not-the-password/);
  const good = dockerConfigDir(registry.host, registry.username, registry.password);
  tmpDirs.push(good);
  const ok = await exec(['--image', image, '--', 'echo pulled'], { SPACELIFT_DOCKER_CONFIG_DIR: good });
  assert.is(ok.code, 0, ok.stderr);
  assert.is(ok.stdout, 'pulled\n');
  assert.ok(await inspectImage(docker, image));
  await removeImage(docker, image);
});

test('exec leaves no container behind', async () => {
  // Only finished ones: a running exec container may belong to someone else's exec right now.
  const left = (await listManagedContainers(docker)).filter((c) => c.workerId.startsWith('exec-') && c.state !== 'running' && c.state !== 'created');
  assert.equal(left, []);
});

test.after(async () => {
  await registry?.stop();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  await docker.close();
});

test.run();
