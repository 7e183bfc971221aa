import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';

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

test.run();
