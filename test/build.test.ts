// The built executable, not the TypeScript: dist/launcher-linux-x64 carries
// every command, the stamped version and commit, and its checksum file agrees.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, ensureBuilt, newestSourceMtime, root, runBuild } from './helpers/build.ts';
import { TempDir, run, seedKey } from './helpers/age-tools.ts';
import { pseudoRandomBytes } from './helpers/random.ts';
import { sshRsaPublicLine } from '../lib/age/index.ts';

const binary = ensureBuilt();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

/** The subcommands launcher.ts dispatches to, read from its command table. */
const commands = [...readFileSync(join(root, 'launcher.ts'), 'utf8').matchAll(/^\s+([\w-]+): \(\) => import\('\.\/lib\/cli\/([\w-]+)\.ts'\)/gm)].map((m) => m[1]!);

function runBinary(args: string[], env: Record<string, string> = {}) {
  return spawnSync(binary, args, { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
}

function runSource(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'launcher.ts'), ...args], { encoding: 'utf8', timeout: 30_000, cwd: root, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
}

test('the command table was read from launcher.ts', () => {
  assert.ok(commands.length >= 8, `found only ${commands.join(', ')}`);
  for (const c of ['run', 'server', 'admin', 'keygen', 'exec', 'doctor', 'state', 'version']) assert.ok(commands.includes(c), c);
});

test('dist/SHA256SUMS verifies with sha256sum -c and names the executable', () => {
  const sums = readFileSync(join(dist, 'SHA256SUMS'), 'utf8');
  assert.match(sums, /^[0-9a-f]{64} {2}launcher-linux-x64$/m);
  const out = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dist, encoding: 'utf8' });
  assert.match(out, /launcher-linux-x64: OK/);
  assert.is(statSync(binary).mode & 0o111, 0o111, 'executable bits');
});

test('launcher version from the binary shows the stamped version, commit and Node inside', () => {
  const r = runBinary(['version', '--json']);
  assert.is(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { version: string; commit: string; node: string };
  const info = JSON.parse(readFileSync(join(dist, 'build-info.json'), 'utf8')) as { commit: string; node: string };
  assert.is(v.version, pkg.version);
  assert.is(v.commit, info.commit);
  assert.is.not(v.commit, 'source', 'the build stamps a commit instead of the source fallback');
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  // HEAD may have moved since the build (others commit); the stamp is a real commit.
  execFileSync('git', ['cat-file', '-e', `${v.commit.replace(/-dirty$/, '')}^{commit}`], { cwd: root });
  assert.match(v.commit, /^[0-9a-f]{7,}(-dirty)?$/, `HEAD is ${head}`);
  assert.is(v.node, info.node);
  const text = runBinary(['version']);
  assert.match(text.stdout, new RegExp(`^launcher ${pkg.version.replace(/\./g, '\\.')} \\(commit ${v.commit}, node `));
});

test('every subcommand is inside the binary: --help behaves as it does from source', () => {
  for (const cmd of commands) {
    const bin = runBinary([cmd, '--help']);
    const src = runSource([cmd, '--help']);
    assert.is(bin.status, src.status, `${cmd} --help exit code: binary ${bin.status} (${bin.stderr}) vs source ${src.status} (${src.stderr})`);
    // The only intended difference: the binary's stamped commit vs "source".
    const unstamped = (s: string) => s.replace(/commit [0-9a-f]{7,}(-dirty)?|commit unknown|commit source/g, 'commit C');
    assert.is(unstamped(bin.stdout), unstamped(src.stdout), `${cmd} --help output`);
    const placeholder = /"[\w-]+" command is not built yet/.test(bin.stderr);
    if (!placeholder) {
      assert.is(bin.status, 0, `${cmd} --help exits 0: ${bin.stderr}`);
      assert.ok(bin.stdout.length > 0, `${cmd} --help prints something`);
    }
    // A module missing from the bundle would fail with "Cannot find module".
    assert.not.match(bin.stderr, /Cannot find module|ERR_MODULE_NOT_FOUND|Unexpected failure/, `${cmd}: ${bin.stderr}`);
  }
});

test('launcher --help lists the commands and an unknown command exits 2, from the binary', () => {
  const help = runBinary(['--help']);
  assert.is(help.status, 0);
  for (const c of commands) assert.match(help.stdout, new RegExp(`^\\s+${c}\\s`, 'm'));
  const bad = runBinary(['frobnicate']);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /Unknown command "frobnicate"/);
});

