// Real Docker peers for tests: a busybox image built in-process from the host's
// busybox-static (no registry is reachable here), and a real docker-registry on
// 127.0.0.1 behind htpasswd for pulls with credentials.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { DockerClient } from '../../lib/docker/client.ts';
import { importImage, inspectImage, pushImage, tagImage } from '../../lib/docker/images.ts';
import { listContainers, removeContainer } from '../../lib/docker/containers.ts';
import { LABEL_PREFIX } from '../../lib/executor.ts';

export const TEST_IMAGE = 'launcher-test/busybox:latest';

/** A file added to a test rootfs (e.g. /usr/local/bin/terraform). */
export interface RootfsFile {
  name: string; // path inside the image, without the leading slash
  mode: number;
  data: Buffer;
}

/** A rootfs tar: /bin/busybox, one symlink per applet, /workspace and /tmp, plus `extra` files. */
export function busyboxRootfs(extra: RootfsFile[] = []): Readable {
  const p = pack();
  const busybox = readFileSync('/bin/busybox');
  const applets = execFileSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const dirs = new Set(['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'tmp', 'workspace', 'root']);
  for (const d of dirs) p.entry({ name: d, type: 'directory', mode: d === 'tmp' ? 0o1777 : 0o755 });
  p.entry({ name: 'bin/busybox', mode: 0o755, size: busybox.length }, busybox);
  p.entry({ name: 'etc/passwd', mode: 0o644 }, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  p.entry({ name: 'etc/group', mode: 0o644 }, 'root:x:0:\nnogroup:x:65534:\n');
  for (const a of applets) {
    if (a === 'bin/busybox') continue;
    p.entry({ name: a, type: 'symlink', linkname: '/bin/busybox', mode: 0o777 });
  }
  for (const f of extra) {
    const parts = f.name.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) { dirs.add(d); p.entry({ name: d, type: 'directory', mode: 0o755 }); }
    }
    p.entry({ name: f.name, mode: f.mode, size: f.data.length }, f.data);
  }
  p.finalize();
  return Readable.from(p, { objectMode: false });
}

let ensured: Promise<void> | undefined;
/** Imports the test image through the Engine API unless it is already there. */
export function ensureTestImage(docker: DockerClient): Promise<void> {
  ensured ??= (async () => {
    if (await inspectImage(docker, TEST_IMAGE)) return;
    await importImage(docker, busyboxRootfs(), 'launcher-test/busybox', 'latest');
  })();
  return ensured;
}

/** Removes every container our labels mark that carries this worker id (test cleanup). */
export async function removeWorkerContainers(docker: DockerClient, workerId: string): Promise<void> {
  const list = await listContainers(docker, { [`${LABEL_PREFIX}worker-id`]: workerId });
  await Promise.all(list.map((c) => removeContainer(docker, c.Id)));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  host: string; // 127.0.0.1:PORT
  username: string;
  password: string;
  dir: string;
  stop(): Promise<void>;
}

/** Starts Debian's docker-registry on a free loopback port with htpasswd auth. */
export async function startRegistry(username = 'launcher', password = 'pa55-w0rd-for-tests'): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-registry-'));
  const port = await freePort();
  writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' }));
  writeFileSync(join(dir, 'config.yml'), [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
    'auth:',
    '  htpasswd:',
    '    realm: launcher-test',
    `    path: ${join(dir, 'htpasswd')}`,
    '',
  ].join('\n'));
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d) => { log += d; });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      if (r.status === 401 || r.status === 200) break;
    } catch { /* not listening yet */ }
    if (i > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start on ${host}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host, username, password, dir,
    async stop() {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function authHeader(username: string, password: string, serveraddress: string): string {
  return Buffer.from(JSON.stringify({ username, password, serveraddress })).toString('base64url');
}

/** Tags the test image as REGISTRY/launcher-test/NAME:TAG and pushes it with credentials. */
export async function pushTestImage(docker: DockerClient, reg: TestRegistry, name: string, tag = 'latest'): Promise<string> {
  await ensureTestImage(docker);
  const repo = `${reg.host}/launcher-test/${name}`;
  await tagImage(docker, TEST_IMAGE, repo, tag);
  await pushImage(docker, repo, tag, authHeader(reg.username, reg.password, reg.host));
  return `${repo}:${tag}`;
}

/** A Docker config dir whose config.json holds `auths` for the registry (as `auth` or username/password). */
export function dockerConfigDir(registry: string, username: string, password: string, form: 'auth' | 'fields' = 'auth'): string {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-dockercfg-'));
  const entry = form === 'auth'
    ? { auth: Buffer.from(`${username}:${password}`).toString('base64') }
    : { username, password };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [`http://${registry}`]: entry } }));
  return dir;
}

export function exists(path: string): boolean {
  try { statSync(path); return true; } catch { return false; }
}
