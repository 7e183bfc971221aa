// The launcher's configuration: every variable of the launcher environment,
// parsed and validated by one pure function of the environment. Start-up
// calls it once; a bad value becomes a ConfigError (exit code 2) that names
// the variable, the value (never for secrets) and an accepted example.
import process from 'node:process';
import { ConfigError } from './errors.ts';
import { DurationError, parseDuration } from './duration.ts';
import { DEFAULT_DOCKER_HOST, parseDockerHost } from './docker/host.ts';
import type { PullPolicy } from './executor.ts';

export interface Mount {
  hostPath: string;
  containerPath: string;
}

export interface WhitelistEntry {
  name: string;
  /** Pass only to read-only (proposed) or only to write (tracked) runs. */
  only?: 'ro' | 'wo';
}


export interface LauncherConfig {
  /** Raw SPACELIFT_TOKEN; decoded elsewhere. */
  token?: string;
  /** Raw SPACELIFT_POOL_PRIVATE_KEY; decoded elsewhere. */
  poolPrivateKey?: string;
  dockerConfigDir?: string;
  maskEnvs: string[];
  workerNetwork: string;
  extraMounts: Mount[];
  roExtraMounts: Mount[];
  woExtraMounts: Mount[];
  runtime?: string;
  whitelistEnvs: WhitelistEntry[];
  logsTimeoutMs: number;
  runTimeoutMs: number;
  metadata: Record<string, string>;
  defaultRunnerImage: string;
  runLogsOnStdout: boolean;
  debug: boolean;
  stateDir: string;
  dockerHost: string;
  pullPolicy: PullPolicy;
  metricsListen?: { host: string; port: number };
}

export interface KnownVariable {
  name: string;
  default: string;
  meaning: string;
  /** Its value never appears in messages. */
  secret?: boolean;
}

export const DEFAULT_RUNNER_IMAGE = 'public.ecr.aws/spacelift/runner-terraform:latest';
const METADATA_PREFIX = 'SPACELIFT_METADATA_';
const MISSPELLED_RUNTIME = 'SPCELIFT_WORKER_RUNTIME';

/** Every variable the launcher reads, in the order the documentation lists them. */
export const LAUNCHER_VARIABLES: readonly KnownVariable[] = [
  { name: 'SPACELIFT_TOKEN', default: 'required', meaning: 'The worker pool token: base64 of a JSON document, one line, as the server printed it when the pool was created or reset.', secret: true },
  { name: 'SPACELIFT_POOL_PRIVATE_KEY', default: 'required', meaning: 'The pool private key: base64 of the whole PEM file (raw PEM and line-wrapped base64 are accepted too).', secret: true },
  { name: 'SPACELIFT_DOCKER_CONFIG_DIR', default: 'unset', meaning: 'A directory holding a Docker `config.json`; its `auths` are used to pull private runner images.' },
  { name: 'SPACELIFT_MASK_ENVS', default: 'none', meaning: 'Comma list of variable names whose values must never appear in run logs (usually also whitelisted).' },
  { name: 'SPACELIFT_WORKER_NETWORK', default: 'bridge', meaning: 'Docker network (id or name) that run containers join.' },
  { name: 'SPACELIFT_WORKER_EXTRA_MOUNTS', default: 'none', meaning: 'Comma list of `/host/path:/container/path` bind mounts added to every run.' },
  { name: 'SPACELIFT_WORKER_RO_EXTRA_MOUNTS', default: 'none', meaning: 'The same, only for read-only (proposed) runs.' },
  { name: 'SPACELIFT_WORKER_WO_EXTRA_MOUNTS', default: 'none', meaning: 'The same, only for write (tracked) runs.' },
  { name: 'SPACELIFT_WORKER_RUNTIME', default: 'engine default', meaning: 'Container runtime for run containers, e.g. `runsc`; the engine judges the name. The misspelling `SPCELIFT_WORKER_RUNTIME` is accepted with a warning.' },
  { name: 'SPACELIFT_WHITELIST_ENVS', default: 'none', meaning: 'Comma list of the launcher\'s own variables passed into run containers; prefix a name with `ro_` or `wo_` to pass it only to read-only or only to write runs.' },
  { name: 'SPACELIFT_LAUNCHER_LOGS_TIMEOUT', default: '7m', meaning: 'Stop a run that printed nothing for this long (Go duration: `300s`, `10m`, `1h30m`).' },
  { name: 'SPACELIFT_LAUNCHER_RUN_TIMEOUT', default: '70m', meaning: 'Stop a run that takes longer than this (Go duration).' },
  { name: 'SPACELIFT_METADATA_<key>', default: 'none', meaning: 'Tags sent when the worker registers; `<key>` keeps its case, e.g. `SPACELIFT_METADATA_instance_id`.' },
  { name: 'SPACELIFT_DEFAULT_RUNNER_IMAGE', default: DEFAULT_RUNNER_IMAGE, meaning: 'Image for runs whose stack names none.' },
  { name: 'SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED', default: 'false', meaning: 'Also print run logs (masked) on the launcher\'s standard output as structured lines.' },
  { name: 'SPACELIFT_DEBUG', default: 'false', meaning: 'Verbose launcher logs.' },
  { name: 'SPACELIFT_LAUNCHER_STATE_DIR', default: '`/var/lib/spacelift-launcher` for root, else `$XDG_STATE_HOME/spacelift-launcher`, else `$HOME/.local/state/spacelift-launcher`', meaning: 'Where a launcher keeps its worker identity, the run in flight and spilled logs; one running launcher per directory.' },
  { name: 'SPACELIFT_LAUNCHER_PULL_POLICY', default: 'if-not-present', meaning: 'When to pull a run\'s image: `if-not-present` (only when missing) or `always`. An addition of this launcher.' },
  { name: 'SPACELIFT_LAUNCHER_METRICS_ADDR', default: 'off', meaning: 'Serve metrics over HTTP on `host:port` (`:9100` means 127.0.0.1:9100). An addition of this launcher; loopback unless a host is given.' },
  { name: 'DOCKER_HOST', default: DEFAULT_DOCKER_HOST, meaning: 'Docker Engine endpoint; only unix sockets (`unix:///path` or `/path`).' },
];

