// The executor against the real dockerd: every option proven from inside the
// container or with the engine's own inspect. No mocked Engine API.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { pack, extract } from 'tar-stream';
import { DockerClient } from '../lib/docker/client.ts';
import { createContainer, inspectContainer, startContainer, waitContainer, type ContainerInfo } from '../lib/docker/containers.ts';
import { inspectImage, removeImage } from '../lib/docker/images.ts';
import { loadDockerConfig, registryAuthHeader } from '../lib/docker/auth.ts';
import {
  LABELS, containerName, containerSpec, listManagedContainers, removeLeftovers, resumePhase, runPhase,
  type PhaseResult, type PhaseSpec,
} from '../lib/executor.ts';
import {
  TEST_IMAGE, dockerConfigDir, ensureTestImage, pushTestImage, removeWorkerContainers, startRegistry, type TestRegistry,
} from './helpers/docker.ts';

const docker = new DockerClient();
const workerId = `test-executor-${randomBytes(4).toString('hex')}`;
const tmpDirs: string[] = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'launcher-exec-test-')); tmpDirs.push(d); return d; };

interface Ran { result: PhaseResult; stdout: string; stderr: string; both: string }

function spec(script: string, over: Partial<PhaseSpec> = {}): PhaseSpec & { out: { stdout: string; stderr: string; both: string } } {
  const out = { stdout: '', stderr: '', both: '' };
  return {
    runId: `run-${randomBytes(3).toString('hex')}`,
    phase: 'plan',
    workerId,
    image: TEST_IMAGE,
    script,
    env: {},
    readOnly: false,
    network: 'none',
    logsTimeoutMs: 60_000,
    runTimeoutMs: 120_000,
    killGraceMs: 2_000,
    onOutput: (c, s) => {
      const t = Buffer.from(c).toString('utf8');
      out[s] += t;
      out.both += t;
    },
    out,
    ...over,
  };
}

async function run(script: string, over: Partial<PhaseSpec> = {}): Promise<Ran> {
  const s = spec(script, over);
  const result = await runPhase(s, { docker });
  return { result, ...s.out };
}

/** Runs a phase and inspects its container while it runs (the script must print "ready" then wait). */
async function runAndInspect(script: string, over: Partial<PhaseSpec> = {}): Promise<Ran & { info: ContainerInfo }> {
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => { resolveReady = r; });
  const s = spec(script, over);
  const onOutput = s.onOutput;
  s.onOutput = (c, st) => { onOutput(c, st); if (s.out.both.includes('ready')) resolveReady(); };
  const running = runPhase(s, { docker });
  await Promise.race([ready, running]);
  const [c] = await listManagedContainers(docker, { runId: s.runId });
  assert.ok(c, 'the phase container is listed by its labels while it runs');
  const info = (await inspectContainer(docker, c!.id))!;
  const result = await running;
  return { result, info, ...s.out };
}

test.before(async () => {
  await ensureTestImage(docker);
});

test('an instant `echo` phase never loses output (50 phases)', async () => {
  for (let i = 0; i < 50; i++) {
    const r = await run(`echo hello-${i}`);
    assert.is(r.result.outcome, 'succeeded');
    assert.is(r.stdout, `hello-${i}\n`, `phase ${i}`);
  }
});

test('stdout and stderr are demultiplexed; the exit code separates success from the script failing', async () => {
  const ok = await run('echo out-1; echo err-1 >&2; echo out-2');
  assert.is(ok.result.outcome, 'succeeded');
  assert.is(ok.result.exitCode, 0);
  assert.is(ok.stdout, 'out-1\nout-2\n');
  assert.is(ok.stderr, 'err-1\n');
  const bad = await run('echo before; exit 7');
  assert.is(bad.result.outcome, 'failed');
  assert.is(bad.result.exitCode, 7);
  assert.is(bad.result.error, undefined);
  assert.is(bad.stdout, 'before\n');
});

test('large output arrives whole and in order', async () => {
  const r = await run('i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done');
  const lines = r.stdout.trimEnd().split('\n');
  assert.is(lines.length, 20000);
  assert.is(lines[0], 'line-0');
  assert.is(lines[19999], 'line-19999');
  assert.ok(lines.every((l, i) => l === `line-${i}`));
});

