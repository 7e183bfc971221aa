// `launcher state seal|open`: run state in the age v1 format, with age's flags,
// so anything sealed here opens with `age -d -i spacelift.key` and back.
// Output to a file goes through a temporary file beside it and a rename after
// the last chunk authenticated: a wrong key or a damaged blob never leaves a
// file (half-written or otherwise) at OUT.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { tempPathFor } from '../atomic-file.ts';
import { ConfigError, LauncherError } from '../errors.ts';
import {
  ArmoredSealer, Opener, Sealer, parseIdentityFile, transformOf, parseRecipient, parseRecipientsFile,
  sshRsaIdentity, sshRsaRecipient, type Identity, type Recipient,
} from '../age/index.ts';
import { pumpFile, type ChunkCore } from '../age/pump.ts';
import { parsePoolPrivateKey } from '../keys.ts';
import { decodeToken } from '../token.ts';

const USAGE = `Usage:
  launcher state seal (-r RECIPIENT | -R PATH)... [-a] [-o OUTPUT] [INPUT]
  launcher state open [-i PATH]... [-o OUTPUT] [INPUT]

Seals or opens run state in the age v1 format (age-encryption.org/v1), the
same files the age tool reads and writes. INPUT defaults to standard input
and OUTPUT to standard output ("-" means either).

Seal options:
  -r, --recipient RECIPIENT   an age1… public key or an "ssh-rsa AAAA…" line (repeatable)
  -R, --recipients-file PATH  a PEM certificate, PEM public key, or a file of
                              ssh-rsa / age1… lines (repeatable)
  -a, --armor                 write PEM-armored text instead of binary
  Without -r/-R, the pool certificate inside SPACELIFT_TOKEN is the recipient.

Open options:
  -i, --identity PATH         a PEM RSA private key (PKCS#8 or PKCS#1) or an age
                              identity file with AGE-SECRET-KEY-1… lines (repeatable)
  Without -i, the pool key in SPACELIFT_POOL_PRIVATE_KEY is the identity.

  -o, --output OUTPUT         write here (created only once the whole file is done)
  -h, --help                  show this help
`;

type Values = { recipient?: string[]; 'recipients-file'?: string[]; identity?: string[]; armor?: boolean; output?: string; help?: boolean };

