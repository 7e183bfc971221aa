// scripts/install.sh for real: fetched over HTTPS from a distribution point on
// 127.0.0.1 (createDistributionHandler behind a throwaway openssl CA), piped
// into sh, installing the built executable into temporary prefixes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, ensureBuilt, root } from './helpers/build.ts';
import { startDistributionServer, type DistributionServer } from './helpers/distribution.ts';

const binary = ensureBuilt();
const work = mkdtempSync(join(tmpdir(), 'launcher-install-test-'));
const sums = readFileSync(join(dist, 'SHA256SUMS'), 'utf8');
const expectedSha = /^([0-9a-f]{64}) {2}launcher-linux-x64$/m.exec(sums)![1]!;

/** A distribution directory: the script, the checksums and an executable. */
function distributionDir(name: string, executable: (dest: string) => void): string {
  const dir = join(work, name);
  mkdirSync(dir);
  copyFileSync(join(root, 'scripts/install.sh'), join(dir, 'install.sh'));
  writeFileSync(join(dir, 'SHA256SUMS'), sums);
  executable(join(dir, 'launcher-linux-x64'));
  return dir;
}

const goodDir = distributionDir('good', (dest) => {
  try { linkSync(binary, dest); } catch { copyFileSync(binary, dest); }
});
// A server whose executable was swapped: SHA256SUMS still names the real one.
const badDir = distributionDir('bad', (dest) => {
  writeFileSync(dest, '#!/bin/sh\necho tampered\n');
  chmodSync(dest, 0o755);
});

// A PATH without curl: links to every other program on the system PATH.
const noCurlBin = join(work, 'no-curl-bin');
mkdirSync(noCurlBin);
for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
  if (!existsSync(d)) continue;
  for (const n of readdirSync(d)) {
    if (n === 'curl' || existsSync(join(noCurlBin, n))) continue;
    try { symlinkSync(join(d, n), join(noCurlBin, n)); } catch { /* duplicate through a /bin symlink */ }
  }
}

let server: DistributionServer;
let prefixCount = 0;
const newPrefix = () => join(work, `prefix-${++prefixCount}`, 'bin');

interface InstallRun { status: number; stdout: string; stderr: string }

/**
 * The documented one-liner: fetch install.sh with curl (or wget) trusting the
 * test CA, pipe it into `sh -s --` with ARGS.
 */
