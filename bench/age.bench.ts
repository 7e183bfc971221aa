// Sealed state throughput: `launcher state seal|open` (the built executable) vs the `age` CLI on the
// same 1 GiB file with the same ssh-rsa key (made by the seed's openssl
// command), file to file, alternating who goes first in each round. Each side
// opens the other's output, so every round is also an interop check.
// Reports medians, MiB/s, ratios, peak RSS (/usr/bin/time -v style %M), and
// `openssl speed -evp chacha20-poly1305` (one thread) as the crypto ceiling.
//
//   node_modules/.bin/node --import tsx bench/age.bench.ts
//   AGE_BENCH_MIB=256 AGE_BENCH_ROUNDS=5 node_modules/.bin/node --import tsx bench/age.bench.ts
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, createReadStream } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { sshRsaPublicLine } from '../lib/age/index.ts';
import { workerCount } from '../lib/age/parallel.ts';
import { ensureBuilt } from '../test/helpers/build.ts';

const MIB = Number(process.env.AGE_BENCH_MIB ?? 1024);
const ROUNDS = Number(process.env.AGE_BENCH_ROUNDS ?? 3);
const dir = mkdtempSync('/tmp/launcher-age-bench-');
const p = (n: string): string => join(dir, n);

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? dir, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

interface Run { seconds: number; cpu: number; rssMB: number }

