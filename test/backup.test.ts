// Online backup and restore, end to end: a real `launcher server` subprocess
// with pools, stacks, runs, sealed workspaces and logs; `launcher admin backup`
// as a subprocess while workers keep writing; the archive read by GNU tar and
// checked by sha256sum; `launcher server restore` into a new directory and a
// second server started on it that lists every pool and run, serves the same
// logs and workspaces, and accepts the original pool's client certificate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { runLauncher, type CliResult } from './helpers/cli.ts';
import { waitFor } from './helpers/wait.ts';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';


let srv: TestServer;
let tmp: string;
let pool: { id: string; cert: ClientCert };
let workerId: string;
const SEALED = (n: number): Buffer => Buffer.concat([Buffer.from('age-encryption.org/v1\n-> stand-in\n'), Buffer.alloc(n, n % 251)]);

const launcher = (args: string[]): Promise<CliResult> => runLauncher(args);

async function poll(): Promise<any> {
  const r = await srv.worker(pool.cert, 'POST', '/v1/worker/poll?wait=5', { workerId, accept: true, runId: null });
  assert.is(r.status, 200, r.text);
  return r.body.assignment;
}

/** Triggers a run on `stack`, takes it as the worker, ships `lines` log chunks and ends the phase (or leaves it running). */
async function runOnce(stack: string, o: { lines: number; workspace?: Buffer; finish: boolean }): Promise<string> {
  const t = await srv.admin('POST', `/v1/stacks/${stack}/runs`, o.workspace ? { workspace: o.workspace.toString('base64') } : {});
  assert.is(t.status, 201, t.text);
  const id = t.body.run.id;
  const a = await poll();
  assert.is(a.runId, id);
  assert.is((await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${id}/phases/0/start`, { workerId })).status, 200);
  for (let i = 0; i < o.lines; i++) {
    const r = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${id}/phases/0/logs?seq=${i}`, Buffer.from(`${id} line ${i}\n`));
    assert.is(r.status, 200, r.text);
  }
  if (o.finish) {
    const r = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${id}/phases/0/result`, { workerId, outcome: 'succeeded', exitCode: 0, logSeq: o.lines });
    assert.is(r.status, 200, r.text);
  }
  return id;
}

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'backup-test-'));
  srv = await startTestServer();
  const k = opensslCsr(tmp, 'backup');
  const r = await srv.admin('POST', '/v1/pools', { name: 'backup', csr: k.csrPem });
  assert.is(r.status, 201, r.text);
  pool = { id: r.body.pool.id, cert: { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem } };
  const k2 = opensslCsr(tmp, 'second');
  assert.is((await srv.admin('POST', '/v1/pools', { name: 'second', csr: k2.csrPem })).status, 201);
  const w = await srv.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: null, metadata: { instance_id: 'i-backup' }, version: '0.1.0', host: {} });
  workerId = w.body.workerId;
  for (const name of ['one', 'two']) {
    const s = await srv.admin('POST', '/v1/stacks', { name, pool: pool.id, phases: [{ name: 'plan', script: 'true' }] });
    assert.is(s.status, 201, s.text);
  }
});

test.after(async () => {
  await srv?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('backup while the server runs, restore into a new directory, and a server started on it has every pool, run, log and workspace', async () => {
  const finished: string[] = [];
  for (let i = 0; i < 6; i++) finished.push(await runOnce(i % 2 ? 'one' : 'two', { lines: 3 + i, workspace: SEALED(1000 + i), finish: true }));
  // One run still RUNNING with logs and a workspace of its own upload.
  const running = await runOnce('one', { lines: 2, finish: false });
  assert.is((await srv.worker(pool.cert, 'PUT', `/v1/worker/runs/${running}/phases/0/workspace`, SEALED(4242))).status, 200);
  // One queued run (no worker polling for it).
  const queued = (await srv.admin('POST', '/v1/stacks/two/runs', {})).body.run.id;

  // Writes keep coming while the backup is taken: log chunks of the running phase.
  let seq = 2;
  let writing = true;
  const writer = (async () => {
    while (writing) {
      const r = await srv.worker(pool.cert, 'POST', `/v1/worker/runs/${running}/phases/0/logs?seq=${seq}`, Buffer.from(`${running} line ${seq}\n`));
      assert.is(r.status, 200, r.text);
      seq++;
    }
  })();
  const file = join(tmp, 'b1.tar');
  const b = await launcher(['admin', '--data', srv.dataDir, 'backup', '-o', file]);
  writing = false;
  await writer;
  assert.is(b.code, 0, b.err);
  assert.match(b.out, /Backup written to .*b1\.tar .*: 2 pools, 2 stacks, 8 runs, 7 sealed workspaces/);
  assert.is(statSync(file).mode & 0o777, 0o600, 'the backup holds keys: private');
  assert.equal(readdirSync(tmp).filter((n) => n.includes('.tmp-')), [], 'no temp file left beside it');
  assert.equal(readdirSync(join(srv.dataDir, 'tmp')).filter((n) => n.startsWith('backup-')), [], 'the server removed its snapshot directory');

  // The archive as GNU tar and sha256sum see it.
  const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
  assert.is(names[0], 'launcher-backup.json');
  assert.is(names.at(-1), 'SHA256SUMS');
  for (const n of ['launcher.db', 'ca.key', 'ca.crt', 'server.key', 'server.crt', 'admin.token', `workspaces/${running}.age`, `logs/${finished[0]}/0.log`]) assert.ok(names.includes(n), n);
  const x = join(tmp, 'x');
  mkdirSync(x);
  execFileSync('tar', ['-xf', file, '-C', x]);
  const sumCheck = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: x, encoding: 'utf8' });
  assert.is(sumCheck.trim().split('\n').length, names.length - 1);
  assert.ok(sumCheck.trim().split('\n').every((l) => l.endsWith(': OK')), sumCheck);
  const manifest = JSON.parse(readFileSync(join(x, 'launcher-backup.json'), 'utf8'));
  assert.equal(manifest.counts, { pools: 2, stacks: 2, runs: 8, workers: 1, workspaces: 7, logs: 7, stateVersions: 0 });
  const end = JSON.parse(readFileSync(join(x, 'launcher-backup-end.json'), 'utf8'));
  assert.equal(end.problems, []);
  assert.is(end.files, names.length - 3);
  // The log of the phase written during the backup is exactly what the database copy records.
  const copy = new DatabaseSync(join(x, 'launcher.db'), { readOnly: true });
  const ph = copy.prepare('SELECT log_bytes, log_next_seq FROM phases WHERE run_id = ?').get(running) as { log_bytes: number; log_next_seq: number };
  copy.close();
  const shipped = readFileSync(join(x, 'logs', running, '0.log'), 'utf8');
  assert.is(Buffer.byteLength(shipped), ph.log_bytes);
  assert.is(shipped.trim().split('\n').length, ph.log_next_seq);
  assert.ok(ph.log_next_seq >= 2 && ph.log_next_seq <= seq);

  // A run created after the backup is not in it.
  const after = (await srv.admin('POST', '/v1/stacks/two/runs', {})).body.run.id;

  const dir = join(tmp, 'restored');
  const r = await launcher(['server', 'restore', file, '--data', dir]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /Restored .*restored from a backup taken .*: 2 pools, 2 stacks, 8 runs, 7 sealed workspaces, 7 log files/);
  assert.is(statSync(dir).mode & 0o777, 0o700);
  for (const f of ['ca.key', 'server.key', 'admin.token', 'launcher.db']) assert.is(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  assert.is(statSync(join(dir, 'ca.crt')).mode & 0o777, 0o644);

  const restored = await startTestServer({ dataDir: dir });
  try {
    assert.is(restored.adminToken, srv.adminToken, 'the same admin token works');
    const pools = (await restored.admin('GET', '/v1/pools')).body.pools.map((p: { name: string }) => p.name).sort();
    assert.equal(pools, ['backup', 'second']);
    const runs = (await restored.admin('GET', '/v1/runs?limit=100')).body.runs;
    const ids = new Set(runs.map((x: { id: string }) => x.id));
    for (const id of [...finished, running, queued]) assert.ok(ids.has(id), `run ${id} restored`);
    assert.not.ok(ids.has(after), 'a run made after the backup is not there');
    for (const id of finished) {
      const logs = await restored.admin('GET', `/v1/runs/${id}/logs`);
      assert.is(logs.text, (await srv.admin('GET', `/v1/runs/${id}/logs`)).text);
      const ws = await restored.admin('GET', `/v1/runs/${id}/workspace`);
      assert.is(ws.status, 200);
      assert.ok(ws.raw.equals((await srv.admin('GET', `/v1/runs/${id}/workspace`)).raw));
    }
    assert.is((await restored.admin('GET', `/v1/runs/${running}/workspace`)).raw.length, SEALED(4242).length);
    // Same CA: the original pool's client certificate is accepted.
    const again = await restored.worker(pool.cert, 'POST', '/v1/worker/register', { workerId: null, metadata: {}, version: '0.1.0', host: {} });
    assert.is(again.status, 200, again.text);
  } finally {
    await restored.terminate();
  }
});

test('managed state versions (terraform stacks) are in the backup and come back byte for byte', async () => {
  const c = await launcher(['admin', '--data', srv.dataDir, 'stack', 'create', 'tfstate', '--pool', pool.id, '--tool', 'terraform', '--image', 'launcher-test/terraform:1.11']);
  assert.is(c.code, 0, c.err);
  const v1 = SEALED(1111);
  const v2 = SEALED(2222);
  assert.is((await srv.admin('PUT', '/v1/stacks/tfstate/state?base=none&serial=1&lineage=abc', v1)).status, 201);
  assert.is((await srv.admin('PUT', '/v1/stacks/tfstate/state?base=1&serial=2&lineage=abc', v2)).status, 201);
  const file = join(tmp, 'b-state.tar');
  const b = await launcher(['admin', '--data', srv.dataDir, 'backup', '-o', file, '--json']);
  assert.is(b.code, 0, b.err);
  assert.is(JSON.parse(b.out).manifest.counts.stateVersions, 2);
  const stack = (await srv.admin('GET', '/v1/stacks/tfstate/state')).body.stack;
  const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
  assert.ok(names.includes(`state/${stack}/1.age`) && names.includes(`state/${stack}/2.age`), names.filter((n) => n.startsWith('state/')).join(','));
  const dir = join(tmp, 'restored-state');
  const r = await launcher(['server', 'restore', file, '--data', dir]);
  assert.is(r.code, 0, r.err);
  const restored = await startTestServer({ dataDir: dir });
  try {
    const list = (await restored.admin('GET', '/v1/stacks/tfstate/state')).body;
    assert.is(list.current, 2);
    assert.ok((await restored.admin('GET', '/v1/stacks/tfstate/state/1')).raw.equals(v1));
    assert.ok((await restored.admin('GET', '/v1/stacks/tfstate/state/current')).raw.equals(v2));
  } finally {
    await restored.terminate();
  }
});

test('restore refuses a cut-short, altered or foreign file, and a directory that is not empty, and leaves nothing behind', async () => {
  const file = join(tmp, 'b2.tar');
  const b = await launcher(['admin', '--data', srv.dataDir, 'backup', '-o', file]);
  assert.is(b.code, 0, b.err);
  const whole = readFileSync(file);

  const cut = join(tmp, 'cut.tar');
  writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.7)));
  const r1 = await launcher(['server', 'restore', cut, '--data', join(tmp, 'r1')]);
  assert.is(r1.code, 1, r1.err);
  assert.match(r1.err, /(Damaged|Incomplete) backup/);
  assert.not.ok(existsSync(join(tmp, 'r1')));

  // One byte of the database changed: its checksum no longer matches.
  const altered = Buffer.from(whole);
  const db = altered.indexOf(Buffer.from('SQLite format 3\0'));
  assert.ok(db > 0);
  altered[db + 5000] = altered[db + 5000]! ^ 0xff;
  const alt = join(tmp, 'alt.tar');
  writeFileSync(alt, altered);
  const r2 = await launcher(['server', 'restore', alt, '--data', join(tmp, 'r2')]);
  assert.is(r2.code, 1);
  assert.match(r2.err, /the SHA-256 of "launcher\.db" does not match SHA256SUMS/);
  assert.not.ok(existsSync(join(tmp, 'r2')));

  // A tar that is not a backup (made by GNU tar from an ordinary file).
  writeFileSync(join(tmp, 'notes.txt'), 'hello');
  execFileSync('tar', ['-cf', join(tmp, 'foreign.tar'), '-C', tmp, 'notes.txt']);
  const r3 = await launcher(['server', 'restore', join(tmp, 'foreign.tar'), '--data', join(tmp, 'r3')]);
  assert.is(r3.code, 1);
  assert.match(r3.err, /Not a launcher backup: unexpected entry "notes\.txt"/);

  mkdirSync(join(tmp, 'busy'));
  writeFileSync(join(tmp, 'busy', 'launcher.db'), 'x');
  const r4 = await launcher(['server', 'restore', file, '--data', join(tmp, 'busy')]);
  assert.is(r4.code, 2);
  assert.match(r4.err, /Cannot restore into .*busy: it is not empty/);
  assert.is(readFileSync(join(tmp, 'busy', 'launcher.db'), 'utf8'), 'x');

  const r5 = await launcher(['server', 'restore', join(tmp, 'nope.tar'), '--data', join(tmp, 'r5')]);
  assert.is(r5.code, 2);
  assert.match(r5.err, /Cannot read the backup .*nope\.tar: no such file/);
  assert.equal(readdirSync(tmp).filter((n) => n.includes('.restore-')), [], 'no staging directory left');
});

test('backup over the admin API with curl: the token is required, and a second backup at the same time is refused', async () => {
  const noToken = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', srv.caPath, '-X', 'POST', `${srv.url}/v1/backup`], { encoding: 'utf8' });
  assert.is(noToken, '401');
  // Start one backup and keep it open (curl reads slowly; a 24 MB workspace
  // makes the archive larger than the socket buffers), then ask for another.
  const big = await srv.admin('POST', '/v1/stacks/two/runs', SEALED(24 * 1024 * 1024));
  assert.is(big.status, 201, big.text);
  const slow = spawn('curl', ['-s', '--limit-rate', '1k', '-o', '/dev/null', '--cacert', srv.caPath, '-X', 'POST', '-H', `Authorization: Bearer ${srv.adminToken}`, `${srv.url}/v1/backup`]);
  const snapshots = (): string[] => readdirSync(join(srv.dataDir, 'tmp')).filter((n) => n.startsWith('backup-'));
  try {
    // The first backup has begun once its snapshot directory exists (it stays
    // until the slow reader is done). Asking before that would start a second
    // backup rather than be refused, so wait for it, however loaded the machine.
    await waitFor(() => snapshots().length === 1 || slow.exitCode !== null, 'the first backup to start');
    assert.is(slow.exitCode, null, 'the slow backup ended before a second one was asked for');
    const second = await srv.admin('POST', '/v1/backup');
    assert.is(second.status, 409);
    assert.is(second.body.error.code, 'BACKUP_RUNNING');
  } finally {
    slow.kill('SIGKILL');
  }
  // The aborted stream frees the slot and its snapshot directory.
  await waitFor(() => snapshots().length === 0, 'the aborted backup to remove its snapshot');
  const b = await launcher(['admin', '--data', srv.dataDir, 'backup', '-o', join(tmp, 'b3.tar'), '--json']);
  assert.is(b.code, 0, b.err);
  assert.is(JSON.parse(b.out).manifest.format, 'launcher-backup');
});

test('a file the database refers to but the data directory lacks is reported, and the backup is still written and restorable', async () => {
  for (const q of (await srv.admin('GET', '/v1/runs?state=QUEUED')).body.runs) await srv.admin('POST', `/v1/runs/${q.id}/cancel`);
  const victim = await runOnce('one', { lines: 4, workspace: SEALED(700), finish: true });
  rmSync(join(srv.dataDir, 'workspaces', `${victim}.age`));
  const log = join(srv.dataDir, 'logs', victim, '0.log');
  writeFileSync(log, readFileSync(log).subarray(0, 5));
  const file = join(tmp, 'b4.tar');
  const b = await launcher(['admin', '--data', srv.dataDir, 'backup', '-o', file]);
  assert.is(b.code, 0, b.err);
  assert.match(b.err, new RegExp(`Warning: .*: workspaces/${victim}\\.age: missing`));
  assert.match(b.err, new RegExp(`Warning: .*: logs/${victim}/0\\.log: shorter on disk than the \\d+ bytes the database records`));
  const dir = join(tmp, 'restored-4');
  const r = await launcher(['server', 'restore', file, '--data', dir]);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /Warning: the backup lacks a file its database refers to/);
  assert.is(readFileSync(join(dir, 'logs', victim, '0.log'), 'utf8'), readFileSync(log, 'utf8'));
});

test.run();
