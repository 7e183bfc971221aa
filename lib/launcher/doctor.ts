// `launcher doctor`: the preflight. Each check says pass or fail and, when it
// fails, what to do. Checks run in order and later ones that depend on an
// earlier failure are reported as skipped rather than as confusing failures.
// I/O comes in through `DoctorDeps` so tests can drive every branch with real
// peers (a real dockerd, a real server) or a broken one (a missing socket).
import { X509Certificate, type KeyObject } from 'node:crypto';
import { Agent, request } from 'undici';
import { DockerClient } from '../docker/client.ts';
import { assertKeyMatchesCertificate, parsePoolPrivateKey } from '../keys.ts';
import { decodeToken, type PoolToken } from '../token.ts';

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorInput {
  /** Raw SPACELIFT_TOKEN. */
  token: string | undefined;
  /** Raw SPACELIFT_POOL_PRIVATE_KEY. */
  key: string | undefined;
  dockerHost: string | undefined;
  /** Errors from parsing the rest of the configuration (already formatted). */
  configProblems: string[];
  configWarnings: string[];
  now?: () => number;
  /** Largest clock difference with the server that passes. */
  maxSkewMs?: number;
  /** Certificates expiring sooner than this warn. */
  expiryWarnMs?: number;
}

const DAY = 86_400_000;

export async function runDoctor(input: DoctorInput): Promise<CheckResult[]> {
  const now = input.now ?? Date.now;
  const out: CheckResult[] = [];
  const add = (r: CheckResult) => out.push(r);

  if (input.configProblems.length === 0) {
    add({ name: 'configuration', status: input.configWarnings.length ? 'warn' : 'pass', detail: input.configWarnings.length ? input.configWarnings.join('; ') : 'environment parses' });
  } else {
    add({ name: 'configuration', status: 'fail', detail: input.configProblems.join('; '), fix: 'fix the variables named above (see docs/launcher.md)' });
  }

  let token: PoolToken | undefined;
  if (!input.token) {
    add({ name: 'token', status: 'fail', detail: 'SPACELIFT_TOKEN is not set', fix: 'set SPACELIFT_TOKEN to the token the server printed when the pool was created' });
  } else {
    try {
      token = decodeToken(input.token);
      add({ name: 'token', status: 'pass', detail: `pool ${token.poolId} at ${token.serverUrl}` });
    } catch (e) {
      add({ name: 'token', status: 'fail', detail: (e as Error).message, fix: 'copy the whole token again (one line of base64)' });
    }
  }

  let key: KeyObject | undefined;
  if (!input.key) {
    add({ name: 'private key', status: 'fail', detail: 'SPACELIFT_POOL_PRIVATE_KEY is not set', fix: 'export SPACELIFT_POOL_PRIVATE_KEY="$(base64 -w 0 spacelift.key)"' });
  } else {
    try {
      key = parsePoolPrivateKey(input.key);
      add({ name: 'private key', status: 'pass', detail: `RSA ${key.asymmetricKeyDetails?.modulusLength ?? '?'} bits` });
    } catch (e) {
      add({ name: 'private key', status: 'fail', detail: (e as Error).message, fix: 'export SPACELIFT_POOL_PRIVATE_KEY="$(base64 -w 0 spacelift.key)"' });
    }
  }

  if (token && key) {
    try {
      assertKeyMatchesCertificate(key, token.certificate);
      add({ name: 'key matches certificate', status: 'pass', detail: 'the private key belongs to the pool certificate in the token' });
    } catch (e) {
      add({ name: 'key matches certificate', status: 'fail', detail: (e as Error).message, fix: 'use the key that made this pool\'s CSR, or the token issued for your key' });
    }
  } else {
    add({ name: 'key matches certificate', status: 'skip', detail: 'needs a readable token and key' });
  }

  if (token) {
    try {
      const cert = new X509Certificate(token.certificate);
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      const t = now();
      if (t < from) add({ name: 'certificate validity', status: 'fail', detail: `not valid before ${cert.validFrom}`, fix: 'check this host\'s clock' });
      else if (t > to) add({ name: 'certificate validity', status: 'fail', detail: `expired ${cert.validTo}`, fix: 'reset the pool with a new CSR and use the new token' });
      else if (to - t < (input.expiryWarnMs ?? 30 * DAY)) add({ name: 'certificate validity', status: 'warn', detail: `expires ${cert.validTo}`, fix: 'plan a pool key rotation before then' });
      else add({ name: 'certificate validity', status: 'pass', detail: `valid until ${cert.validTo}` });
    } catch (e) {
      add({ name: 'certificate validity', status: 'fail', detail: `Cannot read the pool certificate in the token: ${(e as Error).message}` });
    }
  } else {
    add({ name: 'certificate validity', status: 'skip', detail: 'needs a readable token' });
  }

  let docker: DockerClient | undefined;
  try {
    docker = new DockerClient({ host: input.dockerHost });
    const info = await docker.engine();
    add({ name: 'docker', status: 'pass', detail: `Docker Engine ${info.engineVersion} (API ${info.engineApiVersion}, speaking ${info.apiVersion}) at ${docker.endpoint.host}` });
  } catch (e) {
    add({ name: 'docker', status: 'fail', detail: (e as Error).message, fix: 'start dockerd, or point DOCKER_HOST at its socket (unix:///var/run/docker.sock); the user needs access to it' });
  } finally {
    await docker?.close().catch(() => {});
  }

  if (token && key && out.find((r) => r.name === 'key matches certificate')?.status === 'pass') {
    const r = await serverCheck(token, key);
    add(r.check);
    if (r.serverDate !== undefined) {
      const skew = r.localDate - r.serverDate;
      const max = input.maxSkewMs ?? 30_000;
      // The Date header has one-second resolution; allow for it.
      const s = `${(skew / 1000).toFixed(0)} s`;
      add(Math.abs(skew) <= max + 1000
        ? { name: 'clock skew', status: 'pass', detail: `this host is ${s} from the server` }
        : { name: 'clock skew', status: 'fail', detail: `this host is ${s} from the server`, fix: 'synchronise the clock (NTP): certificates and timeouts depend on it' });
    } else {
      add({ name: 'clock skew', status: 'skip', detail: 'needs an answer from the server' });
    }
  } else {
    add({ name: 'server', status: 'skip', detail: 'needs a token and a key that matches it' });
    add({ name: 'clock skew', status: 'skip', detail: 'needs an answer from the server' });
  }
  return out;
}

