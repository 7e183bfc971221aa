// The source under Deno (node_modules/.bin/deno, from the deno npm package):
// the entry, every command's --help, and a smoke of the pure modules and the
// Docker client (test/deno-smoke.ts). Runs offline: Deno resolves packages
// from node_modules and never fetches.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const deno = join(root, 'node_modules/.bin/deno');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const commands = [...readFileSync(join(root, 'launcher.ts'), 'utf8').matchAll(/^\s+([\w-]+): \(\) => import\('\.\/lib\/cli\/[\w-]+\.ts'\)/gm)].map((m) => m[1]!);

function runDeno(args: string[]) {
  return spawnSync(deno, ['run', '-A', '--cached-only', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  });
}

function runNode(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
}

test('deno run -A launcher.ts version reports the package version from source', () => {
  const r = runDeno(['launcher.ts', 'version', '--json']);
  assert.is(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { version: string; commit: string; node: string };
  assert.is(v.version, pkg.version);
  assert.is(v.commit, 'source');
  assert.match(v.node, /^\d+\.\d+\.\d+$/, 'Deno reports its Node compatibility version');
});

test('every command answers --help under Deno exactly as under Node', () => {
  assert.ok(commands.length >= 8);
  for (const cmd of commands) {
    const d = runDeno(['launcher.ts', cmd, '--help']);
    const n = runNode(['launcher.ts', cmd, '--help']);
    assert.is(d.status, n.status, `${cmd} --help exit: deno ${d.status} (${d.stderr}) vs node ${n.status}`);
    // `version` names the runtime's Node (Deno reports its compatibility level).
    const same = (s: string) => s.replace(/node \d+\.\d+\.\d+/g, 'node N');
    assert.is(same(d.stdout), same(n.stdout), `${cmd} --help output`);
  }
});

test('an unknown command exits 2 under Deno too', () => {
  const r = runDeno(['launcher.ts', 'frobnicate']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /Unknown command "frobnicate"/);
});

test('the Deno smoke covers config, token, sealing, workspace archives, pool keys, masking and the Docker client', () => {
  const r = runDeno(['test/deno-smoke.ts']);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  const summary = JSON.parse(last) as { runtime: string; covered: string[]; failed: { module: string; error: string }[] };
  assert.equal(summary.failed, [], JSON.stringify(summary.failed, null, 2));
  assert.is(r.status, 0, r.stderr);
  // Every listed module is covered: a missing file or Docker socket fails above, never skips.
  for (const m of ['lib/duration.ts', 'lib/config.ts', 'lib/token.ts', 'lib/age/index.ts', 'lib/workspace.ts', 'lib/keys.ts', 'lib/mask.ts', 'lib/docker/client.ts']) {
    assert.ok(summary.covered.includes(m), `${m} covered under ${summary.runtime}`);
  }
});

test.run();