test('the binary ignores NODE_OPTIONS, so a host setting cannot change it', () => {
  const r = runBinary(['version'], { NODE_OPTIONS: '--require /nonexistent/preload.js' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^launcher /);
});

test('the binary runs without node or the project on PATH', () => {
  const r = spawnSync(binary, ['version'], { encoding: 'utf8', cwd: tmpdir(), env: { PATH: '/nonexistent' } });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^launcher /);
});

test('--reproducible builds are byte-identical, and so are the bundles', () => {
  const a = mkdtempSync(join(tmpdir(), 'launcher-build-a-'));
  const b = mkdtempSync(join(tmpdir(), 'launcher-build-b-'));
  try {
    // Other work may edit sources between the two builds; only a pair built
    // from unchanged sources is evidence either way.
    for (let attempt = 0; ; attempt++) {
      const before = newestSourceMtime();
      // A fixed stamp: the commit may move between the builds while others commit.
      runBuild(['--reproducible', '--out-dir', a], { LAUNCHER_BUILD_COMMIT: 'feedbee' });
      runBuild(['--reproducible', '--out-dir', b], { LAUNCHER_BUILD_COMMIT: 'feedbee' });
      if (newestSourceMtime() === before || attempt === 3) break;
    }
    for (const f of ['launcher.cjs', 'launcher-commands.cjs', 'SHA256SUMS', 'install.sh', 'launcher-linux-x64']) {
      assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs between two builds`);
    }
    const r = spawnSync(join(a, 'launcher-linux-x64'), ['version'], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /\(commit feedbee, /);
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('the binary seals and opens a large file on its age worker threads, and age agrees both ways', () => {
  // 20 MiB is above the parallel threshold, so this runs the worker module the
  // build embeds (lib/age/worker.ts), not the sequential path.
  const t = new TempDir();
  try {
    const key = seedKey(t, 'pool', 2048).key;
    const plain = pseudoRandomBytes(20 * 1024 * 1024 + 12_345, 21);
    t.write('plain', plain);
    t.write('pool.pub', sshRsaPublicLine(readFileSync(key, 'utf8')) + '\n');
    const seal = runBinary(['state', 'seal', '-R', t.path('pool.pub'), '-o', t.path('ours.age'), t.path('plain')]);
    assert.is(seal.status, 0, seal.stderr);
    assert.ok(run('age', ['-d', '-i', key, t.path('ours.age')]).equals(plain), 'age -d -i opens what the binary sealed');
    run('age', ['-R', t.path('pool.pub'), '-o', t.path('theirs.age'), t.path('plain')]);
    const open = runBinary(['state', 'open', '-i', key, '-o', t.path('theirs.out'), t.path('theirs.age')]);
    assert.is(open.status, 0, open.stderr);
    assert.ok(t.read('theirs.out').equals(plain), 'the binary opens what age sealed');
    // A flipped bit in the middle: refused, and no output file is left behind.
    const bad = t.read('theirs.age');
    bad[bad.length >> 1]! ^= 1;
    t.write('bad.age', bad);
    const refused = runBinary(['state', 'open', '-i', key, '-o', t.path('bad.out'), t.path('bad.age')]);
    assert.is(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /chunk \d+ does not authenticate/);
    assert.not.ok(existsSync(t.path('bad.out')), 'nothing published');
  } finally {
    t.remove();
  }
});

test('an unknown --arch is refused with the accepted values', () => {
  assert.throws(() => runBuild(['--arch', 'mips', '--bundle-only', '--out-dir', join(tmpdir(), 'launcher-build-never')]), /Unknown --arch "mips": expected one of x64, arm64/);
});

test.run();
