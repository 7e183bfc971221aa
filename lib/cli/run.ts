// `launcher` / `launcher run`: the daemon. Start-up checks everything it can
// before touching the server (configuration, token, key against certificate,
// the state directory lock, Docker), so a mistake ends with a clear message
// and its own exit code instead of a retry loop:
//   0 stopped (or already running on this state directory)
//   1 unexpected failure
//   2 configuration error (bad variable, token, key, or key not matching the token)
//   3 refused by the server (pool reset or deleted): get a new token
//   4 cycled by the server: the supervisor should start a fresh launcher
//   5 Docker unreachable at start-up
import type { Server } from 'node:http';
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { parseLauncherConfig, phaseMounts, whitelistedEnv, maskedValues, type LauncherConfig } from '../config.ts';
import { LauncherError, isLauncherError } from '../errors.ts';
import { assertKeyMatchesCertificate, parsePoolPrivateKey } from '../keys.ts';
import { decodeToken } from '../token.ts';
import { DockerClient } from '../docker/client.ts';
import { loadDockerConfig, registryAuthHeader, type RegistryAuths } from '../docker/auth.ts';
import { WorkerApi } from '../launcher/api.ts';
import { StateDir } from '../launcher/statedir.ts';
import { Metrics, serveMetrics } from '../launcher/metrics.ts';
import { createLogger } from '../log.ts';
import { Masker } from '../mask.ts';
import { handleSignals } from '../launcher/signals.ts';
import { EXIT_DOCKER } from '../launcher/exit-codes.ts';
import { Worker } from '../launcher/worker.ts';
import type { PhaseSettings } from '../launcher/phase.ts';
import { VERSION } from '../version.ts';

const USAGE = `Usage: launcher [run]

Joins the worker pool named by SPACELIFT_TOKEN and runs its phases in Docker
containers until stopped. Configuration is the environment (see docs/launcher.md).

Signals: SIGTERM/SIGINT once = finish the current run and exit 0; twice = cancel
it, report, exit; SIGQUIT = exit at once (the next start resumes the run).
Exit codes: 0 stopped or already running, 1 unexpected failure, 2 configuration,
3 refused by the server (get a new token), 4 cycled, 5 Docker unreachable.
`;

export function phaseSettings(config: LauncherConfig, env: Record<string, string | undefined>, auths?: RegistryAuths): PhaseSettings {
  return {
    defaultRunnerImage: config.defaultRunnerImage,
    network: config.workerNetwork,
    runtime: config.runtime,
    logsTimeoutMs: config.logsTimeoutMs,
    runTimeoutMs: config.runTimeoutMs,
    pullPolicy: config.pullPolicy,
    mounts: (readOnly) => phaseMounts(config, readOnly),
    env: (readOnly) => whitelistedEnv(config, env, readOnly),
    masks: maskedValues(config, env),
    registryAuth: (image) => registryAuthHeader(auths, image),
    runLogsOnStdout: config.runLogsOnStdout,
  };
}

export async function run(io: CommandIo): Promise<number> {
  let values;
  ({ values } = parseCommandArgs('run', { args: io.argv, options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: false }, 'settings are environment variables'));
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const { config, warnings } = parseLauncherConfig(io.env, { require: { token: true, key: true } });
  // Second line of defence: values of SPACELIFT_MASK_ENVS never reach our own log.
  // The same masker as run output, so encoded forms (base64, JSON, URL) are caught too;
  // its warnings (values too short to mask) are reported once the logger exists.
  const maskWarnings: string[] = [];
  const ownMasker = new Masker({ secrets: maskedValues(config, io.env), onWarning: (m) => maskWarnings.push(m) });
  const log = createLogger({ stream: io.stderr, debug: config.debug, redact: (t) => ownMasker.redact(t) });
  for (const w of [...warnings, ...maskWarnings]) log.warn(w);
  const token = decodeToken(config.token!);
  const key = parsePoolPrivateKey(config.poolPrivateKey!);
  assertKeyMatchesCertificate(key, token.certificate);

  const state = new StateDir(config.stateDir);
  const lock = state.lock();
  if (!lock.acquired) {
    log.info(`Another launcher is already running (pid ${lock.pid}) on state directory ${state.path}: exiting`, { pid: lock.pid, stateDir: state.path });
    return 0;
  }
  const docker = new DockerClient({ host: config.dockerHost });
  const api = new WorkerApi({ serverUrl: token.serverUrl, certificate: token.certificate, caCertificate: token.caCertificate, privateKey: key, onContact: () => metrics.contact() });
  const metrics = new Metrics();
  let metricsServer: Server | undefined;
  let unhandle = () => {};
  try {
    let engine;
    try {
      engine = await docker.engine();
    } catch (e) {
      throw new LauncherError('DOCKER_UNREACHABLE', isLauncherError(e) ? e.message : `Cannot reach the Docker Engine at ${config.dockerHost}: ${(e as Error).message}`, { exitCode: EXIT_DOCKER, cause: e });
    }
    const auths = config.dockerConfigDir ? await loadDockerConfig(config.dockerConfigDir) : undefined;
    if (config.metricsListen) {
      metricsServer = await serveMetrics(metrics, config.metricsListen);
      log.info('Serving metrics', { address: `${config.metricsListen.host}:${config.metricsListen.port}`, paths: ['/metrics', '/healthz'] });
    }
    log.info('Launcher starting', { version: VERSION, pool: token.poolId, server: token.serverUrl, stateDir: state.path, docker: engine.engineVersion, pid: process.pid });
    const worker = new Worker({
      api, docker, state, poolKey: key, poolId: token.poolId, metadata: config.metadata, dockerVersion: engine.engineVersion,
      settings: phaseSettings(config, io.env, auths), log, metrics, stdout: io.stdout,
    });
    unhandle = handleSignals(process, worker, log, (code) => {
      state.unlock();
      process.exit(code);
    });
    return await worker.run();
  } finally {
    unhandle();
    metricsServer?.close();
    await api.destroy();
    await docker.close().catch(() => {});
    state.unlock();
  }
}