/** Runs one command under /usr/bin/time: wall seconds (our clock), user+sys CPU seconds, peak RSS in MB. */
function timed(cmd: string[]): Run {
  const timeFile = p('time.out');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', timeFile, ...cmd], { cwd: dir, encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr}`);
  const [kb, user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { seconds, cpu: user! + sys!, rssMB: kb! / 1000 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** node:crypto's ChaCha20-Poly1305 the way STREAM uses it (one cipher per 64 KiB chunk), per CPU-second. */
function nodeCryptoMiBPerCpuSecond(): number {
  const key = randomBytes(32);
  const chunk = randomBytes(64 * 1024);
  const nonce = Buffer.alloc(12);
  const c0 = process.cpuUsage();
  for (let i = 0; i < 4096; i++) {
    nonce.writeUInt32BE(i, 7);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.update(chunk);
    c.final();
    c.getAuthTag();
  }
  const u = process.cpuUsage(c0);
  return 256 / ((u.user + u.system) / 1e6);
}

function opensslMiBPerSecond(): number {
  const speed = sh('openssl', ['speed', '-evp', 'chacha20-poly1305', '-bytes', '65536', '-seconds', '3']);
  const kbps = Number(/ChaCha20-Poly1305\s+([\d.]+)k/i.exec(speed)?.[1] ?? NaN);
  return (kbps * 1000) / (1 << 20);
}

async function main(): Promise<void> {
  if (process.env.AGE_BENCH_CRYPTO_ONLY) {
    console.log(`openssl speed -evp chacha20-poly1305 (64 KiB, one thread): ${opensslMiBPerSecond().toFixed(0)} MiB/s`);
    console.log(`node:crypto chacha20-poly1305, one cipher per 64 KiB chunk: ${nodeCryptoMiBPerCpuSecond().toFixed(0)} MiB per CPU-second`);
    return;
  }
  console.log(`age bench: ${MIB} MiB, ${ROUNDS} rounds, in ${dir}`);
  // The pool key exactly as the seed makes it.
  sh('openssl', ['req', '-new', '-newkey', 'rsa:4096', '-nodes', '-keyout', 'spacelift.key', '-out', 'spacelift.csr', '-subj', '/CN=bench']);
  writeFileSync(p('spacelift.pub'), sshRsaPublicLine(readFileSync(p('spacelift.key'), 'utf8')) + '\n');

  // What ships: the built executable (rebuilt first when sources are newer).
  const ours = [ensureBuilt(), 'state'];

  // Plaintext: random, written in 4 MiB blocks.
  const fd = openSync(p('plain'), 'w');
  const block = Buffer.allocUnsafe(4 << 20);
  for (let i = 0; i < MIB / 4; i++) writeSync(fd, randomFillSync(block));
  closeSync(fd);
  const plainHash = await sha256(p('plain'));

  const runs: Record<string, Run[]> = { 'ours seal': [], 'age seal': [], 'ours open': [], 'age open': [] };
  const cmds: Record<string, string[]> = {
    'ours seal': [...ours, 'seal', '-R', 'spacelift.pub', '-o', 'ours.age', 'plain'],
    'age seal': ['age', '-R', 'spacelift.pub', '-o', 'theirs.age', 'plain'],
    // Each opens the other's file: interop on every round.
    'ours open': [...ours, 'open', '-i', 'spacelift.key', '-o', 'ours.out', 'theirs.age'],
    'age open': ['age', '-d', '-i', 'spacelift.key', '-o', 'theirs.out', 'ours.age'],
  };
  // Hashing the plaintext above also warmed the page cache for both sides.
  for (let round = 0; round < ROUNDS; round++) {
    for (const op of ['seal', 'open']) {
      const order = round % 2 === 0 ? ['ours', 'age'] : ['age', 'ours'];
      for (const who of order) {
        const name = `${who} ${op}`;
        const out = cmds[name]![cmds[name]!.indexOf('-o') + 1]!;
        if (existsSync(p(out))) rmSync(p(out));
        const r = timed(cmds[name]!);
        runs[name]!.push(r);
        console.log(`  round ${round + 1} ${name.padEnd(9)} ${r.seconds.toFixed(2)} s  ${(MIB / r.seconds).toFixed(0)} MiB/s  cpu ${r.cpu.toFixed(2)} s  peak RSS ${r.rssMB.toFixed(0)} MB`);
      }
    }
    if (round === 0) {
      for (const out of ['ours.out', 'theirs.out']) {
        if ((await sha256(p(out))) !== plainHash) throw new Error(`${out} does not match the plaintext`);
      }
      console.log('  round 1 outputs match the plaintext (age opened ours, we opened age\'s)');
    }
  }

  const opensslMiB = opensslMiBPerSecond();
  const nodeMiB = nodeCryptoMiBPerCpuSecond();

  const med = (name: string): number => median(runs[name]!.map((r) => r.seconds));
  const medCpu = (name: string): number => median(runs[name]!.map((r) => r.cpu));
  const peak = (name: string): number => Math.max(...runs[name]!.map((r) => r.rssMB));
  const lines = [
    `| operation | ours (median wall) | age (median wall) | ours ÷ age throughput | CPU s ours / age (median) | our peak RSS | age peak RSS |`,
    `| --- | --- | --- | --- | --- | --- | --- |`,
  ];
  for (const op of ['seal', 'open']) {
    const o = med(`ours ${op}`);
    const a = med(`age ${op}`);
    lines.push(`| ${op} ${MIB} MiB file to file | ${o.toFixed(2)} s = ${(MIB / o).toFixed(0)} MiB/s | ${a.toFixed(2)} s = ${(MIB / a).toFixed(0)} MiB/s | ${(a / o).toFixed(2)}× | ${medCpu(`ours ${op}`).toFixed(2)} / ${medCpu(`age ${op}`).toFixed(2)} | ${peak(`ours ${op}`).toFixed(0)} MB | ${peak(`age ${op}`).toFixed(0)} MB |`);
  }
  lines.push('', `openssl speed -evp chacha20-poly1305 (64 KiB blocks, one thread): ${opensslMiB.toFixed(0)} MiB/s`);
  lines.push(`node:crypto chacha20-poly1305, one cipher per 64 KiB chunk: ${nodeMiB.toFixed(0)} MiB per CPU-second`);
  console.log('\n' + lines.join('\n'));
  const worst = Math.max(peak('ours seal'), peak('ours open'));
  console.log(`threads: ${workerCount()} crypto workers for files ≥ 16 MiB; load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`\nour peak RSS ${worst.toFixed(0)} MB: ${worst <= 100 ? 'within' : 'OVER'} the 100 MB budget`);
}

main().finally(() => rmSync(dir, { recursive: true, force: true })).catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
