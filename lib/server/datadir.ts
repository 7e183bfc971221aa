// The server's data directory: CA, server certificate, admin token, database,
// sealed workspaces, logs. First start creates it; later starts reuse it and
// only reissue the server certificate when it lacks a name it must carry or
// nears expiry (the CA never changes, so tokens stay valid).
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { LauncherError } from '../errors.ts';
import { createCertificateAuthority, issueServerCertificate, type CertificateAuthority } from '../pki.ts';
import { writeFileAtomic } from '../atomic-file.ts';

export interface DataPaths {
  dir: string;
  caKey: string;
  caCert: string;
  serverKey: string;
  serverCert: string;
  adminToken: string;
  db: string;
  pid: string;
  /** The URL launchers use, for `launcher admin --data DIR` (lib/admin/connection.ts). */
  url: string;
  audit: string;
  tmp: string;
  workspaces: string;
  logs: string;
  dist: string;
  /** Sealed state versions of managed-state stacks: state/STACK/VERSION.age. */
  state: string;
}

export function dataPaths(dir: string): DataPaths {
  return {
    dir,
    caKey: join(dir, 'ca.key'),
    caCert: join(dir, 'ca.crt'),
    serverKey: join(dir, 'server.key'),
    serverCert: join(dir, 'server.crt'),
    adminToken: join(dir, 'admin.token'),
    db: join(dir, 'launcher.db'),
    pid: join(dir, 'server.pid'),
    url: join(dir, 'server.url'),
    audit: join(dir, 'audit.log'),
    tmp: join(dir, 'tmp'),
    workspaces: join(dir, 'workspaces'),
    logs: join(dir, 'logs'),
    dist: join(dir, 'dist'),
    state: join(dir, 'state'),
  };
}

/**
 * Creates DIR and its subdirectories, and makes them private (0700) even when
 * they already existed with wider modes: DIR holds the CA key and the admin
 * token. The database and its -wal/-shm files are made 0600 (SQLite gives the
 * -wal and -shm files the database file's mode, so the file is created 0600
 * before SQLite ever opens it).
 */
export function prepareDataDir(p: DataPaths): void {
  try {
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    if (!statSync(p.dir).isDirectory()) throw new Error('not a directory');
    chmodSync(p.dir, 0o700);
    for (const d of [p.tmp, p.workspaces, p.logs, p.state]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(d, 0o700);
    }
    closeSync(openSync(p.db, 'a', 0o600));
    for (const f of [p.db, `${p.db}-wal`, `${p.db}-shm`]) {
      try { chmodSync(f, 0o600); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    }
  } catch (e) {
    throw new LauncherError('DATA_DIR_INVALID', `Cannot use the data directory ${p.dir}: ${(e as Error).message}`, { exitCode: 2, cause: e });
  }
}

function readIfExists(path: string): string | undefined {
  try { return readFileSync(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Loads the CA, creating it (4096-bit RSA, key 0600) on first start. */
export async function loadOrCreateCa(p: DataPaths): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const keyPem = readIfExists(p.caKey);
  const certPem = readIfExists(p.caCert);
  if (keyPem && certPem) return { ca: { keyPem, certPem }, created: false };
  if (keyPem || certPem) {
    throw new LauncherError('DATA_DIR_INVALID', `Cannot use the data directory ${p.dir}: found only one of ca.key and ca.crt (restore both from a backup, or start with an empty directory)`, { exitCode: 2 });
  }
  const ca = createCertificateAuthority();
  await writeFileAtomic(p.caKey, ca.keyPem, 0o600);
  await writeFileAtomic(p.caCert, ca.certPem, 0o644);
  return { ca, created: true };
}

/** The host names and addresses the server certificate must carry. */
export function requiredNames(hosts: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dns = new Set<string>(['localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  for (const raw of hosts) {
    const h = raw.replace(/^\[|\]$/g, '');
    if (h === '' || h === '0.0.0.0' || h === '::') continue;
    if (isIP(h)) ips.add(h); else dns.add(h.toLowerCase());
  }
  return { dnsNames: [...dns], ipAddresses: [...ips] };
}

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

function certCovers(certPem: string, names: { dnsNames: string[]; ipAddresses: string[] }, now: number): boolean {
  try {
    const cert = new X509Certificate(certPem);
    if (Date.parse(cert.validTo) - now < RENEW_BEFORE_MS) return false;
    const san = (cert.subjectAltName ?? '').split(', ');
    const has = new Set(san.map((s) => s.replace(/^IP Address:/, 'IP:').toLowerCase()));
    return names.dnsNames.every((d) => has.has(`dns:${d}`)) &&
      names.ipAddresses.every((ip) => has.has(`ip:${ip === '::1' ? '0:0:0:0:0:0:0:1' : ip}`) || has.has(`ip:${ip}`));
  } catch {
    return false;
  }
}

/** The server's TLS key and certificate, (re)issued when names are missing or it nears expiry. */
export async function loadOrIssueServerCert(p: DataPaths, ca: CertificateAuthority, hosts: string[]): Promise<{ keyPem: string; certPem: string; issued: boolean }> {
  const names = requiredNames(hosts);
  const keyPem = readIfExists(p.serverKey);
  const certPem = readIfExists(p.serverCert);
  if (keyPem && certPem && certCovers(certPem, names, Date.now())) return { keyPem, certPem, issued: false };
  const cert = issueServerCertificate(ca, names);
  await writeFileAtomic(p.serverKey, cert.keyPem, 0o600);
  await writeFileAtomic(p.serverCert, cert.certPem, 0o644);
  return { ...cert, issued: true };
}

/** A new admin token: 32 random bytes, base64url, with a recognisable prefix. */
export function newAdminToken(): string {
  return `lat_${randomBytes(32).toString('base64url')}`;
}

/** Writes DIR/admin.token (0600) for local admin use (`launcher admin --data DIR`). */
export function writeAdminTokenFile(p: DataPaths, token: string): void {
  writeFileSync(p.adminToken, token + '\n', { mode: 0o600 });
  chmodSync(p.adminToken, 0o600);
}

/** Records this process in DIR/server.pid (informational: the database lock is what excludes). */
export function writePidFile(p: DataPaths): void {
  writeFileSync(p.pid, `${process.pid}\n`, { mode: 0o644 });
}

export function readPidFile(p: DataPaths): number | undefined {
  const n = Number(readIfExists(p.pid)?.trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * Records the URL launchers use (after a port 0 is bound) in DIR/server.url, so
 * `launcher admin --data DIR` finds the server on any port. Temp, fsync,
 * rename: a reader never sees half a line.
 */
export async function writeServerUrlFile(p: DataPaths, url: string): Promise<void> {
  await writeFileAtomic(p.url, url + '\n', 0o644);
}
