// `launcher state seal|open` as a subprocess, the way users and scripts run it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { TempDir, run, seedKey } from './helpers/age-tools.ts';
import { pseudoRandomBytes } from './helpers/random.ts';
import { sshRsaPublicLine } from '../lib/age/index.ts';

const root = new URL('..', import.meta.url).pathname;
// The child runs in the temp dir (so relative paths behave as for a user),
// so tsx is named by its resolved location rather than looked up from cwd.
const tsx = import.meta.resolve('tsx');
const t = new TempDir();
const pool = seedKey(t, 'spacelift');
seedKey(t, 'stranger', 2048);
run('openssl', ['req', '-x509', '-key', pool.key, '-subj', '/CN=pool', '-days', '2', '-out', t.path('spacelift.crt')]);
run('openssl', ['pkey', '-in', pool.key, '-pubout', '-out', t.path('spacelift.pub.pem')]);
t.write('spacelift.pub', sshRsaPublicLine(readFileSync(pool.key, 'utf8')) + '\n');
run('age-keygen', ['-o', t.path('x.key')]);
const xRecipient = run('age-keygen', ['-y', t.path('x.key')]).toString().trim();
const plain = pseudoRandomBytes(3 * 65536 + 5, 17);
t.write('plain', plain);

function launcher(args: string[], opts: { input?: Uint8Array; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, ['--import', tsx, `${root}launcher.ts`, 'state', ...args], {
    cwd: t.dir,
    input: opts.input,
    env: { PATH: process.env.PATH ?? '', ...opts.env },
    maxBuffer: 1 << 28,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function launcherAsync(args: string[]): Promise<number | null> {
  const child = spawn(process.execPath, ['--import', tsx, `${root}launcher.ts`, 'state', ...args], { cwd: t.dir, stdio: 'ignore' });
  return new Promise((r) => child.on('close', r));
}

/** Nothing but the expected files: no OUT, no temp files left behind. */
function listing(): string[] {
  return readdirSync(t.dir).sort();
}

test.after(() => t.remove());

test('seal -R (certificate, public key, ssh-rsa file) → open -i key, file to file; age agrees', () => {
  for (const pub of ['spacelift.crt', 'spacelift.pub.pem', 'spacelift.pub']) {
    const r = launcher(['seal', '-R', pub, '-o', 'state.age', 'plain']);
    assert.is(r.status, 0, r.stderr);
    assert.ok(run('age', ['-d', '-i', pool.key, t.path('state.age')]).equals(plain), `age opens what we sealed to ${pub}`);
    const o = launcher(['open', '-i', 'spacelift.key', '-o', 'out', 'state.age']);
    assert.is(o.status, 0, o.stderr);
    assert.ok(t.read('out').equals(plain), pub);
  }
});

test('stdin to stdout both ways, and files sealed by age -R open', () => {
  const sealed = launcher(['seal', '-R', 'spacelift.pub'], { input: plain });
  assert.is(sealed.status, 0, sealed.stderr);
  assert.ok(sealed.stdout.subarray(0, 22).equals(Buffer.from('age-encryption.org/v1\n')));
  const opened = launcher(['open', '-i', 'spacelift.key', '-'], { input: sealed.stdout });
  assert.is(opened.status, 0, opened.stderr);
  assert.ok(opened.stdout.equals(plain));
  const theirs = run('age', ['-R', t.path('spacelift.pub')], { input: plain });
  const o = launcher(['open', '-i', 'spacelift.key'], { input: theirs });
  assert.ok(o.stdout.equals(plain), o.stderr);
});

test('several -r/-R/-i: two recipients, each identity opens', () => {
  const r = launcher(['seal', '-R', 'spacelift.pub', '-r', xRecipient, '-a', '-o', 'multi.age', 'plain']);
  assert.is(r.status, 0, r.stderr);
  assert.match(readFileSync(t.path('multi.age'), 'utf8'), /^-----BEGIN AGE ENCRYPTED FILE-----\n/);
  for (const id of [['-i', 'x.key'], ['-i', 'spacelift.key'], ['-i', 'stranger.key', '-i', 'x.key']]) {
    const o = launcher(['open', ...id, 'multi.age']);
    assert.is(o.status, 0, o.stderr);
    assert.ok(o.stdout.equals(plain), id.join(' '));
  }
});

test('wrong key: "No identity matches", exit 1, and OUT is never created', () => {
  assert.is(launcher(['seal', '-R', 'spacelift.crt', '-o', 'state.age', 'plain']).status, 0);
  const before = listing();
  const r = launcher(['open', '-i', 'stranger.key', '-o', 'never', 'state.age']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^launcher state: No identity matches any of the file's 1 recipient stanza \(ssh-rsa\)/);
  assert.not.ok(existsSync(t.path('never')));
  assert.equal(listing(), before, 'no temporary file left behind');
});

test('a damaged blob (last chunk flipped or truncated): exit 1, OUT not created even though early chunks authenticated', () => {
  assert.is(launcher(['seal', '-R', 'spacelift.pub', '-o', 'state.age', 'plain']).status, 0);
  const good = t.read('state.age');
  const flipped = Buffer.from(good);
  flipped[flipped.length - 3]! ^= 4;
  t.write('flipped.age', flipped);
  t.write('short.age', good.subarray(0, good.length - 40));
  const before = listing();
  for (const [file, pattern] of [['flipped.age', /does not authenticate/], ['short.age', /does not authenticate|truncated/]] as const) {
    const r = launcher(['open', '-i', 'spacelift.key', '-o', 'never', file]);
    assert.is(r.status, 1, file);
    assert.match(r.stderr, pattern);
    assert.not.ok(existsSync(t.path('never')), file);
  }
  assert.equal(listing(), before);
});

test('pool key from SPACELIFT_POOL_PRIVATE_KEY (one-line base64) when -i is absent', () => {
  assert.is(launcher(['seal', '-R', 'spacelift.pub', '-o', 'state.age', 'plain']).status, 0);
  const b64 = readFileSync(pool.key).toString('base64');
  const r = launcher(['open', 'state.age'], { env: { SPACELIFT_POOL_PRIVATE_KEY: b64 } });
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.stdout.equals(plain));
});

test('usage errors exit 2 and say what is accepted', () => {
  const cases: [string[], RegExp][] = [
    [['frob'], /Unknown state action "frob": expected seal or open/],
    [['seal', 'plain'], /no recipients; pass -r RECIPIENT or -R PATH/],
    [['open', 'plain'], /no identity; pass -i PATH/],
    [['seal', '-R', 'missing.pub', 'plain'], /Cannot read -R missing.pub: ENOENT/],
    [['seal', '-r', 'nonsense', 'plain'], /expected an age1… public key or an "ssh-rsa AAAA…" line/],
    [['seal', '-R', 'spacelift.csr', 'plain'], /"CERTIFICATE REQUEST" block is not a recipient/],
    [['open', '-i', 'spacelift.pub', 'plain'], /Cannot use -i spacelift.pub/],
    [['seal', '-R', 'spacelift.pub', '--nope'], /see launcher state --help/],
  ];
  for (const [args, pattern] of cases) {
    const r = launcher(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  const help = launcher(['--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout.toString(), /launcher state seal/);
});

test('-o onto a FIFO writes through it and leaves it a FIFO (devices such as /dev/null are never replaced)', async () => {
  run('mkfifo', [t.path('pipe')]);
  const reader = spawn('cat', [t.path('pipe')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: Buffer[] = [];
  reader.stdout.on('data', (d: Buffer) => got.push(d));
  const done = new Promise((r) => reader.on('close', r));
  const r = await launcherAsync(['seal', '-R', 'spacelift.pub', '-o', 'pipe', 'plain']);
  await done;
  assert.is(r, 0);
  assert.ok(lstatSync(t.path('pipe')).isFIFO(), 'still a FIFO');
  assert.ok(run('age', ['-d', '-i', pool.key], { input: Buffer.concat(got) }).equals(plain));
  assert.is(launcher(['seal', '-R', 'spacelift.pub', '-o', '.', 'plain']).status, 2);
});

test('a large state file (> 16 MiB, the worker-pool path) both ways with age', () => {
  const big = pseudoRandomBytes(20 * 1024 * 1024 + 7, 23);
  t.write('big', big);
  const r = launcher(['seal', '-R', 'spacelift.crt', '-o', 'big.age', 'big']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(run('age', ['-d', '-i', pool.key, t.path('big.age')]).equals(big), 'age opens what the pool sealed');
  run('age', ['-R', t.path('spacelift.pub'), '-o', t.path('big.theirs'), t.path('big')]);
  const o = launcher(['open', '-i', 'spacelift.key', '-o', 'big.out', 'big.theirs']);
  assert.is(o.status, 0, o.stderr);
  assert.ok(t.read('big.out').equals(big), 'we open what age sealed');
  const damaged = t.read('big.theirs');
  damaged[damaged.length >> 1]! ^= 1;
  t.write('big.bad', damaged);
  const bad = launcher(['open', '-i', 'spacelift.key', '-o', 'never', 'big.bad']);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /Invalid age payload: chunk \d+ does not authenticate/);
  assert.not.ok(existsSync(t.path('never')));
});

test('a file that is not age at all: exit 1 with a header error', () => {
  const r = launcher(['open', '-i', 'spacelift.key', 'plain']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /Invalid age header: it does not start with "age-encryption.org\/v1"/);
});

test.run();
