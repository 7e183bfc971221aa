// `launcher server`: the control plane. Parses flags, starts the HTTPS server
// on the data directory, and runs until SIGINT/SIGTERM.
import { join, resolve } from 'node:path';
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { ConfigError } from '../errors.ts';
import { parseDuration } from '../duration.ts';
import { parseRetention } from '../retention/policy.ts';
import { rotateAdminToken, startServer } from '../server/app.ts';
import { createServerLogger } from '../server/log.ts';

export const DEFAULT_LISTEN = '127.0.0.1:8443';

const USAGE = `Usage: launcher server --data DIR [OPTIONS]
       launcher server restore FILE --data DIR

Runs the control plane: pools, workers, stacks, runs, logs and sealed state.
The first start initialises DIR (CA, server certificate, admin token).

Options:
  --data DIR                 data directory (required; created 0700 if missing)
  --listen HOST:PORT         address to listen on (default ${DEFAULT_LISTEN}; port 0 picks a free one)
  --url https://NAME:PORT    URL launchers use to reach this server (goes into tokens;
                             default https://LISTEN_HOST:PORT)
  --worker-lease DURATION    a silent worker becomes OFFLINE after this (default 30s)
  --worker-grace DURATION    an OFFLINE worker's running phase fails after this (default 2m)
  --max-workspace-size SIZE  largest sealed workspace accepted (default 1GiB)
  --retain-runs DURATION     remove runs that ended longer ago than this, with their logs
                             and sealed workspaces (e.g. 30d or 720h; default: keep forever)
  --retain-offline-workers DURATION
                             remove workers OFFLINE (or deregistered) longer than this
                             (e.g. 24h; default: keep them listed)
  --metrics-listen HOST:PORT also serve GET /metrics over plain HTTP here, without the admin
                             token, for scrapers (bind it to loopback or a private network;
                             /metrics on the main listener always needs the admin token)
  --dist DIR                 files served at /install.sh, /SHA256SUMS, /launcher-linux-*
                             (default DIR/dist under the data directory)

Limits (what one client may take of the server):
  --max-connections N        open connections at most (default: the open-file limit,
                             raised to its hard value at start, less what the server
                             keeps for its own files); at the cap the oldest connection
                             that has not authenticated is closed for a new one
  --max-pending-per-address N
                             connections not yet authenticated from one address (default 256)
  --handshake-timeout DURATION
                             close a connection that has not finished TLS (default 10s)
  --headers-timeout DURATION request headers must arrive within this (default 20s)
  --body-timeout DURATION    a JSON body must arrive within this; an upload may not
                             stall longer than this (default 30s)
  --max-run-log SIZE         log bytes kept per run, all phases together (default 100MiB);
                             past it the log ends with a marker and launchers stop sending
  --max-uploads-per-worker N sealed workspace uploads in progress per worker (default 2)
  --max-uploads N            uploads in progress in all (default 32)
  --min-free-disk SIZE       uploads that would leave less free space get 507 (default 1GiB)
  --debug                    verbose logs
  --rotate-admin-token       (server stopped) print and save a new admin token, then exit
  -h, --help                 show this help

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 cannot start (another server uses
DIR, cannot listen), 2 bad flags.
`;

