// Drift detection on a schedule. Cron expressions are checked as a pure core;
// then a real server (in this process, so its clock can be stepped) on a real
// data directory fires each slot once, also across a restart, collapses slots
// missed while it was down, and skips with a log line while a tracked run holds
// the stack. With a real launcher and Terraform, a scheduled proposed run that
// plans changes marks the run and the stack as drifted, and --reconcile queues
// a tracked run that clears it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CronError, dueSlot, nextSlot, parseCron } from '../lib/schedule/cron.ts';
import { startServer, type RunningServer } from '../lib/server/app.ts';
import { createServerLogger } from '../lib/server/log.ts';
import { DockerClient } from '../lib/docker/client.ts';
import { publicKeyPem, parsePoolPrivateKey } from '../lib/keys.ts';
import { httpsRequest, testCa, type HttpResult } from './helpers/server.ts';
import { removeWorkerContainers } from './helpers/docker.ts';
import { sealToKey, seedPoolKey, startLauncher, tarOf, tempDir, type LauncherProcess } from './helpers/launcher.ts';
import { TERRAFORM_IMAGE, ensureTerraformImage } from './helpers/terraform.ts';

const T = (s: string): number => Date.parse(s);
const I = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

test('cron: five or six fields, UTC, names, steps, ranges, shorthands; errors name the field', () => {
  assert.is(I(nextSlot(parseCron('0 3 * * *'), T('2026-12-02T02:18:00Z'))), '2026-12-02T03:00:00.000Z');
  assert.is(I(nextSlot(parseCron('0 3 * * *'), T('2026-12-02T03:00:00Z'))), '2026-12-03T03:00:00.000Z', 'strictly after');
  assert.is(I(nextSlot(parseCron('*/15 * * * *'), T('2026-12-02T02:16:10Z'))), '2026-12-02T02:30:00.000Z');
  assert.is(I(nextSlot(parseCron('30 9 * * mon-fri'), T('2026-12-05T10:00:00Z'))), '2026-12-07T09:30:00.000Z', 'Saturday to Monday');
  assert.is(I(nextSlot(parseCron('0 0 1 jan *'), T('2026-12-02T00:00:00Z'))), '2027-01-01T00:00:00.000Z');
  assert.is(I(nextSlot(parseCron('@hourly'), T('2026-12-02T02:18:00Z'))), '2026-12-02T03:00:00.000Z');
  assert.is(I(nextSlot(parseCron('*/5 * * * * *'), T('2026-12-02T02:18:01Z'))), '2026-12-02T02:18:05.000Z', 'seconds first');
  assert.is(I(nextSlot(parseCron('0 0 13 * 5'), T('2026-12-02T00:00:00Z'))), '2026-12-04T00:00:00.000Z', 'day-of-month or day-of-week');
  assert.is(I(nextSlot(parseCron('0 0 30 2 *'), T('2026-01-01T00:00:00Z'))), undefined, 'February 30th never comes');
  assert.is(I(nextSlot(parseCron('0 12 * * 7'), T('2026-12-02T00:00:00Z'))), '2026-12-06T12:00:00.000Z', '7 is Sunday too');
  assert.throws(() => parseCron('0 3 * *'), /has 4 fields: expected 5/);
  assert.throws(() => parseCron('61 * * * *'), /minute "61" is out of range 0-59/);
  assert.throws(() => parseCron('0 0 * smarch *'), /month "smarch" is not a number or a name/);
  try { parseCron('*/0 * * * *'); assert.unreachable(); } catch (e) { assert.instance(e, CronError); assert.match((e as Error).message, /step "0" must be at least 1/); }
  // Missed slots collapse into the latest one.
  const every10 = parseCron('*/10 * * * *');
  assert.is(I(dueSlot(every10, T('2026-01-01T00:00:00Z'), T('2026-01-01T00:09:59Z'))), undefined);
  assert.is(I(dueSlot(every10, T('2026-01-01T00:00:00Z'), T('2026-01-01T00:10:00Z'))), '2026-01-01T00:10:00.000Z');
  assert.is(I(dueSlot(every10, T('2026-01-01T00:10:00Z'), T('2026-01-01T01:05:00Z'))), '2026-01-01T01:00:00.000Z');
});

// ------------------------------------------------------------ a real server with a stepped clock

let clock = T('2026-01-01T00:00:00Z');
let dataDir: string;
let server: RunningServer | undefined;
let logText = '';
let port = 0;
let adminToken = '';
const dirs: Array<{ remove(): void }> = [];
const launchers: LauncherProcess[] = [];
const docker = new DockerClient();

async function boot(): Promise<RunningServer> {
  const log = createServerLogger({ stream: new Writable({ write(c, _e, cb) { logText += c; cb(); } }) });
  server = await startServer({
    dataDir, listenHost: '127.0.0.1', listenPort: port, leaseMs: 30_000, graceMs: 120_000, maxWorkspaceBytes: 256 << 20,
    log, stdout: new Writable({ write(_c, _e, cb) { cb(); } }),
    now: () => clock, scheduleTickMs: 3_600_000,
  });
  adminToken = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  port = server.port; // the same port after a restart: tokens name the server's URL
  return server;
}