const KNOWN = new Set(LAUNCHER_VARIABLES.map((v) => v.name).filter((n) => !n.includes('<')));

export interface ParseOptions {
  /** Which secrets must be present (`launcher exec` needs neither). Default: both. */
  require?: { token: boolean; key: boolean };
  /** The user id, to pick the state directory default. Default: this process's. */
  uid?: number;
}

const BOOLEANS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false };
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses and validates the launcher environment. Throws ConfigError on the first bad value. */
export function parseLauncherConfig(
  env: Record<string, string | undefined>,
  opts: ParseOptions = {},
): { config: LauncherConfig; warnings: string[] } {
  const warnings: string[] = [];
  const require = opts.require ?? { token: true, key: true };
  // Unset and empty mean the same: shells and unit files often export "".
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v;
  };

  const token = get('SPACELIFT_TOKEN')?.trim();
  if (require.token && token === undefined) {
    throw new ConfigError('Missing SPACELIFT_TOKEN: set it to the pool token the server printed when the pool was created (one line of base64)', { code: 'CONFIG_MISSING' });
  }
  const poolPrivateKey = get('SPACELIFT_POOL_PRIVATE_KEY');
  if (require.key && poolPrivateKey === undefined) {
    throw new ConfigError('Missing SPACELIFT_POOL_PRIVATE_KEY: set it to the base64 of the pool\'s PEM private key, e.g. $(base64 -w0 spacelift.key)', { code: 'CONFIG_MISSING' });
  }

  const whitelistEnvs = parseNameList(env, 'SPACELIFT_WHITELIST_ENVS', 'AWS_REGION,ro_TF_VAR_readonly,wo_TF_VAR_write').map((raw): WhitelistEntry => {
    const m = /^(ro|wo)_(.+)$/.exec(raw);
    return m ? { name: m[2], only: m[1] as 'ro' | 'wo' } : { name: raw };
  });
  for (const w of whitelistEnvs) {
    if (w.name === 'SPACELIFT_POOL_PRIVATE_KEY' || w.name === 'SPACELIFT_TOKEN') {
      throw new ConfigError(`Cannot pass ${w.name} to runs: SPACELIFT_WHITELIST_ENVS must not list the pool's credentials (remove it)`);
    }
  }
  // Users often copy whitelist entries here, prefix and all: `ro_X` means X
  // when only X is set.
  const maskEnvs = [...new Set(parseNameList(env, 'SPACELIFT_MASK_ENVS', 'TF_VAR_db_password,GITHUB_TOKEN').map((n) => {
    const m = /^(?:ro|wo)_(.+)$/.exec(n);
    return m && env[n] === undefined && env[m[1]] !== undefined ? m[1] : n;
  }))];
  const whitelisted = new Set(whitelistEnvs.map((w) => w.name));
  for (const name of maskEnvs) {
    if (env[name] === undefined) warnings.push(`SPACELIFT_MASK_ENVS names ${name}, which is not set`);
    else if (!whitelisted.has(name)) warnings.push(`SPACELIFT_MASK_ENVS names ${name}, which SPACELIFT_WHITELIST_ENVS does not pass to runs; it is masked anyway`);
  }

  const workerNetwork = get('SPACELIFT_WORKER_NETWORK')?.trim() ?? 'bridge';

  let runtime = get('SPACELIFT_WORKER_RUNTIME')?.trim();
  const misspelled = get(MISSPELLED_RUNTIME)?.trim();
  if (misspelled !== undefined) {
    if (runtime === undefined) {
      runtime = misspelled;
      warnings.push(`${MISSPELLED_RUNTIME} is a misspelling: rename it to SPACELIFT_WORKER_RUNTIME (its value is used for now)`);
    } else if (runtime !== misspelled) {
      warnings.push(`${MISSPELLED_RUNTIME} is a misspelling and is ignored: SPACELIFT_WORKER_RUNTIME is set too and wins`);
    } else {
      warnings.push(`${MISSPELLED_RUNTIME} is a misspelling: remove it, SPACELIFT_WORKER_RUNTIME is set to the same value`);
    }
  }

  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(METADATA_PREFIX) || value === undefined) continue;
    const key = name.slice(METADATA_PREFIX.length);
    if (key === '') warnings.push(`${METADATA_PREFIX} has no key after the prefix and is ignored (try ${METADATA_PREFIX}instance_id)`);
    else metadata[key] = value;
  }

  const defaultRunnerImage = get('SPACELIFT_DEFAULT_RUNNER_IMAGE')?.trim() ?? DEFAULT_RUNNER_IMAGE;
  if (/\s/.test(defaultRunnerImage)) {
    throw new ConfigError(`Cannot parse SPACELIFT_DEFAULT_RUNNER_IMAGE: ${JSON.stringify(defaultRunnerImage)} contains spaces (try ${DEFAULT_RUNNER_IMAGE})`);
  }

  const config: LauncherConfig = {
    token,
    poolPrivateKey,
    dockerConfigDir: get('SPACELIFT_DOCKER_CONFIG_DIR')?.trim(),
    maskEnvs,
    workerNetwork,
    extraMounts: parseMounts(env, 'SPACELIFT_WORKER_EXTRA_MOUNTS'),
    roExtraMounts: parseMounts(env, 'SPACELIFT_WORKER_RO_EXTRA_MOUNTS'),
    woExtraMounts: parseMounts(env, 'SPACELIFT_WORKER_WO_EXTRA_MOUNTS'),
    runtime,
    whitelistEnvs,
    logsTimeoutMs: parseTimeout(env, 'SPACELIFT_LAUNCHER_LOGS_TIMEOUT', '7m'),
    runTimeoutMs: parseTimeout(env, 'SPACELIFT_LAUNCHER_RUN_TIMEOUT', '70m'),
    metadata,
    defaultRunnerImage,
    runLogsOnStdout: parseBoolean(env, 'SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED'),
    debug: parseBoolean(env, 'SPACELIFT_DEBUG'),
    stateDir: parseStateDir(env, opts.uid ?? process.getuid?.() ?? -1),
    dockerHost: parseDockerHost(env.DOCKER_HOST).host,
    pullPolicy: parsePullPolicy(env),
    metricsListen: parseListen(env, 'SPACELIFT_LAUNCHER_METRICS_ADDR', warnings),
  };
  if (config.dockerConfigDir === undefined) delete config.dockerConfigDir;
  if (config.runtime === undefined) delete config.runtime;
  if (config.metricsListen === undefined) delete config.metricsListen;
  if (config.token === undefined) delete config.token;
  if (config.poolPrivateKey === undefined) delete config.poolPrivateKey;

  // Names the user passes into runs are theirs, whatever they look like.
  const ignore = new Set([...whitelisted, ...maskEnvs]);
  for (const name of Object.keys(env)) {
    if (!name.startsWith('SPACELIFT_') || KNOWN.has(name) || name.startsWith(METADATA_PREFIX) || ignore.has(name)) continue;
    warnings.push(unknownVariableWarning(name));
  }
  return { config, warnings };
}