/** "HOST:PORT", "[::1]:PORT" or ":PORT" (all interfaces). */
export function parseListen(text: string, flag = '--listen'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  const eg = flag === '--listen' ? 8443 : 9464;
  if (!m || port > 65535) throw new ConfigError(`Invalid ${flag}: "${text}" is not HOST:PORT (try 127.0.0.1:${eg}, 0.0.0.0:${eg} or [::1]:${eg})`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};

/** Byte sizes like `1GiB`, `512MiB`, `100MB`, `65536`. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigError(`Invalid ${flag}: "${text}" is not a size (try 1GiB, 512MiB or 100MB)`);
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0) throw new ConfigError(`Invalid ${flag}: "${text}" must be more than 0 bytes (try 1GiB)`);
  return n;
}

function duration(text: string, flag: string): number {
  let ms: number;
  try { ms = parseDuration(text); } catch (e) {
    throw new ConfigError(`Invalid ${flag}: ${(e as Error).message}`);
  }
  if (ms <= 0) throw new ConfigError(`Invalid ${flag}: "${text}" must be positive (try 30s)`);
  return ms;
}

/** A positive whole number flag, or undefined when not given. */
function count(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new ConfigError(`Invalid ${flag}: "${text}" is not a whole number from 1 (e.g. ${flag} 100)`);
  return Number(text);
}

function retention(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  try { return parseRetention(text, flag, parseDuration); } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

export function parseServerArgs(argv: string[], cwd: string) {
  let values;
  ({ values } = parseCommandArgs('server', {
    args: argv,
    options: {
      data: { type: 'string' },
      listen: { type: 'string', default: DEFAULT_LISTEN },
      url: { type: 'string' },
      'worker-lease': { type: 'string', default: '30s' },
      'worker-grace': { type: 'string', default: '2m' },
      'max-workspace-size': { type: 'string', default: '1GiB' },
      dist: { type: 'string' },
      'max-connections': { type: 'string' },
      'max-pending-per-address': { type: 'string' },
      'handshake-timeout': { type: 'string' },
      'headers-timeout': { type: 'string' },
      'body-timeout': { type: 'string' },
      'max-run-log': { type: 'string' },
      'max-uploads-per-worker': { type: 'string' },
      'max-uploads': { type: 'string' },
      'min-free-disk': { type: 'string' },
      'metrics-listen': { type: 'string' },
      'retain-runs': { type: 'string' },
      'retain-offline-workers': { type: 'string' },
      debug: { type: 'boolean', default: false },
      'rotate-admin-token': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  }));
  if (values.help) return { help: true as const };
  if (!values.data) throw new ConfigError('Missing --data: the server needs a data directory (e.g. --data /var/lib/launcher)');
  const listen = parseListen(values.listen!);
  let url: string | undefined;
  if (values.url !== undefined) {
    let u: URL | undefined;
    try { u = new URL(values.url); } catch { u = undefined; }
    if (!u || u.protocol !== 'https:' || u.pathname !== '/' || u.search || u.hash) {
      throw new ConfigError(`Invalid --url: "${values.url}" (expected https://NAME:PORT, e.g. https://ci.example.com:8443)`);
    }
    url = u.origin;
  }
  return {
    help: false as const,
    dataDir: resolve(cwd, values.data),
    listenHost: listen.host,
    listenPort: listen.port,
    url,
    leaseMs: duration(values['worker-lease']!, '--worker-lease'),
    graceMs: duration(values['worker-grace']!, '--worker-grace'),
    maxWorkspaceBytes: parseSize(values['max-workspace-size']!, '--max-workspace-size'),
    distDir: values.dist === undefined ? undefined : resolve(cwd, values.dist),
    limits: {
      maxConnections: count(values['max-connections'], '--max-connections'),
      maxPendingPerAddress: count(values['max-pending-per-address'], '--max-pending-per-address'),
      handshakeTimeoutMs: values['handshake-timeout'] === undefined ? undefined : duration(values['handshake-timeout'], '--handshake-timeout'),
      headersTimeoutMs: values['headers-timeout'] === undefined ? undefined : duration(values['headers-timeout'], '--headers-timeout'),
      bodyTimeoutMs: values['body-timeout'] === undefined ? undefined : duration(values['body-timeout'], '--body-timeout'),
    },
    quotas: {
      maxRunLogBytes: values['max-run-log'] === undefined ? undefined : parseSize(values['max-run-log'], '--max-run-log'),
      maxUploadsPerWorker: count(values['max-uploads-per-worker'], '--max-uploads-per-worker'),
      maxUploads: count(values['max-uploads'], '--max-uploads'),
      minFreeDiskBytes: values['min-free-disk'] === undefined ? undefined : parseSize(values['min-free-disk'], '--min-free-disk'),
    },
    retainRunsMs: retention(values['retain-runs'], '--retain-runs'),
    retainOfflineWorkersMs: retention(values['retain-offline-workers'], '--retain-offline-workers'),
    metricsListen: values['metrics-listen'] === undefined ? undefined : parseListen(values['metrics-listen'], '--metrics-listen'),
    debug: values.debug!,
    rotateAdminToken: values['rotate-admin-token']!,
  };
}

export async function run(io: CommandIo): Promise<number> {
  if (io.argv[0] === 'restore') return (await import('./restore.ts')).run({ ...io, argv: io.argv.slice(1) });
  const args = parseServerArgs(io.argv, io.cwd);
  if (args.help) { io.stdout.write(USAGE); return 0; }
  if (args.rotateAdminToken) {
    const token = rotateAdminToken(args.dataDir);
    io.stdout.write(`New admin token (also saved in ${join(args.dataDir, 'admin.token')}, mode 0600; the old one no longer works):\n${token}\n`);
    return 0;
  }
  const log = createServerLogger({ stream: io.stderr, debug: args.debug || io.env.SPACELIFT_DEBUG === 'true' || io.env.SPACELIFT_DEBUG === '1' });
  const server = await startServer({ ...args, log, stdout: io.stdout });
  // The server owns its process signals (the entry installs none).
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  log.info('Server stopping');
  await server.close();
  log.info('Server stopped');
  return 0;
}
