// Start-up of `launcher run` as a subprocess: configuration mistakes, a key
// that does not match, Docker unreachable, one launcher per state directory,
// graceful stop while the server is away, and the metrics listener. The token
// here is issued by a throwaway CA for a loopback port nobody listens on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { freePort } from './helpers/docker.ts';
import { offlineToken, runLauncher, seedPoolKey, startLauncher, tempDir, type PoolKey } from './helpers/launcher.ts';

let key: PoolKey;
let other: PoolKey;
let token: string;
let port: number;
const dirs: Array<{ remove(): void }> = [];
function stateDir(): string {
  const d = tempDir('launcher-state-');
  dirs.push(d);
  return d.path;
}

test.before(async () => {
  key = seedPoolKey(4096);
  other = seedPoolKey(2048, 'other');
  port = await freePort();
  token = offlineToken(key.csrPem, `https://127.0.0.1:${port}`);
});

test('a token that is not base64 is a configuration error (exit 2) that names the variable and hides the value', async () => {
  const r = await runLauncher({ token: 'not-a-token!!secretish', keyB64: key.keyB64, stateDir: stateDir() });
  assert.is(r.code, 2, r.out);
  assert.match(r.out, /SPACELIFT_TOKEN/);
  assert.not.match(r.out, /secretish/);
});

test('an unknown option is a usage error (exit 2) that points at the help', async () => {
  const r = await runLauncher({ token, keyB64: key.keyB64, stateDir: stateDir(), args: ['run', '--bogus'] });
  assert.is(r.code, 2, r.out);
  assert.match(r.out, /Unknown option --bogus for launcher run: expected one of --help \(see launcher run --help; settings are environment variables\)/);
});

test('a missing key is a configuration error (exit 2)', async () => {
  const r = await runLauncher({ token, keyB64: '', stateDir: stateDir() });
  assert.is(r.code, 2, r.out);
  assert.match(r.out, /Missing SPACELIFT_POOL_PRIVATE_KEY/);
});

test('a key that does not match the token certificate: exit 2 with both fingerprints, never the key', async () => {
  const r = await runLauncher({ token, keyB64: other.keyB64, stateDir: stateDir() });
  assert.is(r.code, 2, r.out);
  assert.match(r.out, /does not match/);
  assert.match(r.out, /SHA256:/);
  assert.not.ok(r.out.includes(other.keyB64.slice(100, 140)));
});

test('a bad duration names the variable and an accepted example (exit 2)', async () => {
  const r = await runLauncher({ token, keyB64: key.keyB64, stateDir: stateDir(), env: { SPACELIFT_LAUNCHER_RUN_TIMEOUT: '70' } });
  assert.is(r.code, 2, r.out);
  assert.match(r.out, /SPACELIFT_LAUNCHER_RUN_TIMEOUT/);
  assert.match(r.out, /70m/);
});

test('an unreachable Docker socket: exit 5 with a message naming DOCKER_HOST', async () => {
  const r = await runLauncher({ token, keyB64: key.keyB64, stateDir: stateDir(), env: { DOCKER_HOST: 'unix:///nonexistent' } });
  assert.is(r.code, 5, r.out);
  assert.match(r.out, /Cannot reach the Docker Engine at unix:\/\/\/nonexistent/);
});

test('a second launcher on the same state directory exits 0 saying "already running (pid N)"; the first stops gracefully', async () => {
  const dir = stateDir();
  const first = startLauncher({ token, keyB64: key.keyB64, stateDir: dir });
  try {
    await first.waitFor(/Cannot register yet/);
    const second = await runLauncher({ token, keyB64: key.keyB64, stateDir: dir });
    assert.is(second.code, 0, second.out);
    assert.match(second.out, new RegExp(`already running \\(pid ${first.pid}\\)`));
    first.kill('SIGTERM');
    assert.is(await first.exitCode(), 0, first.out);
  } finally {
    first.kill('SIGKILL');
  }
});

test('a launcher killed with -9 never blocks the next start', async () => {
  const dir = stateDir();
  const first = startLauncher({ token, keyB64: key.keyB64, stateDir: dir });
  await first.waitFor(/Cannot register yet/);
  first.kill('SIGKILL');
  await first.exited;
  const next = startLauncher({ token, keyB64: key.keyB64, stateDir: dir });
  try {
    await next.waitFor(/Cannot register yet/);
    assert.not.match(next.out, /already running/);
    next.kill('SIGINT');
    assert.is(await next.exitCode(), 0, next.out);
  } finally {
    next.kill('SIGKILL');
  }
});

function get(p: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port: p, path }, (res) => {
      let body = '';
      res.on('data', (b) => { body += b; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}

test('the metrics listener counts reconnects and reports unhealthy while the server was never reached', async () => {
  const mport = await freePort();
  const l = startLauncher({ token, keyB64: key.keyB64, stateDir: stateDir(), env: { SPACELIFT_LAUNCHER_METRICS_ADDR: `127.0.0.1:${mport}` } });
  try {
    await l.waitFor(/Cannot register yet/);
    await l.waitFor(/Serving metrics/);
    const deadline = Date.now() + 30_000;
    let reconnects = 0;
    while (Date.now() < deadline && reconnects < 2) {
      const m = await get(mport, '/metrics');
      assert.is(m.status, 200);
      reconnects = Number(/^launcher_reconnects_total (\d+)$/m.exec(m.body)?.[1]);
      if (reconnects < 2) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(reconnects >= 2, `reconnects ${reconnects}`);
    const m = await get(mport, '/metrics');
    assert.match(m.body, /^launcher_busy 0$/m);
    assert.match(m.body, /^launcher_phases_total\{result="succeeded"\} 0$/m);
    assert.match(m.body, /^launcher_seconds_since_server_contact -1\.000$/m);
    const h = await get(mport, '/healthz');
    assert.is(h.status, 503);
    assert.is(JSON.parse(h.body).ok, false);
  } finally {
    l.kill('SIGTERM');
    await l.exitCode();
  }
});

test('launcher log lines are JSON objects with time, level and msg', async () => {
  const l = startLauncher({ token, keyB64: key.keyB64, stateDir: stateDir() });
  try {
    await l.waitFor(/Cannot register yet/);
  } finally {
    l.kill('SIGTERM');
    await l.exitCode();
  }
  const lines = l.json();
  assert.ok(lines.length >= 2);
  for (const j of lines) {
    assert.type(j.time, 'string');
    assert.ok(['debug', 'info', 'warn', 'error'].includes(j.level as string));
    assert.type(j.msg, 'string');
  }
  assert.not.ok(l.out.includes(key.keyB64.slice(200, 240)), 'the key never appears in logs');
});

test.after(() => {
  key?.dir.cleanup();
  other?.dir.cleanup();
  for (const d of dirs) d.remove();
});
test.run();
