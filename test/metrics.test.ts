// GET /metrics, end to end: a real `launcher server` subprocess with a plain
// metrics listener (--metrics-listen), read with curl and checked with
// promtool (Debian's prometheus package) while pools, workers, held polls,
// runs, logs, workspaces and a backup go by; the figures on the page must be
// the ones those actions imply. The exposition format's pure parts are
// checked directly (escaping, cumulative buckets).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../lib/metrics/registry.ts';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';

let srv: TestServer;
let tmp: string;
let metricsUrl: string;
const pools: Record<string, { id: string; cert: ClientCert }> = {};
const SEALED = (n: number): Buffer => Buffer.concat([Buffer.from('age-encryption.org/v1\n-> stand-in\n'), Buffer.alloc(n, 7)]);

function promtool(page: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: page, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is required (Debian package prometheus, see scripts/setup-host.sh): ${r.error.message}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function curl(args: string[]): string {
  return execFileSync('curl', ['-sS', ...args], { encoding: 'utf8' });
}

/** The scraper's view: the plain listener, read with curl, checked by promtool. */
function scrape(): Map<string, number> {
  const page = curl(['-f', metricsUrl]);
  const check = promtool(page);
  assert.is(check.code, 0, `promtool check metrics:\n${check.out}\n${page}`);
  assert.is(check.out, '', `promtool has remarks:\n${check.out}`);
  const out = new Map<string, number>();
  for (const line of page.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const val = (m: Map<string, number>, series: string): number => {
  const v = m.get(series);
  if (v === undefined) throw new Error(`No series ${series} on the page:\n${[...m.keys()].join('\n')}`);
  return v;
};

async function register(pool: string, meta: Record<string, string>): Promise<string> {
  const r = await srv.worker(pools[pool]!.cert, 'POST', '/v1/worker/register', { workerId: null, metadata: meta, version: '0.1.0', host: {} });
  assert.is(r.status, 200, r.text);
  return r.body.workerId;
}

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'metrics-test-'));
  srv = await startTestServer({ args: ['--metrics-listen', '127.0.0.1:0'] });
  const port = Number(/"msg":"Metrics listening".*?"metricsPort":(\d+)/.exec(srv.stderr)?.[1]);
  assert.ok(port > 0, srv.stderr);
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  for (const name of ['alpha', 'beta']) {
    const k = opensslCsr(tmp, name);
    const r = await srv.admin('POST', '/v1/pools', { name, csr: k.csrPem });
    assert.is(r.status, 201, r.text);
    pools[name] = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem } };
  }
  assert.is((await srv.admin('POST', '/v1/stacks', { name: 'app', pool: pools.alpha!.id, phases: [{ name: 'plan', script: 'true' }] })).status, 201);
  assert.is((await srv.admin('POST', '/v1/stacks', { name: 'gated', pool: pools.alpha!.id, phases: [{ name: 'apply', script: 'true', confirm: true }] })).status, 201);
});

