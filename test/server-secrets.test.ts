// The server stores sealed state it cannot open: a run with a secret env value
// and a workspace marker file, both sealed to the pool's key (with the stock
// `age` CLI and with our age module), goes through the server; afterwards no
// file in the data directory, nor the server's log, holds either plaintext.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { createSealStream, sshRsaPublicLine, sshRsaRecipient } from '../lib/age/index.ts';
import { opensslCsr, startTestServer, tokenCertificate, type TestServer } from './helpers/server.ts';

let srv: TestServer;
let dir: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'server-secrets-test-'));
  srv = await startTestServer();
});

test.after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function allFiles(root: string): string[] {
  return readdirSync(root).flatMap((n) => {
    const p = join(root, n);
    return statSync(p).isDirectory() ? allFiles(p) : [p];
  });
}

test('secret env and workspace plaintext never reach the data directory or the log', async () => {
  const secret = `S3CRET-${randomBytes(8).toString('hex')}`;
  const marker = `WS-MARKER-${randomBytes(8).toString('hex')}`;
  const k = opensslCsr(dir, 'sealed');
  const created = await srv.admin('POST', '/v1/pools', { name: 'sealed', csr: k.csrPem });
  const pool = created.body.pool;
  const cert = { certPem: tokenCertificate(created.body.token), keyPem: k.keyPem };
  const publicKeyPem: string = pool.keys[0].publicKeyPem;

  // Secret env sealed by the stock age CLI to the pool's ssh-rsa recipient.
  const recipients = join(dir, 'recipients.txt');
  writeFileSync(recipients, sshRsaPublicLine(publicKeyPem) + '\n');
  const secretEnv = execFileSync('age', ['-R', recipients], { input: JSON.stringify({ DB_PASSWORD: secret }) });
  const st = await srv.admin('POST', '/v1/stacks', {
    name: 'sealed-stack', pool: pool.id, env: { PLAIN: 'visible' }, secretEnv: secretEnv.toString('base64'),
    phases: [{ name: 'plan', script: 'cat marker.txt' }, { name: 'apply', script: 'true' }],
  });
  assert.is(st.status, 201, st.text);
  // Plaintext in secretEnv is refused rather than stored.
  const plain = await srv.admin('PATCH', '/v1/stacks/sealed-stack', { secretEnv: Buffer.from(JSON.stringify({ DB_PASSWORD: secret })).toString('base64') });
  assert.is(plain.status, 400);

  // Workspace: a tar holding the marker, sealed with our age module, sent raw.
  const ws = join(dir, 'ws');
  mkdirSync(ws);
  writeFileSync(join(ws, 'marker.txt'), marker);
  const tar = execFileSync('tar', ['-C', ws, '-cf', '-', '.']);
  const sealedWs = await buffer(Readable.from([tar]).pipe(createSealStream([sshRsaRecipient(publicKeyPem)])));
  const trig = await srv.admin('POST', '/v1/stacks/sealed-stack/runs?proposed=0', sealedWs);
  assert.is(trig.status, 201, trig.text);
  const runId = trig.body.run.id;

  // A worker gets both sealed blobs and, holding the pool key, can open them.
  const wid = (await srv.worker(cert, 'POST', '/v1/worker/register', { metadata: {}, host: {} })).body.workerId;
  const a = (await srv.worker(cert, 'POST', '/v1/worker/poll?wait=5', { workerId: wid, accept: true, runId: null })).body.assignment;
  assert.is(a.runId, runId);
  const opened = execFileSync('age', ['-d', '-i', k.keyPath], { input: Buffer.from(a.secretEnv, 'base64') }).toString();
  assert.equal(JSON.parse(opened), { DB_PASSWORD: secret });
  const gotWs = (await srv.worker(cert, 'GET', `/v1/worker/runs/${runId}/workspace`)).raw;
  const untarred = execFileSync('age', ['-d', '-i', k.keyPath], { input: gotWs });
  assert.ok(untarred.includes(Buffer.from(marker)));

  // Phase 0 runs, prints masked output, uploads a re-sealed workspace.
  await srv.worker(cert, 'POST', `/v1/worker/runs/${runId}/phases/0/start`, { workerId: wid });
  await srv.worker(cert, 'POST', `/v1/worker/runs/${runId}/phases/0/logs?seq=0`, Buffer.from('password is ***\n'));
  const resealed = await buffer(Readable.from([tar]).pipe(createSealStream([sshRsaRecipient(publicKeyPem)])));
  assert.is((await srv.worker(cert, 'PUT', `/v1/worker/runs/${runId}/phases/0/workspace`, resealed)).status, 200);
  await srv.worker(cert, 'POST', `/v1/worker/runs/${runId}/phases/0/result`, { workerId: wid, outcome: 'succeeded', exitCode: 0, logSeq: 1 });
  assert.is((await srv.admin('GET', `/v1/runs/${runId}`)).body.run.state, 'QUEUED');

  // Let the server write everything it will, then look at every byte it kept.
  await srv.terminate();
  const files = allFiles(srv.dataDir);
  assert.ok(files.some((f) => f.endsWith(`${runId}.age`)), 'the sealed workspace is stored');
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const needle of [secret, marker]) {
      assert.not.ok(bytes.includes(Buffer.from(needle)), `${needle} found in ${f}`);
    }
  }
  for (const needle of [secret, marker]) {
    assert.not.ok(srv.stderr.includes(needle), 'not in the server log');
    assert.not.ok(srv.stdout.includes(needle), 'not on the server stdout');
  }
  // The plain env value is stored (it is not secret) — proves the grep reads the database.
  assert.ok(files.some((f) => readFileSync(f).includes(Buffer.from('visible'))));
  await srv.start();
});

test.run();
