// Registry credentials for pulls: the `auths` section of a Docker config.json
// (SPACELIFT_DOCKER_CONFIG_DIR/config.json), turned into the engine's
// X-Registry-Auth header for the registry an image reference names. Parsing is
// pure; only loadDockerConfig touches the disk. Credential helpers
// (credsStore/credHelpers) run external programs and are not supported.
import { readFile } from 'node:fs/promises';
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';

export interface RegistryCredential {
  username?: string;
  password?: string;
  identitytoken?: string;
}

/** Registry host (normalised) → credential. */
export type RegistryAuths = Map<string, RegistryCredential>;

const DOCKER_HUB = 'docker.io';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** `https://index.docker.io/v1/` → `docker.io`; `https://127.0.0.1:5000/v2/` → `127.0.0.1:5000`. */
export function normaliseRegistry(key: string): string {
  let h = key.trim().toLowerCase().replace(/^[a-z]+:\/\//, '');
  h = h.replace(/\/.*$/, '');
  return HUB_ALIASES.has(h) ? DOCKER_HUB : h;
}

/** The registry an image reference pulls from, per the engine's own rule. */
export function imageRegistry(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = image.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return normaliseRegistry(first);
  return DOCKER_HUB;
}

/** Parses config.json text; `source` names the file in errors. Never echoes credentials. */
export function parseDockerConfig(text: string, source: string): RegistryAuths {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // Only the position: V8's message can quote the text around the fault,
    // which in this file is a password or an auth string.
    const where = /at position \d+(?: \(line \d+ column \d+\))?/.exec((e as Error).message)?.[0];
    throw new ConfigError(`Cannot parse ${source}: not valid JSON${where ? ` (${where})` : ''}`, { code: 'DOCKER_CONFIG_INVALID' });
  }
  const auths = (doc as { auths?: unknown })?.auths ?? {};
  if (typeof auths !== 'object' || auths === null) {
    throw new ConfigError(`Cannot use ${source}: "auths" must be an object of registry → {auth} or {username, password}`, { code: 'DOCKER_CONFIG_INVALID' });
  }
  const out: RegistryAuths = new Map();
  for (const [registry, entry] of Object.entries(auths as Record<string, unknown>)) {
    const e = (entry ?? {}) as Record<string, unknown>;
    const cred: RegistryCredential = {};
    if (typeof e.auth === 'string' && e.auth !== '') {
      const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) {
        throw new ConfigError(`Cannot use ${source}: the "auth" of registry "${registry}" is not base64 of "username:password"`, { code: 'DOCKER_CONFIG_INVALID' });
      }
      cred.username = decoded.slice(0, colon);
      cred.password = decoded.slice(colon + 1);
    }
    if (typeof e.username === 'string') cred.username = e.username;
    if (typeof e.password === 'string') cred.password = e.password;
    if (typeof e.identitytoken === 'string' && e.identitytoken !== '') cred.identitytoken = e.identitytoken;
    if (cred.username === undefined && cred.identitytoken === undefined) continue; // e.g. an entry kept for a credsStore
    out.set(normaliseRegistry(registry), cred);
  }
  return out;
}

/** Reads DIR/config.json; a missing or unreadable file is a configuration error. */
export async function loadDockerConfig(dir: string): Promise<RegistryAuths> {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'error';
    throw new ConfigError(`Cannot read SPACELIFT_DOCKER_CONFIG_DIR config ${file}: ${code} (expected a Docker config.json with "auths")`, { code: 'DOCKER_CONFIG_INVALID' });
  }
  return parseDockerConfig(text, file);
}

/** X-Registry-Auth value for pulling `image`, or undefined when no credential matches. */
export function registryAuthHeader(auths: RegistryAuths | undefined, image: string): string | undefined {
  const registry = imageRegistry(image);
  const cred = auths?.get(registry);
  if (!cred) return undefined;
  const serveraddress = registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
  const body = cred.identitytoken !== undefined
    ? { identitytoken: cred.identitytoken, serveraddress }
    : { username: cred.username ?? '', password: cred.password ?? '', serveraddress };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}
