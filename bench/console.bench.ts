// The web console, in Debian's Chromium against the built executable (server
// and a real launcher), each figure beside the terminal way of doing the same:
//
//   1. first load: bytes transferred and time until the page is usable, cold
//      (fresh profile, sign-in page) and signed in (the pool list with its
//      data, files cached); peer: `launcher admin pool list`.
//   2. a log line stored by the server → painted in the open run page; a
//      phase prints a numbered line every 50 ms, "stored" is when the line is
//      in the server's log file (fs.watch), "painted" the animation frame in
//      which its row entered the page; peer: `launcher admin run logs --follow`,
//      stored → printed on its stdout. Target p50 ≤ 100 ms. The page adds rows
//      in an animation frame callback; the time taken is when the row enters the
//      DOM in that callback, i.e. the frame that paints it (not its end).
//   3. a run with 100,000 log lines: the run page's time to first log row
//      painted, to the last line painted (following the tail), JS heap and
//      DOM nodes; peer: `launcher admin run logs RUN` to a pipe: time and peak
//      RSS (/usr/bin/time).
//
//   node_modules/.bin/node --import tsx bench/console.bench.ts [rounds=5] [lines=100000]
//   CONSOLE_BENCH_HOLD=1 …   keeps the server up at the end to time the peer from outside
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { ensureBuilt } from '../test/helpers/build.ts';
import { startProcess, type Started } from '../test/helpers/processes.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { TEST_IMAGE, ensureTestImage } from '../test/helpers/docker.ts';
import { httpsRequest } from '../test/helpers/server.ts';

const rounds = Number(process.argv[2] ?? 5);
const bigLines = Number(process.argv[3] ?? 100_000);
const binary = ensureBuilt();
const work = mkdtempSync(join(tmpdir(), 'bench-console-'));
const data = join(work, 'data');
const children: ChildProcess[] = [];
const now = (): number => performance.timeOrigin + performance.now();
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : NaN; };
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]!; };
const f = (x: number, d = 1): string => x.toFixed(d);