/** The host directories a run gets: the ones for every run, then the read-only or write run's own. */
export function phaseMounts(config: LauncherConfig, readOnly: boolean): Mount[] {
  return [...config.extraMounts, ...(readOnly ? config.roExtraMounts : config.woExtraMounts)];
}

/** The variables a run receives from the launcher's own environment. */
export function whitelistedEnv(config: LauncherConfig, env: Record<string, string | undefined>, readOnly: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of config.whitelistEnvs) {
    if (w.only === 'ro' && !readOnly) continue;
    if (w.only === 'wo' && readOnly) continue;
    const v = env[w.name];
    if (v !== undefined) out[w.name] = v;
  }
  return out;
}

/** The values to mask in run logs: every SPACELIFT_MASK_ENVS variable that is set. */
export function maskedValues(config: LauncherConfig, env: Record<string, string | undefined>): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const name of config.maskEnvs) {
    const value = env[name];
    if (value !== undefined) out.push({ name, value });
  }
  return out;
}

/** A Markdown table of LAUNCHER_VARIABLES, as docs/configuration.md embeds it. */
export function variablesTable(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = LAUNCHER_VARIABLES.map((v) => `| \`${v.name}\` | ${cell(v.default === 'required' || v.default === 'none' || v.default === 'unset' || v.default === 'off' || v.default.includes('`') || v.default.includes(' ') ? v.default : `\`${v.default}\``)} | ${cell(v.meaning)} |`);
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

// ---------------------------------------------------------------------------

function bad(name: string, value: string, problem: string, example: string): ConfigError {
  return new ConfigError(`Cannot parse ${name}: ${JSON.stringify(value)} ${problem} (try ${example})`);
}

function parseNameList(env: Record<string, string | undefined>, name: string, example: string): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return [];
  const names = raw.split(',').map((s) => s.trim());
  for (const n of names) {
    if (n === '') throw bad(name, raw, 'has an empty name in its comma list', example);
    if (!ENV_NAME.test(n)) throw bad(name, raw, `has ${JSON.stringify(n)}, which is not a variable name`, example);
  }
  return [...new Set(names)];
}

function parseMounts(env: Record<string, string | undefined>, name: string): Mount[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return [];
  const example = '/host/path:/container/path';
  return raw.split(',').map((entry) => {
    const e = entry.trim();
    if (e === '') throw bad(name, raw, 'has an empty mount in its comma list', example);
    const parts = e.split(':');
    if (parts.length !== 2) throw bad(name, e, parts.length < 2 ? 'has no ":" between host and container path' : 'has more than one ":" (mount options are not supported)', example);
    const [hostPath, containerPath] = parts;
    if (!hostPath.startsWith('/')) throw bad(name, e, 'has a relative host path', example);
    if (!containerPath.startsWith('/')) throw bad(name, e, 'has a relative container path', example);
    return { hostPath, containerPath };
  });
}

function parseTimeout(env: Record<string, string | undefined>, name: string, example: string): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return parseDuration(example);
  let ms: number;
  try {
    ms = parseDuration(raw.trim());
  } catch (e) {
    if (e instanceof DurationError) throw bad(name, raw, e.problem, e.problem === 'has no unit' ? `${raw.trim()}m` : example);
    throw e;
  }
  if (ms <= 0) throw bad(name, raw, 'is not a positive duration', example);
  return ms;
}