function admin(method: string, path: string, body?: unknown): Promise<HttpResult> {
  return httpsRequest(server!.url, method, path, { ca: readFileSync(join(dataDir, 'ca.crt'), 'utf8'), headers: { authorization: `Bearer ${adminToken}` }, body });
}

async function scheduledRuns(stack: string): Promise<any[]> {
  const r = await admin('GET', `/v1/runs?stack=${stack}`);
  return r.body.runs.filter((x: any) => String(x.trigger ?? '').startsWith('schedule:'));
}

test.before(async () => {
  dataDir = join(mkdtempSync(join(tmpdir(), 'launcher-schedules-')), 'data');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const ca = testCa();
  writeFileSync(join(dataDir, 'ca.key'), ca.keyPem, { mode: 0o600 });
  writeFileSync(join(dataDir, 'ca.crt'), ca.certPem);
  await boot();
});

let key: ReturnType<typeof seedPoolKey>;
let poolToken = '';
let poolId = '';

test('a schedule fires once per slot, never twice across a restart, and collapses slots missed while the server was down', async () => {
  key = seedPoolKey(2048);
  const p = await admin('POST', '/v1/pools', { name: 'sched', csr: key.csrPem });
  assert.is(p.status, 201, p.text);
  poolId = p.body.pool.id;
  poolToken = p.body.token;
  const st = await admin('POST', '/v1/stacks', { name: 'drifty', pool: poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform' } });
  assert.is(st.status, 201, st.text);
  const bad = await admin('POST', '/v1/stacks/drifty/schedules', { cron: '0 25 * * *' });
  assert.is(bad.status, 400);
  assert.match(bad.body.error.message, /hour "25" is out of range 0-23/);
  const sch = await admin('POST', '/v1/stacks/drifty/schedules', { cron: '*/10 * * * *' });
  assert.is(sch.status, 201, sch.text);
  assert.is(sch.body.schedule.nextSlot, '2026-01-01T00:10:00.000Z');

  clock = T('2026-01-01T00:09:00Z');
  await server!.schedules.tick();
  assert.is((await scheduledRuns('drifty')).length, 0);
  const first = await admin('POST', '/v1/stacks/drifty/runs', { proposed: true, workspace: (await sealToKey(await tarOf({ 'main.tf': '' }), publicKeyPem(parsePoolPrivateKey(key.keyPem)))).toString('base64') });
  assert.is(first.status, 201, first.text);
  await admin('POST', `/v1/runs/${first.body.run.id}/cancel`);
  clock = T('2026-01-01T00:10:30Z');
  await server!.schedules.tick();
  await server!.schedules.tick();
  let runs = await scheduledRuns('drifty');
  assert.is(runs.length, 1, 'one run for the 00:10 slot, however often the server looks');
  assert.is(runs[0].proposed, true);
  assert.is(runs[0].trigger, `schedule:${sch.body.schedule.id}`);
  assert.match(logText, /Schedule fired/);

  // Restart within the same slot: the slot was recorded, it does not fire again.
  await server!.close();
  await boot();
  await server!.schedules.tick();
  assert.is((await scheduledRuns('drifty')).length, 1, 'no second run for the same slot after a restart');
  const listed = await admin('GET', '/v1/stacks/drifty/schedules');
  assert.is(listed.body.schedules[0].lastSlot, '2026-01-01T00:10:00.000Z');

  // Down from 00:11 to 01:05: the missed slots make one run, not five.
  await server!.close();
  clock = T('2026-01-01T01:05:00Z');
  await boot();
  await server!.schedules.tick();
  runs = await scheduledRuns('drifty');
  assert.is(runs.length, 2);
  assert.is((await admin('GET', '/v1/stacks/drifty/schedules')).body.schedules[0].lastSlot, '2026-01-01T01:00:00.000Z');
  // The queued runs have no worker here: cancel them so the stack is free.
  for (const r of runs) await admin('POST', `/v1/runs/${r.id}/cancel`);
  const del = await admin('DELETE', `/v1/schedules/${sch.body.schedule.id}`);
  assert.is(del.status, 200);
  // A stack that never had a source skips its slot with a log line.
  assert.is((await admin('POST', '/v1/stacks', { name: 'empty', pool: poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform' } })).status, 201);
  assert.is((await admin('POST', '/v1/stacks/empty/schedules', { cron: '0 * * * *' })).status, 201);
  clock = T('2026-01-01T02:00:00Z');
  await server!.schedules.tick();
  assert.is((await scheduledRuns('drifty')).length, 2, 'a deleted schedule never fires');
  assert.is((await scheduledRuns('empty')).length, 0);
  assert.match(logText, /Schedule skipped: the stack has no source yet/);
});

async function waitRun(id: string, pred: (r: any) => boolean, ms = 120_000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const r = (await admin('GET', `/v1/runs/${id}`)).body.run;
    if (pred(r)) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${id}: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}
const done = (r: any) => ['FINISHED', 'FAILED', 'CANCELED', 'DISCARDED'].includes(r.state);

test('drift: a scheduled proposed run that plans changes marks the run and the stack; --reconcile queues a tracked run; a held stack skips its slot', async () => {
  await ensureTerraformImage(docker);
  const d = tempDir('launcher-sched-launcher-');
  dirs.push(d);
  const l = startLauncher({ token: poolToken, keyB64: key.keyB64, stateDir: d.path });
  launchers.push(l);
  const wid = (JSON.parse(await l.waitFor(/Registered with the server/)) as { workerId: string }).workerId;
  const pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
  const files = { 'main.tf': 'resource "terraform_data" "a" {\n  input = "a"\n}\nresource "terraform_data" "b" {\n  input = "b"\n}\n' };
  const st = await admin('POST', '/v1/stacks', { name: 'reconciled', pool: poolId, image: TERRAFORM_IMAGE, tool: { name: 'terraform' } });
  assert.is(st.status, 201);
  const t1 = (await admin('POST', '/v1/stacks/reconciled/runs', { proposed: false, workspace: (await sealToKey(await tarOf(files), pub)).toString('base64') })).body.run.id;
  await waitRun(t1, (r) => r.state === 'UNCONFIRMED' || done(r));

  // While the tracked run holds the state (waiting for confirmation), a slot is skipped.
  const sch = await admin('POST', '/v1/stacks/reconciled/schedules', { cron: '0 * * * *', reconcile: true });
  assert.is(sch.status, 201);
  clock = T('2026-01-01T03:00:00Z');
  await server!.schedules.tick();
  assert.is((await scheduledRuns('reconciled')).length, 0);
  assert.match(logText, new RegExp(`Schedule skipped: a tracked run holds the stack's state.*${t1}`));
  await admin('POST', `/v1/runs/${t1}/confirm`);
  assert.is((await waitRun(t1, done)).state, 'FINISHED');

  // Someone changes the infrastructure behind the stack's back: here, resource b
  // vanishes from the state (pulled, opened with age, edited, sealed and pushed by the CLI path).
  const pulled = await admin('GET', '/v1/stacks/reconciled/state/current');
  const w = tempDir('launcher-sched-state-');
  dirs.push(w);
  writeFileSync(join(w.path, 's.age'), pulled.raw);
  const stJson = JSON.parse(execFileSync('age', ['-d', '-i', key.keyPath, join(w.path, 's.age')], { encoding: 'utf8' }));
  stJson.resources = stJson.resources.filter((r: any) => r.name !== 'b');
  stJson.serial += 1;
  const edited = await sealToKey(JSON.stringify(stJson), pub);
  const pushed = await admin('PUT', `/v1/stacks/reconciled/state?base=1&serial=${stJson.serial}&lineage=${stJson.lineage}`, edited);
  assert.is(pushed.status, 201, pushed.text);

  clock = T('2026-01-01T04:00:00Z');
  await server!.schedules.tick();
  const [drift] = await scheduledRuns('reconciled');
  assert.ok(drift, 'the 04:00 slot queued a proposed run');
  const dr = await waitRun(drift.id, done);
  assert.is(dr.state, 'FINISHED', JSON.stringify(dr));
  assert.is(dr.drifted, true);
  assert.is(dr.changes.add, 1);
  assert.equal(dr.changes.resources.map((r: any) => r.address), ['terraform_data.b']);
  let stack = (await admin('GET', '/v1/stacks/reconciled')).body.stack;
  assert.is(stack.drifted, true);
  assert.is(stack.driftedRun, drift.id);

  // --reconcile: a tracked run of the same source was queued; it plans the same change.
  let reconcile: any;
  for (let i = 0; i < 100 && !reconcile; i++) {
    reconcile = (await admin('GET', '/v1/runs?stack=reconciled')).body.runs.find((r: any) => r.trigger === `reconcile:${drift.id}`);
    if (!reconcile) await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(reconcile, 'a tracked run was queued to reconcile');
  assert.is(reconcile.proposed, false);
  const rr = await waitRun(reconcile.id, (r) => r.state === 'UNCONFIRMED' || done(r));
  assert.is(rr.state, 'UNCONFIRMED', JSON.stringify(rr));
  assert.is(rr.changes.add, 1);
  await admin('POST', `/v1/runs/${reconcile.id}/confirm`);
  assert.is((await waitRun(reconcile.id, done)).state, 'FINISHED');
  stack = (await admin('GET', '/v1/stacks/reconciled')).body.stack;
  assert.is(stack.drifted, false, 'the tracked run that applied cleared the drift');
  assert.is(stack.stateVersion, 3);
  await removeWorkerContainers(docker, wid).catch(() => {});
});

test.after(async () => {
  for (const l of launchers) { l.kill('SIGTERM'); await l.exitCode(); }
  await server?.close();
  rmSync(join(dataDir, '..'), { recursive: true, force: true });
  for (const d of dirs) d.remove();
});

test.run();