test('sh -c SCRIPT in /workspace with the given env; labels, name and cleanup seen by the engine', async () => {
  const r = await runAndInspect('echo "$GREETING from $(pwd)"; echo ready; sleep 1', { env: { GREETING: 'hi there' }, phase: 'apply' });
  assert.is(r.result.outcome, 'succeeded');
  assert.is(r.stdout, 'hi there from /workspace\nready\n');
  assert.is(r.info.Config.Labels![LABELS.managed], 'true');
  assert.is(r.info.Config.Labels![LABELS.workerId], workerId);
  assert.is(r.info.Config.Labels![LABELS.phase], 'apply');
  assert.match(r.info.Name, /^\/launcher-run-[0-9a-f]+-apply-[0-9a-f]{6}$/);
  assert.ok(r.info.Config.Env!.includes('GREETING=hi there'));
  assert.is(r.info.Config.WorkingDir, '/workspace');
  assert.is(await inspectContainer(docker, r.result.containerId!), undefined, 'container removed after the phase');
});

test('container names say run and phase, and are unique', () => {
  const a = containerName('run/ÄB 1', 'plan');
  assert.match(a, /^launcher-run-B-1-plan-[0-9a-f]{6}$/);
  assert.is.not(containerName('r', 'p'), containerName('r', 'p'));
  assert.equal(containerSpec(spec('true', { runtime: 'x' })).HostConfig!.Runtime, 'x');
});

test('network none: only loopback inside; a user-created network is joined', async () => {
  const none = await runAndInspect('cat /proc/net/dev; echo ready', { network: 'none' });
  assert.is(none.info.HostConfig.NetworkMode, 'none');
  assert.not.match(none.stdout, /eth0/);
  assert.match(none.stdout, /lo:/);
  const name = `launcher-test-net-${randomBytes(3).toString('hex')}`;
  // Internal: no route out of the host; the container makes no connections anyway.
  await docker.call('create network', { method: 'POST', path: '/networks/create', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ Name: name, Internal: true }) });
  try {
    const joined = await runAndInspect('cat /proc/net/dev; echo ready', { network: name });
    assert.is(joined.result.outcome, 'succeeded');
    assert.is(joined.info.HostConfig.NetworkMode, name);
    assert.match(joined.stdout, /eth0/);
  } finally {
    await docker.call('remove network', { method: 'DELETE', path: `/networks/${name}` });
  }
});

test('runtime: the engine runs the phase with the named runtime', async () => {
  // The recording runtime (test/fixtures/recording-runtime) appends to the
  // file the container's environment names: this test's own file.
  const calls = join(tmp(), 'runtime.calls');
  const r = await runAndInspect('echo ready', { runtime: 'launcher-test-runtime', env: { LAUNCHER_TEST_RUNTIME_CALLS: calls } });
  assert.is(r.result.outcome, 'succeeded');
  assert.is(r.info.HostConfig.Runtime, 'launcher-test-runtime');
  assert.ok(existsSync(calls), 'the recording runtime was called');
  assert.match(readFileSync(calls, 'utf8'), new RegExp(`\\bcreate\\b.*${r.info.Id}`), 'it created this phase\'s container');
  const bad = await run('true', { runtime: 'no-such-runtime' });
  assert.is(bad.result.outcome, 'system-error');
  assert.match(bad.result.error!.message, /^Docker create container failed: 400 .*no-such-runtime/i);
});

