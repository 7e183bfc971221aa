// `launcher server` flags: parsing and the errors a user sees for bad values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LISTEN, parseListen, parseServerArgs, parseSize } from '../lib/cli/server.ts';
import { ROOT, startTestServer } from './helpers/server.ts';

test('--listen accepts HOST:PORT, [v6]:PORT and :PORT', () => {
  assert.equal(parseListen('127.0.0.1:8443'), { host: '127.0.0.1', port: 8443 });
  assert.equal(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  assert.equal(parseListen(':8443'), { host: '0.0.0.0', port: 8443 });
  assert.equal(parseListen('ci.example.com:0'), { host: 'ci.example.com', port: 0 });
  for (const bad of ['8443', '127.0.0.1', '1.2.3.4:70000', 'a:b']) {
    assert.throws(() => parseListen(bad), (e: Error) => /Invalid --listen: .* \(try 127\.0\.0\.1:8443/.test(e.message), bad);
  }
});

test('sizes: binary and decimal units', () => {
  assert.is(parseSize('1GiB', '--max-workspace-size'), 1024 ** 3);
  assert.is(parseSize('512MiB', 'x'), 512 * 1024 ** 2);
  assert.is(parseSize('100MB', 'x'), 100e6);
  assert.is(parseSize('65536', 'x'), 65536);
  assert.throws(() => parseSize('lots', '--max-workspace-size'), /Invalid --max-workspace-size: "lots" is not a size \(try 1GiB/);
  assert.throws(() => parseSize('0', 'x'), /more than 0 bytes/);
});

test('defaults and durations', () => {
  const a = parseServerArgs(['--data', 'd'], '/srv');
  assert.ok(!a.help);
  if (a.help) return;
  assert.is(a.dataDir, '/srv/d');
  assert.is(`${a.listenHost}:${a.listenPort}`, DEFAULT_LISTEN);
  assert.is(a.leaseMs, 30_000);
  assert.is(a.graceMs, 120_000);
  assert.is(a.maxWorkspaceBytes, 1024 ** 3);
  const b = parseServerArgs(['--data', '/x', '--worker-lease', '1.5s', '--worker-grace', '1h30m', '--url', 'https://ci.example.com:8443'], '/');
  if (b.help) return;
  assert.is(b.leaseMs, 1500);
  assert.is(b.graceMs, 5_400_000);
  assert.is(b.url, 'https://ci.example.com:8443');
});

test('bad flags are config errors (exit code 2) naming the flag and an example', () => {
  const cases: [string[], RegExp][] = [
    [[], /Missing --data/],
    [['--data', 'd', '--worker-lease', '30'], /Invalid --worker-lease: .*"30" has no unit \(try 30m\)/],
    [['--data', 'd', '--url', 'http://x:80'], /Invalid --url: "http:\/\/x:80" \(expected https:\/\/NAME:PORT/],
    [['--data', 'd', '--bogus'], /Unknown option --bogus for launcher server: expected one of --data, --listen, .*\(see launcher server --help\)/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(() => parseServerArgs(argv, '/'), (e: Error & { exitCode?: number }) => re.test(e.message) && e.exitCode === 2, argv.join(' '));
  }
});

test('the real command exits 2 on a bad flag and prints the message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'server-cli-test-'));
  try {
    const r = spawnSync(join(ROOT, 'node_modules/.bin/node'), ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'server', '--data', dir, '--listen', 'nope'], { encoding: 'utf8', cwd: ROOT });
    assert.is(r.status, 2);
    assert.match(r.stderr, /launcher server: Invalid --listen: "nope"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DATA/server.url holds the bound URL (port 0), so `launcher admin --data DIR` needs no --server', async () => {
  const srv = await startTestServer();
  try {
    assert.ok(srv.port > 0);
    const urlFile = join(srv.dataDir, 'server.url');
    assert.is(readFileSync(urlFile, 'utf8'), `${srv.url}\n`);
    assert.match(srv.url, new RegExp(`^https://127\\.0\\.0\\.1:${srv.port}$`));
    assert.is(statSync(urlFile).mode & 0o777, 0o644);
    // The admin CLI as a subprocess with no LAUNCHER_* environment and no --server.
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(join(ROOT, 'node_modules/.bin/node'), ['--import', 'tsx', join(ROOT, 'launcher.ts'), 'admin', '--data', srv.dataDir, 'pool', 'list', '--json'], {
        cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { err += d; });
      p.on('close', (code) => resolve({ code, out, err }));
    });
    assert.is(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).pools, []);
    // A restart on another port rewrites it.
    await srv.restart();
    assert.is(readFileSync(urlFile, 'utf8'), `${srv.url}\n`);
  } finally {
    await srv.stop();
  }
});

test.run();