/**
 * Proves mutual TLS end to end without side effects: asks for the state of a
 * phase that cannot exist. 404 means the server took our certificate; 401 or
 * 403 mean it refused it.
 */
async function serverCheck(token: PoolToken, key: KeyObject): Promise<{ check: CheckResult; serverDate?: number; localDate: number }> {
  const agent = new Agent({
    connect: { ca: token.caCertificate, cert: token.certificate, key: key.export({ type: 'pkcs8', format: 'pem' }) as string, minVersion: 'TLSv1.2' },
    connectTimeout: 10_000,
  });
  const origin = new URL(token.serverUrl).origin;
  try {
    const res = await request(`${origin}/v1/worker/runs/run_doctor/phases/0`, { dispatcher: agent, signal: AbortSignal.timeout(15_000) });
    const localDate = Date.now();
    await res.body.dump();
    const date = res.headers['date'];
    const serverDate = typeof date === 'string' ? Date.parse(date) : undefined;
    const base = { localDate, ...(serverDate !== undefined && !Number.isNaN(serverDate) ? { serverDate } : {}) };
    if (res.statusCode === 401 || res.statusCode === 403) {
      return { ...base, check: { name: 'server', status: 'fail', detail: `${origin} refused the pool certificate (${res.statusCode})`, fix: 'the pool was reset or deleted: get a new token and key from the pool admin' } };
    }
    if (res.statusCode >= 500) {
      return { ...base, check: { name: 'server', status: 'fail', detail: `${origin} answered ${res.statusCode}`, fix: 'the server is unwell: check its logs' } };
    }
    return { ...base, check: { name: 'server', status: 'pass', detail: `${origin} accepted the pool certificate over mutual TLS` } };
  } catch (e) {
    const err = e as { code?: string; message?: string; cause?: { code?: string } };
    const code = err.code ?? err.cause?.code ?? '';
    return {
      localDate: Date.now(),
      check: { name: 'server', status: 'fail', detail: `Cannot reach ${origin}: ${code || err.message}`, fix: /CERT|SIGNATURE|ISSUER/.test(code) ? 'the server\'s certificate is not from the CA in the token: check the token is for this server' : 'check the server is up and this host can reach it (firewall, proxy)' },
    };
  } finally {
    await agent.close().catch(() => {});
  }
}

/** Human output: one line per check, the fix indented below a failure. */
export function formatChecks(results: CheckResult[]): string {
  const tag: Record<CheckStatus, string> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'SKIP' };
  return results.map((r) => `${tag[r.status]}  ${r.name}: ${r.detail}${r.fix && r.status !== 'pass' ? `\n      fix: ${r.fix}` : ''}`).join('\n') + '\n';
}

export function allPassed(results: CheckResult[]): boolean {
  return results.every((r) => r.status === 'pass' || r.status === 'warn');
}