async function install(args: string[], opts: { fetcher?: 'curl' | 'wget'; env?: Record<string, string>; scriptPath?: string } = {}): Promise<InstallRun> {
  const fetcher = opts.fetcher ?? 'curl';
  const url = `${server.origin}${opts.scriptPath ?? '/install.sh'}`;
  const fetch = fetcher === 'curl'
    ? `curl -fsSL --cacert "$CA" "$URL"`
    : `wget -qO- --ca-certificate="$CA" "$URL"`;
  // Asynchronous: the distribution server runs in this process and must keep serving.
  const child = spawn('sh', ['-c', `${fetch} | sh -s -- "$@"`, 'sh', ...args], {
    timeout: 120_000,
    env: { PATH: fetcher === 'wget' ? noCurlBin : (process.env.PATH ?? '/usr/bin:/bin'), CA: server.caPath, URL: url, HOME: work, ...opts.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const status = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return { status, stdout, stderr };
}

function sha256(file: string): string {
  return spawnSync('sha256sum', [file], { encoding: 'utf8' }).stdout.split(' ')[0]!;
}

test.before(async () => {
  server = await startDistributionServer({ '': goodDir, '/bad': badDir });
});

test.after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

test('curl | sh installs the verified executable into --prefix, using the server as the default base URL', async () => {
  const prefix = newPrefix();
  const seen = server.requests.length;
  const r = await install(['--cacert', server.caPath, '--prefix', prefix]);
  assert.is(r.status, 0, r.stderr);
  const target = join(prefix, 'launcher');
  assert.is(statSync(target).mode & 0o777, 0o755);
  assert.is(sha256(target), expectedSha);
  assert.equal(readdirSync(prefix), ['launcher'], 'no temporary file is left behind');
  const v = spawnSync(target, ['version', '--json'], { encoding: 'utf8' });
  assert.is(v.status, 0, v.stderr);
  assert.match(r.stderr, /installed launcher \d+\.\d+\.\d+ .* as /);
  // No --base-url was given: the served script carried the server's own address.
  const got = server.requests.slice(seen).map((q) => `${q.method} ${q.url} ${q.userAgent.split('/')[0]}`);
  assert.equal(got, ['GET /install.sh curl', 'GET /SHA256SUMS curl', 'GET /launcher-linux-x64 curl']);
});

test('a second run is idempotent: same file, nothing downloaded but the checksums', async () => {
  const prefix = newPrefix();
  assert.is((await install(['--cacert', server.caPath, '--prefix', prefix])).status, 0);
  const target = join(prefix, 'launcher');
  const before = statSync(target);
  const seen = server.requests.length;
  const r = await install(['--cacert', server.caPath, '--prefix', prefix]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /already the build/);
  const after = statSync(target);
  assert.is(after.ino, before.ino);
  assert.is(after.mtimeMs, before.mtimeMs);
  assert.equal(server.requests.slice(seen).map((q) => q.url), ['/install.sh', '/SHA256SUMS']);
});

test('with curl hidden from PATH, wget fetches and installs', async () => {
  const probe = spawnSync('sh', ['-c', 'command -v curl'], { env: { PATH: noCurlBin } });
  assert.is.not(probe.status, 0, 'curl must not be reachable');
  const prefix = newPrefix();
  const seen = server.requests.length;
  const r = await install(['--cacert', server.caPath, '--prefix', prefix], { fetcher: 'wget' });
  assert.is(r.status, 0, r.stderr);
  assert.is(sha256(join(prefix, 'launcher')), expectedSha);
  const agents = server.requests.slice(seen).map((q) => q.userAgent);
  assert.is(agents.length, 3);
  for (const a of agents) assert.match(a, /^Wget\//);
});

test('a checksum mismatch is refused: nothing installed, the previous executable untouched', async () => {
  const prefix = newPrefix();
  mkdirSync(prefix, { recursive: true });
  const target = join(prefix, 'launcher');
  writeFileSync(target, '#!/bin/sh\necho previous launcher\n');
  chmodSync(target, 0o755);
  const before = statSync(target);
  const r = await install(['--cacert', server.caPath, '--prefix', prefix, '--base-url', `${server.origin}/bad`]);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /Refusing to install launcher-linux-x64: its sha256 is [0-9a-f]{64} but SHA256SUMS says [0-9a-f]{64} \(nothing was installed\)/);
  assert.is(readFileSync(target, 'utf8'), '#!/bin/sh\necho previous launcher\n');
  assert.is(statSync(target).ino, before.ino);
  assert.equal(readdirSync(prefix), ['launcher'], 'the rejected download is removed');

  const empty = newPrefix();
  const r2 = await install(['--cacert', server.caPath, '--prefix', empty, '--base-url', `${server.origin}/bad`]);
  assert.is.not(r2.status, 0);
  assert.equal(readdirSync(empty), [], 'nothing installed into an empty prefix');
});

test('without the CA the download fails with a message that points at --cacert', async () => {
  const prefix = newPrefix();
  const r = await install(['--prefix', prefix]);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /Cannot download https:\/\/127\.0\.0\.1:\d+\/SHA256SUMS: check --base-url and, for HTTPS with a private CA, --cacert/);
  assert.not.ok(existsSync(join(prefix, 'launcher')));
});

test('an architecture the server does not offer is refused by name', async () => {
  const prefix = newPrefix();
  const r = await install(['--cacert', server.caPath, '--prefix', prefix, '--arch', 'arm64']);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /lists no launcher-linux-arm64/);
  assert.not.ok(existsSync(join(prefix, 'launcher')));
});

test('an unknown flag is refused with the accepted ones', async () => {
  const r = await install(['--insecure']);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /Unknown flag "--insecure": expected --base-url, --prefix, --cacert/);
});