function parse(argv: string[]): { values: Values; positionals: string[] } {
  return parseCommandArgs('state', {
    args: argv,
    options: {
      recipient: { type: 'string', short: 'r', multiple: true },
      'recipients-file': { type: 'string', short: 'R', multiple: true },
      identity: { type: 'string', short: 'i', multiple: true },
      armor: { type: 'boolean', short: 'a' },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
}

async function readKeyFile(io: CommandIo, flag: string, path: string): Promise<string> {
  try {
    return await readFile(resolve(io.cwd, path), 'utf8');
  } catch (e) {
    throw new ConfigError(`Cannot read ${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** Key parse errors name the flag and file they came from and keep exit code 2. */
function asConfig<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof LauncherError) throw new ConfigError(`${what}: ${e.message}`, { code: e.code, cause: e });
    throw e;
  }
}

async function recipientsFrom(io: CommandIo, v: Values): Promise<Recipient[]> {
  const out: Recipient[] = [];
  for (const r of v.recipient ?? []) out.push(asConfig('Cannot use -r', () => parseRecipient(r)));
  for (const path of v['recipients-file'] ?? []) {
    const text = await readKeyFile(io, '-R', path);
    out.push(...asConfig(`Cannot use -R ${path}`, () => parseRecipientsFile(text, path)));
  }
  if (out.length === 0) {
    const token = io.env.SPACELIFT_TOKEN;
    if (!token) throw new ConfigError('Cannot seal: no recipients; pass -r RECIPIENT or -R PATH (a certificate, public key or ssh-rsa line), or set SPACELIFT_TOKEN');
    out.push(sshRsaRecipient(decodeToken(token).certificate));
  }
  return out;
}

async function identitiesFrom(io: CommandIo, v: Values): Promise<Identity[]> {
  const out: Identity[] = [];
  for (const path of v.identity ?? []) {
    const text = await readKeyFile(io, '-i', path);
    out.push(...asConfig(`Cannot use -i ${path}`, () => parseIdentityFile(text, path)));
  }
  if (out.length === 0) {
    const key = io.env.SPACELIFT_POOL_PRIVATE_KEY;
    if (!key) throw new ConfigError('Cannot open: no identity; pass -i PATH (a PEM RSA private key or an age identity file), or set SPACELIFT_POOL_PRIVATE_KEY');
    out.push(sshRsaIdentity(parsePoolPrivateKey(key, 'SPACELIFT_POOL_PRIVATE_KEY')));
  }
  return out;
}

/**
 * Where OUTPUT goes: stdout, a device/FIFO written in place, or a temporary
 * file beside OUTPUT that is renamed over it only after success.
 */
interface Target {
  path: string | null; // null: stdout
  tmp: string | null; // null: write in place
}

async function targetFor(io: CommandIo, output: string | undefined): Promise<Target> {
  if (output === undefined || output === '-') return { path: null, tmp: null };
  const path = resolve(io.cwd, output);
  const existing = await stat(path).catch(() => null);
  if (existing?.isDirectory()) throw new ConfigError(`Cannot write -o ${output}: it is a directory; expected a file path`);
  // Renaming over a device (e.g. /dev/null) or FIFO would replace it with a
  // regular file, so those are written in place.
  if (existing && !existing.isFile()) return { path, tmp: null };
  return { path, tmp: tempPathFor(path) };
}

async function publish(target: Target, work: () => Promise<void>): Promise<void> {
  try {
    await work();
    if (target.tmp) await rename(target.tmp, target.path!);
  } catch (e) {
    if (target.tmp) await rm(target.tmp, { force: true });
    throw e;
  }
}

/** Runs INPUT → core → OUTPUT; file to file without streams, otherwise piped. */
async function runTo(io: CommandIo, input: string | undefined, core: () => ChunkCore, output: string | undefined): Promise<void> {
  const target = await targetFor(io, output);
  const fromFile = input !== undefined && input !== '-';
  if (fromFile && target.path) {
    const inHandle = await open(resolve(io.cwd, input), 'r');
    try {
      await publish(target, async () => {
        const outHandle = await open(target.tmp ?? target.path!, target.tmp ? 'wx' : 'w', 0o600);
        try {
          await pumpFile(core(), inHandle, outHandle);
        } finally {
          await outHandle.close();
        }
      });
    } finally {
      await inHandle.close();
    }
    return;
  }
  const source = fromFile ? createReadStream(resolve(io.cwd, input), { highWaterMark: 1 << 20 }) : io.stdin;
  if (!target.path) {
    // Not pipeline(…, stdout): on a failure (wrong key, damaged file) it would
    // destroy stdout with the error, which then surfaces as an uncaught stream
    // error and a stack trace instead of the one-line message.
    await pipeline(source, transformOf(core()), async function* (chunks: AsyncIterable<Buffer>) {
      for await (const c of chunks) await writeOut(io.stdout, c);
    });
    return;
  }
  await publish(target, () => pipeline(source, transformOf(core()), createWriteStream(target.tmp ?? target.path!, { flags: target.tmp ? 'wx' : 'w', mode: 0o600 })));
}

/** Writes to stdout respecting back-pressure, without ever ending or destroying it. */
function writeOut(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (e) => (e ? reject(e) : resolve()));
  });
}

function openFailure(e: unknown, input: string | undefined): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && err.code.startsWith('E') && !(e instanceof LauncherError)) {
    return new LauncherError('STATE_IO', `Cannot read or write state${input ? ` (${input})` : ''}: ${err.code} ${err.message}`, { cause: e });
  }
  return e;
}

export async function run(io: CommandIo): Promise<number> {
  const [action, ...rest] = io.argv;
  if (action === undefined || action === '-h' || action === '--help' || action === 'help') {
    (action === undefined ? io.stderr : io.stdout).write(USAGE);
    return action === undefined ? 2 : 0;
  }
  if (action !== 'seal' && action !== 'open') {
    throw new ConfigError(`Unknown state action "${action}": expected seal or open (see launcher state --help)`);
  }
  const { values, positionals } = parse(rest);
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new ConfigError(`Too many inputs: ${positionals.join(', ')}; expected at most one INPUT path`);
  const input = positionals[0];

  if (action === 'seal') {
    if (values.identity) throw new ConfigError('Cannot use -i with seal: seal takes -r or -R recipients');
    const recipients = await recipientsFrom(io, values);
    const toTerminal = (values.output === undefined || values.output === '-') && (io.stdout as { isTTY?: boolean }).isTTY;
    if (toTerminal && !values.armor) throw new ConfigError('Refusing to write binary sealed state to a terminal: pass -o OUTPUT, redirect, or use -a for armored text');
    try {
      const armor = values.armor === true;
      await runTo(io, input, () => (armor ? new ArmoredSealer(recipients) : new Sealer(recipients)), values.output);
    } catch (e) {
      throw openFailure(e, input);
    }
    return 0;
  }

  if (values.recipient || values['recipients-file']) throw new ConfigError('Cannot use -r/-R with open: open takes -i identities');
  if (values.armor) throw new ConfigError('Cannot use -a with open: armored input is detected automatically');
  const identities = await identitiesFrom(io, values);
  try {
    await runTo(io, input, () => new Opener(identities), values.output);
  } catch (e) {
    throw openFailure(e, input);
  }
  return 0;
}
