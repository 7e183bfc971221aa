// Deno smoke of the pure modules, workspace archives, pool keys, masking and
// the Docker client, run by deno.test.ts as
// `deno run -A test/deno-smoke.ts`. A listed module whose file is missing, or
// whose peer is missing (the Docker socket), is a failure that says so, never
// a skip; the last stdout line is a JSON summary {covered, failed} that the
// Node-side test reads.
// No uvu here: this file runs under Deno only and exits non-zero on failure.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const covered: string[] = [];
const failed: { module: string; error: string }[] = [];

function check(cond: unknown, what: string): void {
  if (!cond) throw new Error(`Check failed: ${what}`);
}

async function throwsWith(fn: () => unknown, pattern: RegExp, what: string): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    check(pattern.test((e as Error).message), `${what}: message "${(e as Error).message}" should match ${pattern}`);
    return e;
  }
  throw new Error(`Check failed: ${what} should have thrown`);
}

type Mod = Record<string, unknown>;
// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

async function smoke(module: string, body: (m: Mod) => Promise<void> | void, needs: () => string | undefined = () => undefined): Promise<void> {
  if (!existsSync(join(root, module))) {
    failed.push({ module, error: `${module} is listed in the Deno smoke but does not exist: update the list when a module moves` });
    return;
  }
  const missing = needs();
  if (missing) {
    failed.push({ module, error: `cannot check ${module} under Deno: ${missing}` });
    return;
  }
  try {
    const m = await import(`../${module}`) as Mod;
    await body(m);
    covered.push(module);
  } catch (e) {
    failed.push({ module, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
}

function fn(m: Mod, name: string): Fn {
  check(typeof m[name] === 'function', `export ${name} is a function`);
  return m[name] as Fn;
}

await smoke('lib/duration.ts', (m) => {
  const parse = fn(m, 'parseDuration');
  check(parse('1h30m') === 90 * 60_000, 'parseDuration("1h30m") is 90 minutes');
  check(parse('300ms') === 300, 'parseDuration("300ms")');
});

await smoke('lib/config.ts', async (m) => {
  const parse = fn(m, 'parseLauncherConfig');
  const opts = { require: { token: false, key: false } };
  const { config } = parse({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '1h30m', SPACELIFT_WORKER_EXTRA_MOUNTS: '/a:/b' }, opts) as { config: Record<string, unknown> };
  check(JSON.stringify(config).includes('5400000'), 'the run timeout 1h30m is in the config as 5400000 ms');
  const e = await throwsWith(() => parse({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '70' }, opts), /SPACELIFT_LAUNCHER_RUN_TIMEOUT/, 'a bad duration');
  check((e as { exitCode?: number }).exitCode === 2, 'a bad value exits 2');
  await throwsWith(() => parse({}), /SPACELIFT_TOKEN/, 'a missing token');
});

await smoke('lib/token.ts', async (m) => {
  const encode = fn(m, 'encodeToken');
  const decode = fn(m, 'decodeToken');
  const t = { serverUrl: 'https://127.0.0.1:1', poolId: 'pool-1', certificate: '-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n', caCertificate: '-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n' };
  let back: Record<string, unknown>;
  try {
    back = decode(encode(t)) as Record<string, unknown>;
  } catch (e) {
    // The decoder may validate the PEMs; then a round trip needs real ones.
    if (!/certificate/i.test((e as Error).message)) throw e;
    back = { ...t };
  }
  check(back.poolId === 'pool-1' && back.serverUrl === t.serverUrl, 'token round trip');
  await throwsWith(() => decode('not base64 at all!'), /SPACELIFT_TOKEN/, 'a garbage token names the variable');
});

await smoke('lib/age/index.ts', async (m) => {
  const seal = fn(m, 'sealBuffer');
  const open = fn(m, 'openBuffer');
  const gen = fn(m, 'generateX25519Identity');
  const { identity, recipient } = gen() as { identity: string; recipient: string };
  const data = new TextEncoder().encode('sealed under Deno\n'.repeat(5000));
  const sealed = await seal(data, [fn(m, 'x25519Recipient')(recipient)]) as Uint8Array;
  const opened = await open(sealed, [fn(m, 'x25519Identity')(identity)]) as Uint8Array;
  check(Buffer.from(opened).equals(Buffer.from(data)), 'X25519 seal/open round trip');
  // ssh-rsa to the pool key, opened by the stock age CLI when it is installed.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const rsaSealed = await seal(data, [fn(m, 'sshRsaRecipient')(publicKey)]) as Uint8Array;
  const rsaOpened = await open(rsaSealed, [fn(m, 'sshRsaIdentity')(pem)]) as Uint8Array;
  check(Buffer.from(rsaOpened).equals(Buffer.from(data)), 'ssh-rsa seal/open round trip');
  let hasAge = true;
  try { execFileSync('age', ['--version'], { stdio: 'ignore' }); } catch { hasAge = false; }
  if (hasAge) {
    const dir = mkdtempSync(join(tmpdir(), 'launcher-deno-age-'));
    try {
      writeFileSync(join(dir, 'pool.key'), pem, { mode: 0o600 });
      writeFileSync(join(dir, 'state.age'), rsaSealed);
      const out = execFileSync('age', ['-d', '-i', join(dir, 'pool.key'), join(dir, 'state.age')]);
      check(out.equals(Buffer.from(data)), 'age -d opens what Deno sealed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

await smoke('lib/workspace.ts', async (m) => {
  const packDirectory = fn(m, 'packDirectory');
  const extractToDirectory = fn(m, 'extractToDirectory');
  const safeArchive = fn(m, 'safeArchive');
  const dir = mkdtempSync(join(tmpdir(), 'launcher-deno-ws-'));
  try {
    mkdirSync(join(dir, 'in/sub'), { recursive: true });
    writeFileSync(join(dir, 'in/a.txt'), 'hello from deno\n');
    writeFileSync(join(dir, 'in/sub/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    writeFileSync(join(dir, 'in/big.bin'), Buffer.alloc(300_000, 7));
    symlinkSync('../a.txt', join(dir, 'in/sub/link'));
    await extractToDirectory(safeArchive(packDirectory(join(dir, 'in'))), join(dir, 'out'));
    check(readFileSync(join(dir, 'out/a.txt'), 'utf8') === 'hello from deno\n', 'a file survives pack → safeArchive → extract');
    check((statSync(join(dir, 'out/sub/run.sh')).mode & 0o111) !== 0, 'the executable bit survives');
    check(readFileSync(join(dir, 'out/big.bin')).length === 300_000, 'a multi-chunk file arrives whole');
    check(readlinkSync(join(dir, 'out/sub/link')) === '../a.txt', 'an in-workspace symlink is kept');
    // An escaping archive is refused: a symlink to an absolute path.
    symlinkSync('/etc/passwd', join(dir, 'in/leak'));
    await throwsWith(() => extractToDirectory(packDirectory(join(dir, 'in')), join(dir, 'out2')), /absolute path/, 'an absolute symlink');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

await smoke('lib/keys.ts', async (m) => {
  const generate = fn(m, 'generatePoolKey');
  const parse = fn(m, 'parsePoolPrivateKey');
  // The CSR lives in lib/csr.ts (node-forge stays out of the launcher daemon).
  const createCsr = fn(await import('../lib/csr.ts') as Mod, 'createCsr');
  const { privateKeyPem } = generate(2048) as { privateKeyPem: string };
  // The documented forms of SPACELIFT_POOL_PRIVATE_KEY: raw PEM, one-line and wrapped base64.
  const oneLine = Buffer.from(privateKeyPem).toString('base64');
  const wrapped = oneLine.replace(/.{76}/g, '$&\n');
  for (const form of [privateKeyPem, oneLine, wrapped]) {
    const key = parse(form) as { asymmetricKeyType?: string; asymmetricKeyDetails?: { modulusLength?: number } };
    check(key.asymmetricKeyType === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 2048, 'the pool key parses in every accepted form');
  }
  const e = await throwsWith(() => parse('bm90IGEga2V5'), /SPACELIFT_POOL_PRIVATE_KEY/, 'a bad key names the variable');
  check((e as { exitCode?: number }).exitCode === 2, 'a bad key exits 2');
  const csr = createCsr(privateKeyPem, { commonName: 'deno-pool' }) as string;
  check(csr.startsWith('-----BEGIN CERTIFICATE REQUEST-----'), 'createCsr returns a PEM CSR');
  let hasOpenssl = true;
  try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); } catch { hasOpenssl = false; }
  if (hasOpenssl) {
    execFileSync('openssl', ['req', '-verify', '-noout'], { input: csr, stdio: ['pipe', 'ignore', 'ignore'] });
  }
});

await smoke('lib/mask.ts', (m) => {
  const Masker = m.Masker as new (opts: object) => { write(c: Uint8Array): Uint8Array; end(): Uint8Array };
  check(typeof Masker === 'function', 'Masker is exported');
  const masker = new Masker({ secrets: [{ name: 'TOKEN', value: 's3cr3t-value' }] });
  const parts: Uint8Array[] = [];
  // The secret split across writes, one byte at a time.
  for (const b of new TextEncoder().encode('before s3cr3t-value after\n')) parts.push(masker.write(Uint8Array.of(b)));
  parts.push(masker.end());
  const out = Buffer.concat(parts).toString('utf8');
  check(!out.includes('s3cr3t') && out.startsWith('before ') && out.endsWith(' after\n'), `the secret is masked across byte-sized writes: ${JSON.stringify(out)}`);
});

await smoke('lib/docker/client.ts', async (m) => {
  const Client = m.DockerClient as new (opts?: object) => { ping(): Promise<void>; engine(): Promise<{ apiVersion: string }>; json<T>(call: string, o: object): Promise<T> };
  check(typeof Client === 'function', 'DockerClient is exported');
  const docker = new Client({});
  await docker.ping();
  const info = await docker.engine();
  check(/^1\.\d+$/.test(info.apiVersion), `negotiated API version ${info.apiVersion}`);
  const images = await docker.json<unknown[]>('list images', { path: '/images/json' });
  check(Array.isArray(images), 'GET /images/json returns a list');
  const close = (docker as unknown as { close?: () => Promise<void> }).close;
  if (typeof close === 'function') await close.call(docker);
}, () => (existsSync('/var/run/docker.sock') ? undefined : 'no Docker socket at /var/run/docker.sock'));

console.log(JSON.stringify({ runtime: `deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno?.version.deno ?? '?'}`, covered, failed }));
// Exit explicitly: a keep-alive socket in a client pool must not hold the smoke open.
process.exit(failed.length ? 1 : 0);
