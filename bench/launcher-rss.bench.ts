// Launcher memory: idle RSS (registered, holding its long-poll) of the built
// single executable, of its bundle under plain Node (`node dist/launcher.cjs`)
// and of the source run under tsx, side by side; and the
// peak RSS of the built launcher over a 1 GiB workspace round trip (download,
// open, restore into the container, archive, seal, upload), sampled from
// /proc every 50 ms and checked against the kernel's high-water mark (VmHWM).
//
//   node_modules/.bin/node --import tsx bench/launcher-rss.bench.ts [--skip-1gib]
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { pack } from 'tar-stream';
import { createSealStream, sshRsaRecipient } from '../lib/age/index.ts';
import { DockerClient } from '../lib/docker/client.ts';
import { parsePoolPrivateKey, publicKeyPem } from '../lib/keys.ts';
import { ensureTestImage } from '../test/helpers/docker.ts';
import { ensureBuilt } from '../test/helpers/build.ts';
import { startTestServer, type TestServer } from '../test/helpers/server.ts';
import { createPool, createStack, seedPoolKey, startLauncher, tempDir, waitRun, ended, type LauncherProcess } from '../test/helpers/launcher.ts';

const GIB = 1024 ** 3;
const skipBig = process.argv.includes('--skip-1gib');
const mb = (kb: number) => (kb / 1024).toFixed(1);
function status(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const docker = new DockerClient();
await ensureTestImage(docker);
const binary = ensureBuilt();
const srv = await startTestServer({ args: ['--max-workspace-size', '3GiB'] });
const key = seedPoolKey(4096);
const pool = await createPool(srv, 'rss', key.csrPem);
const dirs: Array<{ remove(): void }> = [];

/**
 * Drops FILE's pages from the page cache, so the executable is read from disk
 * as on a host after install or reboot. Straight after the build its pages
 * are cached as large folios (node --build-sea writes it in one go), and the
 * kernel maps a whole folio when one page of it is touched: the same binary
 * then shows ~30 MB more file-backed RSS (111.8 vs 79.8 MB, docs/benchmarks.md).
 */
function dropPageCache(file: string): void {
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
}

async function idle(executable: string | undefined, args?: string[]): Promise<{ rss: number; anon: number; file: number; launcher: LauncherProcess }> {
  const d = tempDir('rss-bench-');
  dirs.push(d);
  if (executable) dropPageCache(executable);
  const l = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: d.path, env: { SPACELIFT_DEBUG: 'false' }, ...(executable ? { executable } : {}), ...(args ? { args } : {}) });
  await l.waitFor(/Registered with the server/);
  await new Promise((r) => setTimeout(r, 3000));
  const samples: Array<ReturnType<typeof status>> = [];
  for (let i = 0; i < 10; i++) {
    samples.push(status(l.pid));
    await new Promise((r) => setTimeout(r, 200));
  }
  const pick = (k: 'rss' | 'anon' | 'file') => median(samples.map((x) => x[k]));
  return { rss: pick('rss'), anon: pick('anon'), file: pick('file'), launcher: l };
}

const built = await idle(binary);
const bundle = await idle(process.execPath, [join(binary, '../launcher.cjs'), 'run']);
bundle.launcher.kill('SIGTERM');
await bundle.launcher.exitCode();
const source = await idle(undefined);
// RssFile is pages of the executable mapped from disk (shared by every
// launcher on the host); RssAnon is this process's own memory.
const show = (r: { rss: number; anon: number; file: number }) => `${mb(r.rss)} MB (anonymous ${mb(r.anon)} MB, file-backed ${mb(r.file)} MB)`;
console.log(`idle RSS, built executable (${binary.replace(/.*\//, '')}): ${show(built)}`);
console.log(`idle RSS, bundle under node (node dist/launcher.cjs): ${show(bundle)}`);
console.log(`idle RSS, source under node --import tsx: ${show(source)}`);
source.launcher.kill('SIGTERM');
await source.launcher.exitCode();

/** Streams a file as the raw-body trigger (the JSON form is limited to 1 MiB). */
function triggerRaw(s: TestServer, stack: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL(`/v1/stacks/${stack}/runs?proposed=0`, s.url);
    const req = request({ method: 'POST', hostname: u.hostname, port: u.port, path: u.pathname + u.search, ca: s.caPem, agent: false,
      headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/octet-stream', 'content-length': statSync(file).size } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(body).run.id) : reject(new Error(`trigger ${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    createReadStream(file).pipe(req);
  });
}

if (!skipBig) {
  const d = tempDir('rss-bench-big-');
  dirs.push(d);
  const sealedPath = join(d.path, 'ws.tar.age');
  const block = randomBytes(1024 * 1024);
  const p = pack();
  const entry = p.entry({ name: 'big.bin', size: GIB, mode: 0o644 }, (e) => { if (e) throw e; });
  const feed = (async () => {
    for (let i = 0; i < 1024; i++) if (!entry.write(block)) await new Promise<void>((r) => entry.once('drain', () => r()));
    entry.end(() => {});
    p.finalize();
  })();
  await Promise.all([feed, pipeline(p, createSealStream([sshRsaRecipient(publicKeyPem(parsePoolPrivateKey(key.keyPem)))]), createWriteStream(sealedPath))]);
  const stack = await createStack(srv, { name: 'gib', pool: pool.poolId, phases: [{ name: 'p', script: 'wc -c < big.bin; echo more >> big.bin' }] });
  const pid = built.launcher.pid;
  let peak = 0;
  let peakAnon = 0;
  const timer = setInterval(() => {
    try {
      const st = status(pid);
      peak = Math.max(peak, st.rss);
      peakAnon = Math.max(peakAnon, st.anon);
    } catch { /* exited */ }
  }, 50);
  const t0 = Date.now();
  const runId = await triggerRaw(srv, stack, sealedPath);
  const run = await waitRun(srv, runId, ended, 15 * 60_000);
  clearInterval(timer);
  const hwm = status(pid).hwm;
  if (run.state !== 'FINISHED') throw new Error(`1 GiB run ended ${run.state}: ${JSON.stringify(run.phases)}`);
  const logs = (await srv.admin('GET', `/v1/runs/${runId}/logs`)).text;
  if (!logs.includes(String(GIB))) throw new Error(`unexpected logs: ${logs}`);
  console.log(`1 GiB workspace round trip (built executable): ${((Date.now() - t0) / 1000).toFixed(1)} s, peak RSS sampled ${mb(peak)} MB (anonymous ${mb(peakAnon)} MB), VmHWM ${mb(hwm)} MB (idle was ${mb(built.rss)} MB)`);
}

built.launcher.kill('SIGTERM');
await built.launcher.exitCode();
await srv.stop();
key.dir.cleanup();
for (const d of dirs) d.remove();
await docker.close();
