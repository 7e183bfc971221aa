// Masker throughput: 256 MiB of log-like text in 64 KiB chunks through the
// masker with 100 secrets (8–64 bytes, each with its encoded forms), against
// a pass-through Transform that copies its chunks (the limit any masking
// stream could reach), side by side in the same run on one core.
//
//   node_modules/.bin/node --import tsx bench/mask.bench.ts [MiB] [runs]
import { Transform } from 'node:stream';
import { Masker, createMaskStream } from '../lib/mask.ts';
import { prng } from '../test/helpers/random.ts';

const MIB = 1024 * 1024;
const totalMiB = Number(process.argv[2] ?? 256);
const runs = Number(process.argv[3] ?? 5);
const CHUNK = 64 * 1024;

// Seeded, so every random split is reproducible.
const rng = prng;

const rand = rng(2026);
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const SECRET_CHARS = `${ALNUM}-_/+=.:@`;
const pickFrom = (chars: string, n: number) => Array.from({ length: n }, () => chars[Math.floor(rand() * chars.length)]).join('');
const secrets = Array.from({ length: 100 }, (_, i) => ({ name: `SECRET_${i}`, value: pickFrom(SECRET_CHARS, 8 + Math.floor(rand() * 57)) }));

// Terraform/CI-like lines; about one line in 200 carries a secret in some form.
const WORDS = ['module.vpc', 'aws_instance.web', 'Refreshing state...', 'id=i-0abc123', 'Plan:', 'to add,', 'to change,', 'to destroy.', 'Creating...', 'Still creating...', '[10s elapsed]', 'Apply complete!', 'Resources:', 'data.aws_ami.ubuntu', 'Reading...', 'Read complete after 1s', 'terraform', 'init', 'Initializing provider plugins...', '- Finding hashicorp/aws versions matching "~> 5.0"...', 'WARNING', 'INFO', 'DEBUG', 'GET', 'https://registry.terraform.io/v1/providers', '200', 'OK'];
function line(): string {
  const ts = `2026-11-28T18:${String(Math.floor(rand() * 60)).padStart(2, '0')}:${String(Math.floor(rand() * 60)).padStart(2, '0')}.${pickFrom('0123456789', 3)}Z`;
  const words = Array.from({ length: 3 + Math.floor(rand() * 10) }, () => WORDS[Math.floor(rand() * WORDS.length)]);
  if (rand() < 0.005) {
    const s = secrets[Math.floor(rand() * secrets.length)].value;
    const forms = [s, Buffer.from(`x${s}`).toString('base64'), JSON.stringify(s), encodeURIComponent(s)];
    words.push(`token=${forms[Math.floor(rand() * forms.length)]}`);
  }
  if (rand() < 0.05) words.push(pickFrom(ALNUM, 20 + Math.floor(rand() * 40)));
  return `${ts} ${words.join(' ')}\n`;
}

// 8 MiB of distinct lines, repeated to the total size (generation would
// otherwise dominate the run).
const block = Buffer.from(Array.from({ length: 90_000 }, line).join('')).subarray(0, 8 * MIB);
const chunks: Buffer[] = [];
for (let off = 0; off < block.length; off += CHUNK) chunks.push(block.subarray(off, off + CHUNK));
const repeats = Math.ceil((totalMiB * MIB) / block.length);
const bytes = repeats * block.length;

function runStream(make: () => Transform): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = make();
    let out = 0;
    t.on('data', (d: Buffer) => { out += d.length; });
    t.on('end', () => resolve(out));
    t.on('error', reject);
    let r = 0;
    let c = 0;
    // Write with backpressure, synchronously where possible.
    const pump = (): void => {
      while (r < repeats) {
        const ok = t.write(chunks[c]);
        if (++c === chunks.length) { c = 0; r++; }
        if (!ok) { t.once('drain', pump); return; }
      }
      t.end();
    };
    pump();
  });
}

const contenders: Record<string, () => Transform> = {
  'pass-through (copy)': () => new Transform({ transform(chunk: Buffer, _e, done) { done(null, Buffer.from(chunk)); } }),
  masker: () => createMaskStream({ secrets }),
};

const probe = new Masker({ secrets });
console.log(`${totalMiB} MiB of log lines, ${secrets.length} secrets, ${probe.patternCount} patterns, ${CHUNK / 1024} KiB chunks, ${runs} runs, node ${process.version}`);
const results: Record<string, number[]> = {};
const cpuResults: Record<string, number[]> = {};
let masked = 0;
for (let run = 0; run < runs; run++) {
  for (const [name, make] of Object.entries(contenders)) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const out = await runStream(make);
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(c0);
    (results[name] ??= []).push(bytes / MIB / sec);
    (cpuResults[name] ??= []).push(bytes / MIB / ((cpu.user + cpu.system) / 1e6));
    if (name === 'masker') masked = bytes - out;
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const limit = median(results['pass-through (copy)']);
for (const [name, xs] of Object.entries(results)) {
  console.log(`${name.padEnd(22)} median ${median(xs).toFixed(0).padStart(5)} MiB/s wall  (runs: ${xs.map((x) => x.toFixed(0)).join(', ')})  ${(median(xs) / limit).toFixed(2)}x pass-through`);
}
// Per CPU-second (process user+system time) is steadier on a shared machine.
const cpuLimit = median(cpuResults['pass-through (copy)']);
for (const [name, xs] of Object.entries(cpuResults)) {
  console.log(`${name.padEnd(22)} median ${median(xs).toFixed(0).padStart(5)} MiB per CPU-second  (runs: ${xs.map((x) => x.toFixed(0)).join(', ')})  ${(median(xs) / cpuLimit).toFixed(2)}x pass-through`);
}
console.log(`masker output was ${masked} bytes shorter than its input (secrets replaced)`);