test('mounts: read-write is writable and visible on the host, read-only refuses writes, a missing host path is a clear error', async () => {
  const rw = tmp();
  const ro = tmp();
  writeFileSync(join(ro, 'in.txt'), 'from-host');
  const r = await run('cat /ro/in.txt; echo; echo written > /rw/out.txt; if echo x > /ro/nope 2>/dev/null; then echo ro-writable; else echo ro-refused; fi', {
    mounts: [{ hostPath: rw, containerPath: '/rw' }, { hostPath: ro, containerPath: '/ro', readOnly: true }],
  });
  assert.is(r.result.outcome, 'succeeded');
  assert.is(r.stdout, 'from-host\nro-refused\n');
  assert.is(readFileSync(join(rw, 'out.txt'), 'utf8'), 'written\n');
  assert.not.ok(existsSync(join(ro, 'nope')));
  const missing = await run('true', { mounts: [{ hostPath: '/nonexistent/launcher-test', containerPath: '/x' }] });
  assert.is(missing.result.outcome, 'system-error');
  assert.is(missing.result.error!.code, 'MOUNT_HOST_PATH_MISSING');
  assert.match(missing.result.error!.message, /host path \/nonexistent\/launcher-test does not exist/);
});

test('logs timeout: SIGTERM first (the script sees it), reported as a logs timeout', async () => {
  const r = await run('trap "echo got-term; exit 5" TERM; echo start; while true; do sleep 1; done', { logsTimeoutMs: 1000, killGraceMs: 15_000 });
  assert.is(r.result.outcome, 'logs-timeout');
  assert.is(r.result.error!.code, 'LOGS_TIMEOUT');
  assert.match(r.result.error!.message, /logs timeout/);
  assert.is(r.stdout, 'start\ngot-term\n');
  assert.is(r.result.exitCode, 5);
});

test('logs timeout: a script ignoring SIGTERM is killed after the grace period', async () => {
  const r = await run('trap "" TERM; echo start; sleep 600', { logsTimeoutMs: 500, killGraceMs: 1000 });
  assert.is(r.result.outcome, 'logs-timeout');
  assert.is(r.result.exitCode, 137);
});

test('output keeps the logs timeout away; the run timeout still stops the phase', async () => {
  const r = await run('while true; do echo tick; sleep 0.2; done', { logsTimeoutMs: 5000, runTimeoutMs: 2000 });
  assert.is(r.result.outcome, 'run-timeout');
  assert.is(r.result.error!.code, 'RUN_TIMEOUT');
  assert.match(r.stdout, /^(tick\n)+$/);
});

test('cancellation through an AbortSignal stops the phase and removes the container', async () => {
  const ac = new AbortController();
  const s = spec('echo started; sleep 600');
  const onOutput = s.onOutput;
  s.onOutput = (c, st) => { onOutput(c, st); ac.abort(); };
  s.signal = ac.signal;
  const r = await runPhase(s, { docker });
  assert.is(r.outcome, 'canceled');
  assert.is(s.out.stdout, 'started\n');
  assert.is(await inspectContainer(docker, r.containerId!), undefined);
  const before = await runPhase(spec('echo never', { signal: AbortSignal.abort() }), { docker });
  assert.is(before.outcome, 'canceled');
  assert.is(before.containerId, undefined, 'no container created for a phase canceled before start');
});

function tarOf(files: Record<string, string>, extra: (p: ReturnType<typeof pack>) => void = () => {}): () => Readable {
  return () => {
    const p = pack();
    for (const [name, body] of Object.entries(files)) p.entry({ name }, body);
    extra(p);
    p.finalize();
    return Readable.from(p, { objectMode: false });
  };
}

async function readTar(tar: Readable): Promise<Record<string, string>> {
  const ex = extract();
  const out: Record<string, string> = {};
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Uint8Array[] = [];
      for await (const c of e) chunks.push(c as Uint8Array);
      out[e.header.name] = e.header.type === 'file' ? Buffer.concat(chunks).toString('utf8') : `<${e.header.type}>`;
    }
  })();
  for await (const c of tar) ex.write(c as Uint8Array);
  (ex as unknown as { end(): void }).end();
  await done;
  return out;
}

test('workspace round trip: filled before start, read back after exit with workspace-relative names', async () => {
  let back: Record<string, string> = {};
  const r = await run('cat in.txt; mkdir -p sub; echo produced > sub/out.txt; rm in.txt', {
    workspaceIn: tarOf({ 'in.txt': 'input-data\n' }),
    workspaceOut: async (tar) => { back = await readTar(tar); },
  });
  assert.is(r.result.outcome, 'succeeded');
  assert.is(r.stdout, 'input-data\n');
  assert.equal(back, { 'sub/': '<directory>', 'sub/out.txt': 'produced\n' });
});