test.after(async () => {
  await srv?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('the main listener wants the admin token; the plain listener serves only /metrics', async () => {
  const code = (args: string[]) => curl(['-o', '/dev/null', '-w', '%{http_code}', ...args]);
  assert.is(code(['--cacert', srv.caPath, `${srv.url}/metrics`]), '401');
  assert.is(code(['--cacert', srv.caPath, '-H', 'Authorization: Bearer wrong', `${srv.url}/metrics`]), '401');
  const page = curl(['-f', '--cacert', srv.caPath, '-H', `Authorization: Bearer ${srv.adminToken}`, `${srv.url}/metrics`]);
  assert.match(page, /^# HELP launcher_pending_runs /m);
  assert.is(promtool(page).code, 0);
  const headers = curl(['-D', '-', '-o', '/dev/null', metricsUrl]);
  assert.match(headers, /content-type: text\/plain; version=0\.0\.4; charset=utf-8/i);
  assert.is(code([metricsUrl.replace('/metrics', '/v1/pools')]), '404');
  assert.is(code(['-X', 'POST', metricsUrl]), '405');
});

test('pending runs, workers by status and held long-polls follow what happens', async () => {
  let m = scrape();
  assert.is(val(m, 'launcher_pending_runs{pool="alpha"}'), 0, 'a pool with nothing is there at 0');
  assert.is(val(m, 'launcher_pending_runs{pool="beta"}'), 0);
  for (let i = 0; i < 3; i++) assert.is((await srv.admin('POST', '/v1/stacks/app/runs', {})).status, 201);
  assert.is((await srv.admin('POST', '/v1/stacks/gated/runs', {})).status, 201);
  const busy = await register('alpha', { instance_id: 'i-busy' });
  const idle = await register('alpha', { instance_id: 'i-idle' });
  const drained = await register('alpha', { instance_id: 'i-drained' });
  await register('beta', { instance_id: 'i-beta' });
  assert.is((await srv.admin('POST', '/v1/workers/drain', { ids: [drained] })).status, 200);
  m = scrape();
  assert.is(val(m, 'launcher_pending_runs{pool="alpha"}'), 3, 'three QUEUED; the UNCONFIRMED one waits for a person');
  assert.is(val(m, 'launcher_active_runs{pool="alpha",state="UNCONFIRMED"}'), 1);
  assert.is(val(m, 'launcher_workers{pool="alpha",status="IDLE"}'), 2);
  assert.is(val(m, 'launcher_workers{pool="alpha",status="DRAINED"}'), 1);
  assert.is(val(m, 'launcher_workers{pool="beta",status="IDLE"}'), 1);

  // One worker takes a run: BUSY, one fewer pending.
  const a = await srv.worker(pools.alpha!.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: busy, accept: true, runId: null });
  assert.ok(a.body.assignment, a.text);
  m = scrape();
  assert.is(val(m, 'launcher_pending_runs{pool="alpha"}'), 2);
  assert.is(val(m, 'launcher_workers{pool="alpha",status="BUSY"}'), 1);
  assert.is(val(m, 'launcher_active_runs{pool="alpha",state="RUNNING"}'), 1);
  assert.is(val(m, 'launcher_run_queue_wait_seconds_count{pool="alpha"}'), 1);

  // A beta worker's poll is held (nothing queued in beta) while we scrape.
  const betaW = await register('beta', { instance_id: 'i-beta-2' });
  const held = srv.worker(pools.beta!.cert, 'POST', '/v1/worker/poll?wait=3', { workerId: betaW, accept: true, runId: null });
  let seen = 0;
  for (let i = 0; i < 50 && seen === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    m = scrape();
    seen = val(m, 'launcher_long_polls_held');
  }
  assert.is(seen, 1);
  assert.is(val(m, 'launcher_waiting_workers{pool="beta"}'), 1);
  assert.is((await held).body.assignment, null);
  assert.is(val(scrape(), 'launcher_long_polls_held'), 0);
  void idle;
});

test('outcomes, durations, log bytes, sealed bytes and backups are counted', async () => {
  const before = scrape();
  const w = await register('alpha', { instance_id: 'i-logs' });
  const a = (await srv.worker(pools.alpha!.cert, 'POST', '/v1/worker/poll?wait=5', { workerId: w, accept: true, runId: null })).body.assignment;
  assert.ok(a);
  const run = a.runId;
  assert.is((await srv.worker(pools.alpha!.cert, 'POST', `/v1/worker/runs/${run}/phases/0/start`, { workerId: w })).status, 200);
  const chunks = ['first line\n', 'second, longer line\n', 'x'.repeat(5000)];
  for (let i = 0; i < chunks.length; i++) {
    assert.is((await srv.worker(pools.alpha!.cert, 'POST', `/v1/worker/runs/${run}/phases/0/logs?seq=${i}`, Buffer.from(chunks[i]!))).status, 200);
  }
  assert.is((await srv.worker(pools.alpha!.cert, 'PUT', `/v1/worker/runs/${run}/phases/0/workspace`, SEALED(3000))).status, 200);
  assert.is((await srv.worker(pools.alpha!.cert, 'POST', `/v1/worker/runs/${run}/phases/0/result`, { workerId: w, outcome: 'failed', exitCode: 3, logSeq: 3 })).status, 200);
  // A queued run canceled by an admin ends too.
  const q = (await srv.admin('GET', '/v1/runs?state=QUEUED&limit=1')).body.runs[0].id;
  assert.is((await srv.admin('POST', `/v1/runs/${q}/cancel`)).status, 200);
  // A small workspace sent with a trigger (JSON form) is stored sealed too.
  assert.is((await srv.admin('POST', '/v1/stacks/app/runs', { workspace: SEALED(500).toString('base64') })).status, 201);

  const m = scrape();
  const delta = (s: string): number => val(m, s) - (before.get(s) ?? 0);
  assert.is(delta('launcher_log_bytes_ingested_total{pool="alpha"}'), chunks.reduce((n, c) => n + Buffer.byteLength(c), 0));
  assert.is(delta('launcher_run_outcomes_total{pool="alpha",state="FAILED"}'), 1);
  assert.is(delta('launcher_run_outcomes_total{pool="alpha",state="CANCELED"}'), 1);
  assert.is(delta('launcher_phase_outcomes_total{pool="alpha",outcome="failed"}'), 1);
  assert.is(val(m, 'launcher_run_duration_seconds_count{pool="alpha",state="FAILED"}'), 1);
  assert.is(val(m, 'launcher_run_duration_seconds_bucket{pool="alpha",state="FAILED",le="+Inf"}'), 1);
  assert.is(val(m, 'launcher_phase_duration_seconds_count{pool="alpha",outcome="failed"}'), 1);
  assert.ok(val(m, 'launcher_phase_duration_seconds_sum{pool="alpha",outcome="failed"}') >= 0);
  assert.is(delta('launcher_sealed_bytes_stored'), SEALED(3000).length + SEALED(500).length);
  assert.is(delta('launcher_sealed_files_stored'), 2);

  const file = join(tmp, 'm.tar');
  const b = curl(['-f', '-o', file, '-w', '%{http_code}', '--cacert', srv.caPath, '-X', 'POST', '-H', `Authorization: Bearer ${srv.adminToken}`, `${srv.url}/v1/backup`]);
  assert.is(b, '200');
  const after = scrape();
  assert.is(val(after, 'launcher_backups_total{result="ok"}'), 1);
  assert.ok(Math.abs(val(after, 'launcher_last_backup_timestamp_seconds') - Date.now() / 1000) < 120);
});

test('sealed bytes already on disk and the last backup time are there after a restart', async () => {
  const first = scrape();
  const before = val(first, 'launcher_sealed_bytes_stored');
  const backupAt = val(first, 'launcher_last_backup_timestamp_seconds');
  assert.ok(backupAt > 0);
  assert.ok(before > 0);
  await srv.restart();
  const port = Number(/"msg":"Metrics listening".*?"metricsPort":(\d+)/.exec(srv.stderr)?.[1]);
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  let now = 0;
  for (let i = 0; i < 50 && now !== before; i++) {
    now = val(scrape(), 'launcher_sealed_bytes_stored');
    if (now !== before) await new Promise((r) => setTimeout(r, 100));
  }
  assert.is(now, before);
  assert.is(val(scrape(), 'launcher_last_backup_timestamp_seconds'), backupAt);
});

test('exposition format: label values escaped, buckets cumulative, counters only go up', () => {
  const r = new Registry();
  const h = r.histogram('x_seconds', 'help with \\ and\nnewline', ['pool'], [1, 5]);
  h.observe({ pool: 'a"b\\c\nd' }, 0.5);
  h.observe({ pool: 'a"b\\c\nd' }, 3);
  h.observe({ pool: 'a"b\\c\nd' }, 7);
  const c = r.counter('y_total', 'a counter', ['k']);
  c.inc({ k: 'v' }, 2);
  assert.throws(() => c.inc({ k: 'v' }, -1), /only goes up/);
  assert.throws(() => c.inc({ other: 'v' }), /Unknown label "other"/);
  assert.throws(() => r.counter('z', 'no suffix'), /ends in _total/);
  const page = r.render();
  assert.ok(page.includes('# HELP x_seconds help with \\\\ and\\nnewline\n'));
  assert.ok(page.includes('x_seconds_bucket{pool="a\\"b\\\\c\\nd",le="1"} 1\n'));
  assert.ok(page.includes('x_seconds_bucket{pool="a\\"b\\\\c\\nd",le="5"} 2\n'));
  assert.ok(page.includes('x_seconds_bucket{pool="a\\"b\\\\c\\nd",le="+Inf"} 3\n'));
  assert.ok(page.includes('x_seconds_sum{pool="a\\"b\\\\c\\nd"} 10.5\n'));
  assert.ok(page.includes('y_total{k="v"} 2\n'));
  const check = promtool(page);
  assert.is(check.code, 0, check.out);
});

test.run();