test('paths that a crontab or unit file would misread are refused before anything is fetched', async () => {
  const seen = server.requests.length;
  const r = await install(['--cacert', server.caPath, '--prefix', join(work, 'with space'), '--cron', '--crontab-file', join(work, 'never')]);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /Unsupported --prefix ".*with space": use a path without spaces/);
  assert.equal(server.requests.slice(seen).map((q) => q.url), ['/install.sh']);
  assert.not.ok(existsSync(join(work, 'with space')));
  assert.not.ok(existsSync(join(work, 'never')));
});

test('--cron adds one crontab line that reads secrets from the env file, once', async () => {
  const prefix = newPrefix();
  const dir = join(work, 'cron');
  mkdirSync(dir);
  const crontab = join(dir, 'crontab');
  const envFile = join(dir, 'launcher.env');
  const logFile = join(dir, 'launcher.log');
  writeFileSync(crontab, '0 3 * * * /usr/bin/true\n');
  const args = ['--cacert', server.caPath, '--prefix', prefix, '--cron', '--crontab-file', crontab, '--env-file', envFile, '--log-file', logFile];
  const env = { SPACELIFT_TOKEN: 'token-value-that-must-stay-out' };
  const first = await install(args, { env });
  assert.is(first.status, 0, first.stderr);
  const second = await install(args, { env });
  assert.is(second.status, 0, second.stderr);
  assert.match(second.stderr, /crontab already has the launcher line/);

  const lines = readFileSync(crontab, 'utf8').split('\n').filter(Boolean);
  assert.is(lines[0], '0 3 * * * /usr/bin/true', 'other crontab lines are kept');
  const ours = lines.filter((l) => l.includes('managed by launcher install.sh'));
  assert.is(ours.length, 1);
  const line = ours[0]!;
  assert.match(line, /^\* \* \* \* \* set -a; \. /);
  assert.ok(line.includes(`. ${envFile};`), line);
  assert.ok(line.includes(`${prefix}/launcher >>${logFile} 2>&1`), line);
  // The single-instance lock is not in /tmp, where another user could hold it forever.
  assert.not.ok(line.includes('/tmp/launcher.cron.lock'), line);
  if (spawnSync('sh', ['-c', 'command -v flock']).status === 0) assert.ok(line.includes(`flock -n ${dir}/launcher.cron.lock ${prefix}/launcher`), line);
  assert.not.ok(readFileSync(crontab, 'utf8').includes('token-value'), 'no secret in the crontab');
  // The command part is valid sh.
  const command = line.replace(/^(\S+\s+){5}/, '');
  assert.is(spawnSync('sh', ['-n', '-c', command]).status, 0);
  // The env file is a private template, never holding the caller's secrets.
  assert.is(statSync(envFile).mode & 0o777, 0o600);
  assert.not.ok(readFileSync(envFile, 'utf8').includes('token-value'));
  assert.match(readFileSync(envFile, 'utf8'), /^#SPACELIFT_TOKEN=$/m);
});

test('--cron replaces its own older line (new prefix) and keeps an existing env file', async () => {
  const dir = join(work, 'cron2');
  mkdirSync(dir);
  const crontab = join(dir, 'crontab');
  const envFile = join(dir, 'launcher.env');
  writeFileSync(envFile, 'SPACELIFT_TOKEN=abc\n');
  for (const prefix of [newPrefix(), newPrefix()]) {
    const r = await install(['--cacert', server.caPath, '--prefix', prefix, '--cron', '--crontab-file', crontab, '--env-file', envFile]);
    assert.is(r.status, 0, r.stderr);
  }
  const ours = readFileSync(crontab, 'utf8').split('\n').filter((l) => l.includes('managed by launcher install.sh'));
  assert.is(ours.length, 1);
  assert.ok(ours[0]!.includes(`prefix-${prefixCount}/bin/launcher`), ours[0]);
  assert.is(readFileSync(envFile, 'utf8'), 'SPACELIFT_TOKEN=abc\n');
});

test('the env file is created exclusively: a dangling symlink in its place is not followed', async () => {
  const dir = join(work, 'envlink');
  mkdirSync(dir);
  const elsewhere = join(work, 'envlink-target');
  const envFile = join(dir, 'launcher.env');
  symlinkSync(elsewhere, envFile);
  const r = await install(['--cacert', server.caPath, '--prefix', newPrefix(), '--cron', '--crontab-file', join(dir, 'crontab'), '--env-file', envFile]);
  assert.is.not(r.status, 0, r.stderr);
  assert.match(r.stderr, /Cannot create the env file ".*launcher\.env": something \(a dangling symlink\?\) is in the way/);
  assert.not.ok(existsSync(elsewhere), 'the symlink target was not created');
  assert.not.ok(existsSync(join(dir, 'crontab')), 'nothing was added to the crontab');
});

test('--systemd writes a unit into the given directory, and leaves it alone when unchanged', async () => {
  const prefix = newPrefix();
  const dir = join(work, 'systemd');
  const envFile = join(work, 'systemd.env');
  const args = ['--cacert', server.caPath, '--prefix', prefix, '--systemd', '--systemd-dir', dir, '--env-file', envFile];
  const r = await install(args);
  assert.is(r.status, 0, r.stderr);
  const unit = readFileSync(join(dir, 'launcher.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${prefix}/launcher$`, 'm'));
  assert.match(unit, new RegExp(`^EnvironmentFile=${envFile}$`, 'm'));
  assert.match(unit, /^Restart=always$/m);
  assert.match(unit, /^WantedBy=multi-user\.target$/m);
  assert.match(r.stderr, /systemctl enable --now launcher/);
  const mtime = statSync(join(dir, 'launcher.service')).mtimeMs;
  const again = await install(args);
  assert.is(again.status, 0, again.stderr);
  assert.match(again.stderr, /launcher\.service is already up to date/);
  assert.is(statSync(join(dir, 'launcher.service')).mtimeMs, mtime);
  assert.equal(readdirSync(dir), ['launcher.service']);
});

test('the real `launcher server` (the built binary) is the distribution point: curl | sh with its own CA', async () => {
  const data = join(work, 'server-data');
  const child = spawn(binary, ['server', '--data', data, '--listen', '127.0.0.1:0', '--dist', goodDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let logs = '';
    const origin = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${logs}`)), 90_000);
      child.stderr.on('data', (d) => {
        logs += d;
        const m = /"msg":"Server listening","url":"(https:\/\/127\.0\.0\.1:\d+)"/.exec(logs);
        if (m) { clearTimeout(timer); resolve(m[1]!); }
      });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${logs}`)); });
    });
    const ca = join(data, 'ca.crt');
    const prefix = newPrefix();
    const r = spawnSync('sh', ['-c', 'curl -fsSL --cacert "$CA" "$URL/install.sh" | sh -s -- --cacert "$CA" --prefix "$PREFIX"'], {
      encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CA: ca, URL: origin, PREFIX: prefix },
    });
    assert.is(r.status, 0, r.stderr);
    assert.is(sha256(join(prefix, 'launcher')), expectedSha);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const closed = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGTERM');
      await closed;
    }
  }
});

test('install.sh is clean under shellcheck -s sh', () => {
  const r = spawnSync('shellcheck', ['-s', 'sh', join(root, 'scripts/install.sh')], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stdout + r.stderr);
});

test.run();