test('workspace archives that escape are refused both ways', async () => {
  const inBad = await run('echo should-not-run', { workspaceIn: tarOf({ '../etc/evil': 'x' }) });
  assert.is(inBad.result.outcome, 'system-error');
  assert.is(inBad.result.error!.code, 'WORKSPACE_UNSAFE');
  assert.is(inBad.stdout, '');
  const outBad = await run('ln -s /etc/passwd leak', { workspaceOut: async (tar) => { await readTar(tar); } });
  assert.is(outBad.result.outcome, 'failed');
  assert.is(outBad.result.error!.code, 'WORKSPACE_UNSAFE');
  assert.match(outBad.result.error!.message, /"leak": symlink to the absolute path "\/etc\/passwd"/);
});

test('a workspace consumer that fails without reading does not strand the engine connection', async () => {
  // Its own client, so close() proves no request is left open: undici's close waits for every one.
  const own = new DockerClient();
  // 16 MiB: more than the socket and stream buffers hold, so the engine's answer cannot complete unread.
  const s = spec('dd if=/dev/urandom of=big bs=1048576 count=16 2>/dev/null', {
    workspaceOut: async () => { throw new Error('upload refused before reading'); },
  });
  const result = await runPhase(s, { docker: own });
  assert.is(result.outcome, 'system-error');
  assert.match(result.error!.message, /upload refused before reading/);
  // A hang detector, not a speed check: without the fix close() never returns.
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    own.close().then(() => 'closed'),
    new Promise<string>((r) => { timer = setTimeout(() => r('still open after 60 s'), 60_000); }),
  ]);
  clearTimeout(timer);
  assert.is(closed, 'closed');
});

test('removeLeftovers removes this worker\'s containers only; listManagedContainers sees them', async () => {
  const other = `${workerId}-other`;
  const mine = await createContainer(docker, containerName('left', 'over'), containerSpec(spec('sleep 600', { runId: 'left' })));
  await startContainer(docker, mine);
  const stopped = await createContainer(docker, containerName('left', 'created'), containerSpec(spec('true', { runId: 'left' })));
  const theirs = await createContainer(docker, containerName('left', 'other'), containerSpec(spec('true', { runId: 'left', workerId: other })));
  try {
    const listed = await listManagedContainers(docker, { workerId });
    assert.equal(listed.map((c) => c.id).sort(), [mine, stopped].sort());
    assert.ok(listed.every((c) => c.runId === 'left' && c.workerId === workerId));
    const removed = await removeLeftovers(docker, workerId);
    assert.equal(removed.sort(), [mine, stopped].sort());
    assert.is(await inspectContainer(docker, mine), undefined);
    assert.is(await inspectContainer(docker, stopped), undefined);
    assert.ok(await inspectContainer(docker, theirs), 'another worker\'s container is left alone');
  } finally {
    await removeWorkerContainers(docker, other);
  }
});

test('resumePhase re-attaches to a running container, skipping output already shipped', async () => {
  const s = spec('echo one; sleep 1; echo two; exit 3', { runId: 'resume' });
  const id = await createContainer(docker, containerName('resume', 'plan'), containerSpec(s));
  await startContainer(docker, id);
  let out = '';
  const r = await resumePhase(id, { onOutput: (c) => { out += Buffer.from(c).toString(); }, skipBytes: 4, logsTimeoutMs: 30_000, runTimeoutMs: 60_000 }, { docker });
  assert.is(r.outcome, 'failed');
  assert.is(r.exitCode, 3);
  assert.is(out, 'two\n');
  assert.is(await inspectContainer(docker, id), undefined);
});

