// `launcher exec`: one phase on this host with the full launcher
// configuration (mounts, whitelist, network, runtime, timeouts, pull policy,
// registry credentials, masks) and no server: the quickest way to try a host
// before it joins a pool. Wires config → masker → executor; the executor
// itself knows nothing about masks or configuration.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { ConfigError } from '../errors.ts';
import { keyValues } from '../key-values.ts';
import { maskedValues, parseLauncherConfig, phaseMounts, whitelistedEnv } from '../config.ts';
import { Masker } from '../mask.ts';
import { DockerClient } from '../docker/client.ts';
import { loadDockerConfig, registryAuthHeader } from '../docker/auth.ts';
import { runPhase, type PhaseResult } from '../executor.ts';
import { extractToDirectory, packDirectory } from '../workspace.ts';
import type { StdStream } from '../docker/stream.ts';

const USAGE = `Usage: launcher exec [OPTIONS] -- SCRIPT

Runs SCRIPT with sh -c in a fresh container, as a worker would run a phase,
with the launcher configuration taken from the environment (SPACELIFT_*).

Options:
  --image IMG       runner image (default: SPACELIFT_DEFAULT_RUNNER_IMAGE)
  --workspace DIR   copy DIR into the container's /workspace before start
  --out DIR         write /workspace back into DIR after the script exits
  --env K=V         set a variable for the script (repeatable)
  --secret K=V      set a variable and mask its value in the output (repeatable)
  --read-only       run as a read-only (proposed) run: ro_ whitelist entries and
                    SPACELIFT_WORKER_RO_EXTRA_MOUNTS instead of the wo_ ones

Exit code: the script's; 124 when the logs or run timeout stopped it;
2 for a configuration or usage error; 1 when Docker failed.
`;

/** Exit code for a phase stopped by a launcher timeout, as timeout(1) uses. */
export const TIMEOUT_EXIT_CODE = 124;

function parse(argv: string[]) {
  return parseCommandArgs('exec', {
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      image: { type: 'string' },
      workspace: { type: 'string' },
      out: { type: 'string' },
      env: { type: 'string', multiple: true },
      secret: { type: 'string', multiple: true },
      'read-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

export async function run(io: CommandIo): Promise<number> {
  const { values: opts, positionals } = parse(io.argv);
  if (opts.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const script = positionals.join(' ');
  if (script.trim() === '') throw new ConfigError('Missing SCRIPT: give the script after --, e.g. launcher exec -- "terraform plan"');

  const { config, warnings } = parseLauncherConfig(io.env, { require: { token: false, key: false } });
  const say = (m: string) => io.stderr.write(`launcher exec: ${m}\n`);
  for (const w of warnings) say(`warning: ${w}`);

  const phaseEnv = keyValues(opts.env ?? [], 'env', { envNames: true });
  const secretEnv = keyValues(opts.secret ?? [], 'secret', { envNames: true, secret: true });
  const readOnly = opts['read-only'] === true;
  const image = opts.image ?? config.defaultRunnerImage;
  const workspace = opts.workspace === undefined ? undefined : resolve(io.cwd, opts.workspace);
  if (workspace !== undefined && !statSync(workspace, { throwIfNoEntry: false })?.isDirectory()) {
    throw new ConfigError(`Cannot use --workspace ${opts.workspace}: not a directory (give an existing directory to copy into /workspace)`);
  }
  const outDir = opts.out === undefined ? undefined : resolve(io.cwd, opts.out);
  const auths = config.dockerConfigDir ? await loadDockerConfig(config.dockerConfigDir) : undefined;
  const registryAuth = registryAuthHeader(auths, image);

  const secrets = [...maskedValues(config, io.env), ...Object.entries(secretEnv).map(([name, value]) => ({ name, value }))];
  const onWarning = (m: string) => say(`warning: ${m}`);
  // One masker per output stream keeps stdout and stderr apart; a value an
  // `::add-mask::` line adds on one stream is masked on the other too (the
  // masker's own onAdd hook: it alone reads directives).
  const maskers: Record<StdStream, Masker> = {
    stdout: new Masker({ secrets, onWarning, onAdd: (v) => maskers.stderr.add(v, 'a value added on stdout') }),
    stderr: new Masker({ secrets, onWarning: () => {}, onAdd: (v) => maskers.stdout.add(v, 'a value added on stderr') }), // same secrets: warn once
  };
  const sinks = { stdout: io.stdout, stderr: io.stderr };

  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const docker = new DockerClient({ host: config.dockerHost });
  let result: PhaseResult;
  try {
    result = await runPhase({
      runId: `exec-${randomBytes(4).toString('hex')}`,
      phase: 'exec',
      workerId: `exec-${process.pid}`,
      image,
      script,
      env: { ...whitelistedEnv(config, io.env, readOnly), ...phaseEnv, ...secretEnv },
      readOnly,
      mounts: phaseMounts(config, readOnly),
      network: config.workerNetwork,
      ...(config.runtime ? { runtime: config.runtime } : {}),
      pullPolicy: config.pullPolicy,
      ...(registryAuth ? { registryAuth } : {}),
      logsTimeoutMs: config.logsTimeoutMs,
      runTimeoutMs: config.runTimeoutMs,
      signal: ac.signal,
      onPullProgress: (line) => say(`pull: ${line}`),
      onOutput: (chunk, stream) => {
        const out = maskers[stream].write(chunk);
        if (out.length > 0) sinks[stream].write(out);
      },
      ...(workspace ? { workspaceIn: () => packDirectory(workspace) } : {}),
      ...(outDir ? { workspaceOut: (tar) => extractToDirectory(tar, outDir) } : {}),
    }, { docker, log: (m) => { if (config.debug) say(m); } });
  } finally {
    for (const s of ['stdout', 'stderr'] as const) {
      const rest = maskers[s].end();
      if (rest.length > 0) sinks[s].write(rest);
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await docker.close();
  }
  return exitCodeFor(result, say);
}

/** Maps a phase result to the command's exit code, explaining anything that is not the script's own. */
export function exitCodeFor(r: PhaseResult, say: (m: string) => void): number {
  switch (r.outcome) {
    case 'succeeded':
      return 0;
    case 'failed':
      if (r.error) say(r.error.message);
      return r.exitCode || 1;
    case 'logs-timeout':
    case 'run-timeout':
      say(r.error?.message ?? `Phase stopped by the ${r.outcome}`);
      return TIMEOUT_EXIT_CODE;
    case 'canceled':
      say('Canceled: the phase was stopped by a signal');
      return 130;
    case 'system-error':
      say(r.error?.message ?? 'Docker failed');
      return r.error?.code === 'MOUNT_HOST_PATH_MISSING' ? 2 : 1;
  }
}
