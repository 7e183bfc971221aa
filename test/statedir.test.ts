import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, processStartTime, StateDir } from '../lib/launcher/statedir.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'statedir-'));
  dirs.push(d);
  return d;
}
function deadPid(): number {
  const r = spawnSync('true');
  return r.pid!;
}

test('the first launcher takes the lock and unlock releases it', () => {
  const sd = new StateDir(join(tmp(), 'nested', 'state'));
  assert.equal(sd.lock(), { acquired: true });
  const rec = JSON.parse(readFileSync(join(sd.path, LOCK_FILE), 'utf8'));
  assert.is(rec.pid, process.pid);
  sd.unlock();
  assert.not.ok(existsSync(join(sd.path, LOCK_FILE)));
});

test('a live holder keeps the lock and is named', () => {
  const child = spawn('sleep', ['30']);
  try {
    const d = tmp();
    writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid: child.pid, start: processStartTime(child.pid!) }));
    assert.equal(new StateDir(d).lock(), { acquired: false, pid: child.pid });
    writeFileSync(join(d, LOCK_FILE), `${child.pid}\n`); // a plain pid file
    assert.equal(new StateDir(d).lock(), { acquired: false, pid: child.pid });
  } finally {
    child.kill('SIGKILL');
  }
});

test('a crashed holder never blocks the next start', () => {
  const d = tmp();
  writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid: deadPid(), start: '1' }));
  assert.equal(new StateDir(d).lock(), { acquired: true });
});

test('a reused pid (same pid, other start time) is stale', () => {
  const child = spawn('sleep', ['30']);
  try {
    const d = tmp();
    writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid: child.pid, start: '12345' }));
    assert.equal(new StateDir(d).lock(), { acquired: true });
  } finally {
    child.kill('SIGKILL');
  }
});

test('garbage in the lock file is stale', () => {
  const d = tmp();
  writeFileSync(join(d, LOCK_FILE), 'not a pid');
  assert.equal(new StateDir(d).lock(), { acquired: true });
});

test('launchers racing for a stale lock: exactly one wins', async () => {
  const d = tmp();
  writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid: deadPid(), start: '1' }));
  const mod = new URL('../lib/launcher/statedir.ts', import.meta.url).pathname;
  const script = `import { StateDir } from ${JSON.stringify(mod)};
const r = new StateDir(${JSON.stringify(d)}).lock();
process.stdout.write(JSON.stringify(r));
setTimeout(() => {}, 1500);`;
  const runs = Array.from({ length: 6 }, () => new Promise<string>((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url).pathname });
    let out = '';
    c.stdout.on('data', (b) => { out += b; });
    c.on('close', () => resolve(out));
  }));
  const results = (await Promise.all(runs)).map((o) => JSON.parse(o));
  assert.is(results.filter((r) => r.acquired).length, 1, JSON.stringify(results));
});

test('worker identity and in-flight run survive a restart; a torn file reads as none', () => {
  const d = tmp();
  const a = new StateDir(d);
  a.ensure();
  a.writeWorker({ workerId: 'wrk_1', poolId: 'pool_1', serverUrl: 'https://127.0.0.1:1' });
  a.writeRun({ runId: 'run_1', phase: 0 });
  const b = new StateDir(d);
  assert.equal(b.readWorker(), { workerId: 'wrk_1', poolId: 'pool_1', serverUrl: 'https://127.0.0.1:1' });
  assert.equal(b.readRun(), { runId: 'run_1', phase: 0 });
  b.clearRun();
  assert.is(b.readRun(), null);
  writeFileSync(join(d, 'worker.json'), '{"workerId": "wr');
  assert.is(b.readWorker(), null);
});

test('spill directories are per phase and cleared', () => {
  const sd = new StateDir(tmp());
  assert.ok(sd.spillDir('run_a', 0) !== sd.spillDir('run_a', 1));
  assert.ok(sd.spillDir('../x', 0).startsWith(join(sd.path, 'spill')));
});

test('an unusable directory is a configuration error naming the variable', () => {
  const d = tmp();
  writeFileSync(join(d, 'file'), '');
  try {
    new StateDir(join(d, 'file')).lock();
    assert.unreachable();
  } catch (e) {
    assert.is((e as { exitCode: number }).exitCode, 2);
    assert.match((e as Error).message, /SPACELIFT_LAUNCHER_STATE_DIR/);
  }
});

test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
test.run();