test('resumePhase collects the logs and exit code of a container that exited meanwhile', async () => {
  const s = spec('echo a; echo b >&2', { runId: 'resume2' });
  const id = await createContainer(docker, containerName('resume2', 'plan'), containerSpec(s));
  await startContainer(docker, id);
  await waitContainer(docker, id);
  const got: string[] = [];
  let back: Record<string, string> = {};
  const r = await resumePhase(id, {
    onOutput: (c, st) => { got.push(`${st}:${Buffer.from(c).toString()}`); },
    logsTimeoutMs: 30_000, runTimeoutMs: 60_000,
    workspaceOut: async (tar) => { back = await readTar(tar); },
  }, { docker });
  assert.is(r.outcome, 'succeeded');
  // Per stream: the engine keeps no order between stdout and stderr.
  assert.equal(got.filter((g) => g.startsWith('stdout:')).join(''), 'stdout:a\n');
  assert.equal(got.filter((g) => g.startsWith('stderr:')).join(''), 'stderr:b\n');
  assert.equal(back, {});
  const gone = await resumePhase(id, { onOutput: () => {}, logsTimeoutMs: 1000, runTimeoutMs: 1000 }, { docker });
  assert.is(gone.outcome, 'system-error');
  assert.is(gone.error!.code, 'CONTAINER_GONE');
});

let registry: TestRegistry | undefined;
test('pull with credentials from a real registry (SPACELIFT_DOCKER_CONFIG_DIR); wrong or missing credentials are clear errors', async () => {
  registry = await startRegistry();
  const image = await pushTestImage(docker, registry, 'private', 'v1');
  await removeImage(docker, image);
  assert.is(await inspectImage(docker, image), undefined, 'local copy removed before the pull');

  const noCreds = await run('true', { image });
  assert.is(noCreds.result.outcome, 'system-error');
  assert.is(noCreds.result.error!.code, 'DOCKER_PULL_UNAUTHORIZED');
  assert.match(noCreds.result.error!.message, /^Docker pull image 127\.0\.0\.1:\d+\/launcher-test\/private:v1 failed: .*no credentials for 127\.0\.0\.1:\d+/);

  const wrongDir = dockerConfigDir(registry.host, registry.username, 'wrong-password', 'fields');
  tmpDirs.push(wrongDir);
  const wrong = await run('true', { image, registryAuth: registryAuthHeader(await loadDockerConfig(wrongDir), image)! });
  assert.is(wrong.result.outcome, 'system-error');
  assert.is(wrong.result.error!.code, 'DOCKER_PULL_UNAUTHORIZED');
  assert.match(wrong.result.error!.message, /credentials for 127\.0\.0\.1:\d+ in SPACELIFT_DOCKER_CONFIG_DIR\/config\.json were refused/);
  assert.not.match(wrong.result.error!.message, /wrong-password/);

  const dir = dockerConfigDir(registry.host, registry.username, registry.password, 'auth');
  tmpDirs.push(dir);
  const progress: string[] = [];
  const ok = await run('echo pulled-and-ran', { image, registryAuth: registryAuthHeader(await loadDockerConfig(dir), image)!, onPullProgress: (l) => progress.push(l) });
  assert.is(ok.result.outcome, 'succeeded');
  assert.is(ok.stdout, 'pulled-and-ran\n');
  assert.ok(await inspectImage(docker, image), 'the image is now local');
  assert.ok(progress.some((l) => /Downloaded newer image|Pull complete/.test(l)), progress.join(' | '));

  // if-not-present: no pull now; always: pulls (and is refused without credentials).
  const cached = await run('true', { image });
  assert.is(cached.result.outcome, 'succeeded');
  const always = await run('true', { image, pullPolicy: 'always' });
  assert.is(always.result.outcome, 'system-error');
  assert.is(always.result.error!.code, 'DOCKER_PULL_UNAUTHORIZED');

  const missing = await run('true', { image: `${registry.host}/launcher-test/missing:v1`, registryAuth: registryAuthHeader(await loadDockerConfig(dir), image)! });
  assert.is(missing.result.outcome, 'system-error');
  assert.match(missing.result.error!.message, /^Docker pull image 127\.0\.0\.1:\d+\/launcher-test\/missing:v1 failed: /);
  await removeImage(docker, image);
});

test.after(async () => {
  await registry?.stop();
  await removeWorkerContainers(docker, workerId);
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  await docker.close();
});

test.run();