function parseBoolean(env: Record<string, string | undefined>, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return false;
  const v = BOOLEANS[raw.trim().toLowerCase()];
  if (v === undefined) throw bad(name, raw, 'is not a boolean (true/false, 1/0, yes/no)', 'true');
  return v;
}

function parseStateDir(env: Record<string, string | undefined>, uid: number): string {
  const raw = env.SPACELIFT_LAUNCHER_STATE_DIR?.trim();
  if (raw !== undefined && raw !== '') {
    if (!raw.startsWith('/')) throw bad('SPACELIFT_LAUNCHER_STATE_DIR', raw, 'is not an absolute path', '/var/lib/spacelift-launcher');
    return raw.length > 1 ? raw.replace(/\/+$/, '') : raw;
  }
  return defaultStateDir(env, uid);
}

/** The state directory when SPACELIFT_LAUNCHER_STATE_DIR is unset: /var/lib for root, else XDG_STATE_HOME, else HOME. */
export function defaultStateDir(env: Record<string, string | undefined>, uid: number): string {
  if (uid === 0) return '/var/lib/spacelift-launcher';
  const xdg = env.XDG_STATE_HOME?.trim();
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg !== undefined && xdg.startsWith('/')) return `${xdg.replace(/\/+$/, '')}/spacelift-launcher`;
  const home = env.HOME?.trim();
  if (home !== undefined && home.startsWith('/')) return `${home.replace(/\/+$/, '')}/.local/state/spacelift-launcher`;
  throw new ConfigError('Cannot choose a state directory: HOME is not set; set SPACELIFT_LAUNCHER_STATE_DIR (try /var/lib/spacelift-launcher)');
}

