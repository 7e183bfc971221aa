// `launcher keygen`: the pool's RSA key and CSR, the same result as the seed's
// `openssl req -new -newkey rsa:4096 -nodes -keyout spacelift.key -out spacelift.csr`
// for hosts without openssl. The key is written with mode 0600 and never printed.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { writeFilesAtomic } from '../atomic-file.ts';
import { ConfigError, LauncherError } from '../errors.ts';
import { createCsr } from '../csr.ts';
import { MAX_POOL_KEY_BITS, MIN_POOL_KEY_BITS, generatePoolKey } from '../keys.ts';

const USAGE = `Usage: launcher keygen [--out PREFIX] [--bits 4096] [--force]

Creates the worker pool's private key (PREFIX.key, PKCS#8 PEM, mode 0600)
and a certificate signing request for it (PREFIX.csr).

Options:
  --out PREFIX   file name prefix (default: spacelift, giving spacelift.key and spacelift.csr)
  --bits N       RSA key size: ${MIN_POOL_KEY_BITS} to ${MAX_POOL_KEY_BITS} in steps of 1024 (default: 4096)
  --cn NAME      common name in the CSR (default: worker-pool; the server names the certificate after the pool anyway)
  --force        replace existing files
  -h, --help     show this help
`;

export function parseBits(value: string): number {
  const bits = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(bits >= MIN_POOL_KEY_BITS && bits <= MAX_POOL_KEY_BITS && bits % 1024 === 0)) {
    throw new ConfigError(`Cannot use --bits ${JSON.stringify(value)}: expected ${MIN_POOL_KEY_BITS} to ${MAX_POOL_KEY_BITS} in steps of 1024 (e.g. --bits 4096)`);
  }
  return bits;
}

export async function run(io: CommandIo): Promise<number> {
  let values: { out?: string; bits?: string; cn?: string; force?: boolean; help?: boolean };
  ({ values } = parseCommandArgs('keygen', {
    args: io.argv,
    options: {
      out: { type: 'string', short: 'o' },
      bits: { type: 'string' },
      cn: { type: 'string' },
      force: { type: 'boolean', short: 'f' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }));
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const bits = parseBits(values.bits ?? '4096');
  const prefix = values.out ?? 'spacelift';
  if (prefix === '' || prefix.endsWith('/')) throw new ConfigError(`Cannot use --out ${JSON.stringify(prefix)}: expected a file name prefix such as ./pool/spacelift`);
  const keyName = `${prefix}.key`;
  const csrName = `${prefix}.csr`;
  const keyPath = resolve(io.cwd, keyName);
  const csrPath = resolve(io.cwd, csrName);
  if (!values.force) {
    for (const [name, path] of [[keyName, keyPath], [csrName, csrPath]] as const) {
      if (existsSync(path)) throw new LauncherError('FILE_EXISTS', `Refusing to overwrite ${name}: it already exists; pass --force to replace it`);
    }
  }
  if (!existsSync(dirname(keyPath))) throw new ConfigError(`Cannot write ${keyName}: the directory ${dirname(keyName)} does not exist`);

  const key = generatePoolKey(bits);
  const csr = createCsr(key.privateKeyPem, { commonName: values.cn ?? undefined });
  // Both complete before either is renamed into place: never a new key beside an old CSR.
  await writeFilesAtomic([{ path: keyPath, data: key.privateKeyPem, mode: 0o600 }, { path: csrPath, data: csr, mode: 0o644 }]);

  const q = (s: string) => (/^[\w./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  io.stdout.write(
    `Wrote the pool's ${bits}-bit RSA private key to ${keyName} (mode 0600): keep it secret, it never leaves your hosts\n` +
      `Wrote the certificate signing request to ${csrName}\n\n` +
      'Next steps:\n' +
      `  1. Create the worker pool from the CSR; the server answers with the pool's token:\n` +
      `       launcher admin pool create NAME --csr ${q(csrName)}\n` +
      `  2. Start a launcher on each host with the token and the key (one-line base64 of the key file):\n` +
      `       SPACELIFT_TOKEN="<token>" SPACELIFT_POOL_PRIVATE_KEY="$(base64 -w 0 ${q(keyName)})" launcher\n`,
  );
  return 0;
}
