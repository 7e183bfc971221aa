// Where the admin client connects and with what: flags first, then the server's
// data directory (`--data DIR`, for admins on the server host), then the
// LAUNCHER_* environment. Pure apart from the injected file reader, so tests
// pass plain objects.
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { Connection } from './client.ts';

export interface ConnectionFlags {
  server?: string;
  adminToken?: string;
  ca?: string;
  data?: string;
}

export type ReadText = (path: string) => string | undefined;

/**
 * Files the server writes into its data directory for local admin use
 * (docs/server.md). The first existing candidate wins, so an older or newer
 * layout still works.
 */
export const DATA_DIR_FILES = {
  token: ['admin.token'],
  ca: ['ca.crt', 'ca.pem'],
  url: ['server.url', 'url'],
} as const;

/** `launcher server`'s default --listen (lib/cli/server.ts DEFAULT_LISTEN) as a URL. */
export const DATA_DIR_DEFAULT_SERVER = 'https://127.0.0.1:8443';

function firstFile(read: ReadText, dir: string, names: readonly string[]): { path: string; text: string } | undefined {
  for (const n of names) {
    const path = join(dir, n);
    const text = read(path);
    if (text !== undefined) return { path, text };
  }
  return undefined;
}

export function parseServerUrl(value: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ConfigError(`Cannot use ${source}: "${value}" is not a URL; expected https://HOST:PORT, e.g. https://127.0.0.1:8443`);
  }
  if (url.protocol !== 'https:') {
    throw new ConfigError(`Cannot use ${source}: "${value}" is not https; the admin API is served over TLS only (https://HOST:PORT)`);
  }
  return url;
}

/** The CA value is a file path, or the PEM itself (handy in CI secrets). */
function readCa(value: string, source: string, read: ReadText): string {
  if (value.includes('-----BEGIN CERTIFICATE-----')) return value;
  const text = read(value);
  if (text === undefined) throw new ConfigError(`Cannot read ${source}: no file at "${value}"; expected the server's CA certificate (PEM)`);
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`Cannot use ${source}: "${value}" holds no PEM certificate; expected the server's CA certificate`);
  }
  return text;
}

export function resolveConnection(flags: ConnectionFlags, env: Record<string, string | undefined>, read: ReadText): Connection {
  let server: URL | undefined;
  let token: string | undefined;
  let ca: string | undefined;

  if (flags.server !== undefined) server = parseServerUrl(flags.server, '--server');
  if (flags.adminToken !== undefined) token = flags.adminToken.trim();
  if (flags.ca !== undefined) ca = readCa(flags.ca, '--ca', read);

  if (flags.data !== undefined) {
    const dir = flags.data;
    if (token === undefined) {
      const f = firstFile(read, dir, DATA_DIR_FILES.token);
      if (f === undefined) throw new ConfigError(`Cannot use --data ${dir}: no ${DATA_DIR_FILES.token[0]} in it; expected the data directory of a server that has started once`);
      token = f.text.trim();
    }
    if (ca === undefined) {
      const f = firstFile(read, dir, DATA_DIR_FILES.ca);
      if (f === undefined) throw new ConfigError(`Cannot use --data ${dir}: no CA certificate (${DATA_DIR_FILES.ca.join(', ')}) in it`);
      ca = f.text;
    }
    if (server === undefined) {
      const f = firstFile(read, dir, DATA_DIR_FILES.url);
      // Without a URL file, the server's default listen address on this host
      // (its certificate always names 127.0.0.1).
      server = f === undefined ? new URL(DATA_DIR_DEFAULT_SERVER) : parseServerUrl(f.text, f.path);
    }
  }

  if (server === undefined && env.LAUNCHER_SERVER) server = parseServerUrl(env.LAUNCHER_SERVER, 'LAUNCHER_SERVER');
  if (token === undefined && env.LAUNCHER_ADMIN_TOKEN) token = env.LAUNCHER_ADMIN_TOKEN.trim();
  if (ca === undefined && env.LAUNCHER_CA) ca = readCa(env.LAUNCHER_CA, 'LAUNCHER_CA', read);

  if (server === undefined) {
    throw new ConfigError('Missing the server: pass --server https://HOST:PORT, set LAUNCHER_SERVER, or use --data DIR on the server host');
  }
  if (token === undefined || token === '') {
    throw new ConfigError('Missing the admin token: pass --admin-token TOKEN, set LAUNCHER_ADMIN_TOKEN, or use --data DIR on the server host');
  }
  return { server, token, ca };
}