function parsePullPolicy(env: Record<string, string | undefined>): PullPolicy {
  const raw = env.SPACELIFT_LAUNCHER_PULL_POLICY;
  if (raw === undefined || raw.trim() === '') return 'if-not-present';
  const v = raw.trim().toLowerCase();
  if (v === 'if-not-present' || v === 'always') return v;
  throw bad('SPACELIFT_LAUNCHER_PULL_POLICY', raw, 'is not a pull policy (if-not-present or always)', 'always');
}

function parseListen(env: Record<string, string | undefined>, name: string, warnings: string[]): { host: string; port: number } | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  const example = '127.0.0.1:9100';
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw);
  if (m === null) throw bad(name, raw, 'is not host:port', example);
  const host = m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]);
  const port = Number(m[3]);
  if (port > 65535) throw bad(name, raw, 'has a port above 65535', example);
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (!loopback) warnings.push(`${name} listens on ${host}, beyond this host: anyone who reaches port ${port} can read the metrics`);
  return { host, port };
}

/** The warning for an unknown SPACELIFT_ name, suggesting the nearest known one. */
export function unknownVariableWarning(name: string): string {
  let best = '';
  let bestDistance = Infinity;
  for (const known of KNOWN) {
    const d = distance(name, known);
    if (d < bestDistance) {
      bestDistance = d;
      best = known;
    }
  }
  // A known name that merely lost a word: SPACELIFT_LOGS_TIMEOUT.
  const tail = name.slice('SPACELIFT_'.length).toUpperCase();
  for (const known of KNOWN) {
    if (tail.length >= 5 && known.endsWith(`_${tail}`)) return `Unknown variable ${name}: did you mean ${known}?`;
  }
  if (distance(name, METADATA_PREFIX.slice(0, -1)) <= 2) return `Unknown variable ${name}: did you mean ${METADATA_PREFIX}<key>, e.g. ${METADATA_PREFIX}instance_id?`;
  // A misspelt metadata prefix: compare the part that would be the prefix.
  for (let k = METADATA_PREFIX.length - 2; k <= METADATA_PREFIX.length + 2; k++) {
    const d = distance(name.slice(0, k), METADATA_PREFIX);
    if (d < bestDistance && name.length > k + 1) {
      bestDistance = d;
      best = METADATA_PREFIX + name.slice(k);
    }
  }
  if (bestDistance <= Math.max(2, Math.floor(best.length / 6))) return `Unknown variable ${name}: did you mean ${best}?`;
  return `Unknown variable ${name}: the launcher does not read it (see docs/configuration.md)`;
}

// Levenshtein distance, case-insensitive so SPACELIFT_Debug finds SPACELIFT_DEBUG.
function distance(a: string, b: string): number {
  a = a.toUpperCase();
  b = b.toUpperCase();
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
