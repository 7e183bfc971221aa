import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('launcher version prints version, commit and the Node inside', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'launcher.ts', 'version', '--json'], { encoding: 'utf8' });
  const v = JSON.parse(out);
  assert.is(v.node, process.versions.node);
  assert.match(v.version, /^\d+\.\d+\.\d+/);
  assert.type(v.commit, 'string');
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
