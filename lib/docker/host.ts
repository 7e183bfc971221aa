// DOCKER_HOST → the Docker Engine's unix socket. One parser for the launcher's
// configuration and the Engine client, so start-up refuses exactly what the
// client could not use. Only unix sockets: the launcher drives the local
// engine, and a tcp:// endpoint would be plain, unauthenticated HTTP to an API
// that is root on the host (TLS client certificates are not supported).
import { ConfigError } from '../errors.ts';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export interface DockerEndpoint {
  /** The endpoint as `unix:///path` (for messages). */
  host: string;
  /** What undici is given as the origin; the socket decides where bytes go. */
  origin: string;
  socketPath: string;
}

function refused(raw: string, problem: string): ConfigError {
  return new ConfigError(`Cannot parse DOCKER_HOST: ${JSON.stringify(raw)} ${problem} (try ${DEFAULT_DOCKER_HOST})`, { code: 'DOCKER_HOST_INVALID' });
}

/** `unix:///path` or a bare `/path`; unset or empty is the default socket. */
export function parseDockerHost(raw: string | undefined): DockerEndpoint {
  const v = raw?.trim();
  let socketPath: string;
  if (v === undefined || v === '') socketPath = DEFAULT_DOCKER_HOST.slice('unix://'.length);
  else if (v.startsWith('/')) socketPath = v;
  else if (/^unix:\/\/\/./.test(v)) socketPath = v.slice('unix://'.length);
  else if (v.startsWith('unix://')) throw refused(v, 'has no absolute socket path');
  else throw refused(v, 'is not a unix socket (the launcher talks to the local engine only)');
  return { host: `unix://${socketPath}`, origin: 'http://docker', socketPath };
}