const started = (args: string[], env: Record<string, string> = {}): Started => startProcess(binary, args, env, children);
async function until<T>(fn: () => T | undefined | Promise<T | undefined>, what: string, ms = 300_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
function cli(args: string[]): any {
  const r = spawnSync(binary, ['admin', ...args, '--data', data, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`admin ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

try {
  await ensureTestImage(new DockerClient());
  const server = started(['server', '--data', data, '--listen', '127.0.0.1:0']);
  const url = (await until(() => /"msg":"Server listening","url":"(https:\/\/127\.0\.0\.1:\d+)"/.exec(server.output()) ?? undefined, 'server'))[1]!;
  const adminToken = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  const ca = readFileSync(join(data, 'ca.crt'), 'utf8');
  const api = async (method: string, path: string, body?: unknown) => (await httpsRequest(url, method, path, { ca, headers: { authorization: `Bearer ${adminToken}` }, body })).body;
  execFileSync(binary, ['keygen', '--out', join(work, 'spacelift'), '--bits', '2048'], { stdio: 'ignore' });
  const { token } = cli(['pool', 'create', 'bench', '--csr', join(work, 'spacelift.csr')]);
  const launcher = started([], {
    SPACELIFT_TOKEN: token, SPACELIFT_POOL_PRIVATE_KEY: readFileSync(join(work, 'spacelift.key')).toString('base64'),
    SPACELIFT_LAUNCHER_STATE_DIR: join(work, 'state'), SPACELIFT_WORKER_NETWORK: 'none',
  });
  await until(() => /Registered with the server/.test(launcher.output()), 'launcher');
  cli(['stack', 'create', 'ticks', '--pool', 'bench', '--image', TEST_IMAGE, '--phase', 'tick=i=0; while [ $i -lt 200 ]; do echo "tick $i"; i=$((i+1)); usleep 50000; done']);
  cli(['stack', 'create', 'big', '--pool', 'bench', '--image', TEST_IMAGE, '--phase',
    `big=awk 'BEGIN { for (i = 1; i <= ${bigLines}; i++) printf "line %d \\033[32mok\\033[0m step %d of the build, a log line of a typical width\\n", i, i }'`]);
  const serverCert = readFileSync(join(data, 'server.crt'), 'utf8');
  const signIn = async (page: import('playwright-core').Page): Promise<void> => {
    await page.goto(`${url}/signin`);
    await page.getByLabel('Admin token').fill(adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('h1', { hasText: 'Worker pools' }).waitFor();
  };
  const load = async (page: import('playwright-core').Page) => page.evaluate(`(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const mark = performance.getEntriesByName('console-ready')[0];
    return { bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0), decoded: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0), ready: mark ? mark.startTime : NaN };
  })()`) as Promise<{ bytes: number; decoded: number; ready: number }>;

  // 1. First load.
  const cold: { bytes: number; decoded: number; ready: number }[] = [];
  const warm: { bytes: number; ready: number; data: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const b = await launchBrowser({ serverCertPem: serverCert });
    await b.page.goto(`${url}/signin`);
    await b.page.waitForFunction('document.documentElement.dataset.ready === "1"');
    cold.push(await load(b.page));
    await signIn(b.page);
    await b.page.goto(`${url}/pools`);
    await b.page.locator('table a', { hasText: 'bench' }).waitFor();
    const dataAt = await b.page.evaluate('performance.now()') as number;
    const l = await load(b.page);
    warm.push({ bytes: l.bytes, ready: l.ready, data: dataAt });
    await b.close();
  }
  const cliList: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    execFileSync(binary, ['admin', 'pool', 'list', '--data', data], { stdio: 'ignore' });
    cliList.push(performance.now() - t);
  }

  // 2. Stored → painted, beside stored → printed by the CLI.
  const b = await launchBrowser({ serverCertPem: serverCert });
  await signIn(b.page);
  await b.page.addInitScript(`window.__painted = {};
    new MutationObserver((ms) => {
      const seen = [];
      for (const m of ms) for (const n of m.addedNodes) { const t = /tick (\\d+)/.exec(n.textContent || ''); if (t && !(t[1] in window.__painted)) seen.push(t[1]); }
      // The page changes its rows inside an animation frame callback, so the frame
      // being prepared now is the one that paints them: record the time here.
      const at = performance.timeOrigin + performance.now();
      for (const s of seen) window.__painted[s] = at;
    }).observe(document, { childList: true, subtree: true, characterData: true });`);
  const run = (await api('POST', '/v1/stacks/ticks/runs', { proposed: false })).run;
  const stored: Record<string, number> = {};
  const printed: Record<string, number> = {};
  const follower = spawn(binary, ['admin', 'run', 'logs', run.id, '--follow', '--data', data], { stdio: ['ignore', 'pipe', 'ignore'] });
  let cliBuf = '';
  follower.stdout!.on('data', (d: Buffer) => {
    const at = now();
    cliBuf += d.toString();
    for (const m of cliBuf.matchAll(/tick (\d+)\n/g)) printed[m[1]!] ??= at;
    cliBuf = cliBuf.slice(cliBuf.lastIndexOf('\n') + 1);
  });
  await b.page.goto(`${url}/runs/${run.id}`);
  const dir = join(data, 'logs', run.id);
  await until(() => existsSync(dir), 'the log directory', 60_000);
  let offset = 0;
  let partial = '';
  const readNew = (): void => {
    const file = join(dir, '0.log');
    if (!existsSync(file)) return;
    const at = now();
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, offset);
      if (n <= 0) break;
      offset += n;
      partial += buf.toString('utf8', 0, n);
    }
    for (const m of partial.matchAll(/tick (\d+)\n/g)) stored[m[1]!] ??= at;
    partial = partial.slice(partial.lastIndexOf('\n') + 1);
  };
  const watcher = watch(dir, () => readNew());
  readNew();
  await until(async () => (await api('GET', `/v1/runs/${run.id}`)).run.state === 'FINISHED' || undefined, 'the tick run');
  await b.page.locator('.log .row', { hasText: 'tick 199' }).waitFor();
  watcher.close();
  follower.kill();
  const painted = await b.page.evaluate('window.__painted') as Record<string, number>;
  const toPaint = Object.keys(stored).filter((k) => painted[k] !== undefined).map((k) => painted[k]! - stored[k]!);
  const toPrint = Object.keys(stored).filter((k) => printed[k] !== undefined).map((k) => printed[k]! - stored[k]!);

  // 3. A 100,000-line run page, beside `run logs` in a terminal.
  const big = (await api('POST', '/v1/stacks/big/runs', { proposed: false })).run;
  await until(async () => (await api('GET', `/v1/runs/${big.id}`)).run.state === 'FINISHED' || undefined, 'the big run', 600_000);
  const pages: { first: number; last: number; heapMB: number; nodes: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const page = await b.context.newPage();
    const cdp = await b.context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.goto(`${url}/runs/${big.id}`);
    await page.locator('.log .row').first().waitFor();
    const first = await page.evaluate('performance.now()') as number;
    await page.locator('.log .row', { hasText: `line ${bigLines} ` }).waitFor({ timeout: 300_000 });
    const last = await page.evaluate('performance.now()') as number;
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const m = (name: string): number => metrics.find((x: { name: string }) => x.name === name)?.value ?? NaN;
    pages.push({ first, last, heapMB: m('JSHeapUsedSize') / 1048576, nodes: m('Nodes') });
    await page.close();
  }
  await b.close();
  const terminal: { ms: number; rssMB: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    const out = spawnSync('/usr/bin/time', ['-f', '%M', binary, 'admin', 'run', 'logs', big.id, '--data', data], { encoding: 'utf8', maxBuffer: 1 << 28 });
    terminal.push({ ms: performance.now() - t, rssMB: Number(out.stderr.trim().split('\n').pop()) / 1024 });
    if (!out.stdout.includes(`line ${bigLines} `)) throw new Error('run logs did not print the whole log');
  }

  const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  console.log(`console benchmark: ${rounds} rounds, load average ${load1} (machine shared)`);
  console.log(`first load, cold (sign-in page, fresh profile): ${f(median(cold.map((x) => x.bytes)) / 1024)} KiB transferred (${f(median(cold.map((x) => x.decoded)) / 1024)} KiB unpacked), usable after ${f(median(cold.map((x) => x.ready)))} ms median`);
  console.log(`signed in, pool list with data (files cached): ${f(median(warm.map((x) => x.bytes)) / 1024)} KiB transferred, usable ${f(median(warm.map((x) => x.ready)))} ms, data on screen ${f(median(warm.map((x) => x.data)))} ms median`);
  console.log(`peer: launcher admin pool list: ${f(median(cliList))} ms median`);
  console.log(`stored → painted (${toPaint.length} lines): p50 ${f(median(toPaint))} ms, p90 ${f(pct(toPaint, 0.9))} ms, max ${f(Math.max(...toPaint))} ms`);
  console.log(`peer: stored → printed by run logs --follow (${toPrint.length} lines): p50 ${f(median(toPrint))} ms, p90 ${f(pct(toPrint, 0.9))} ms, max ${f(Math.max(...toPrint))} ms`);
  console.log(`${bigLines}-line run page: first log row ${f(median(pages.map((x) => x.first)))} ms, last line painted ${f(median(pages.map((x) => x.last)))} ms, JS heap ${f(median(pages.map((x) => x.heapMB)))} MB, DOM nodes ${median(pages.map((x) => x.nodes))}`);
  console.log(`peer: launcher admin run logs > pipe: ${f(median(terminal.map((x) => x.ms)))} ms, peak RSS ${f(median(terminal.map((x) => x.rssMB)))} MB`);
  if (process.env.CONSOLE_BENCH_HOLD) {
    // Keep the server up so the terminal peer can be timed from outside, e.g.
    // /usr/bin/time -v <binary> admin run logs RUN --data DATA > /dev/null
    console.log(`holding: ${binary} admin run logs ${big.id} --data ${data}   (Ctrl-C or SIGTERM ends it)`);
    await new Promise<void>((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
  }
} finally {
  for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1500));
  rmSync(work, { recursive: true, force: true });
}
