// Webhook received → run queued: round trips of signed GitHub-style push
// deliveries to `POST /v1/hooks/git` on a `launcher server` (each a new commit,
// so each queues a run; the 202 is written only after the run's insert is
// committed, so the round trip bounds "received → queued" from above). Peers in
// the same run, interleaved, over the same kind of keep-alive TLS connection:
// the admin API's trigger (`POST /v1/stacks/{id}/runs`, the same insert without
// the webhook's parsing and HMAC), and a bare node:https server that reads the
// body, checks the HMAC and answers 202 (no database: the floor).
//
//   node_modules/.bin/node --import tsx bench/git-webhook.bench.ts [N]
import { createHmac, randomBytes } from 'node:crypto';
import { Agent, createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { signBody } from '../lib/vcs/webhook.ts';
import { createPool } from '../test/helpers/launcher.ts';
import { opensslCsr, startTestServer, testCa } from '../test/helpers/server.ts';
import { issueServerCertificate } from '../lib/pki.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const N = Number(process.argv[2] ?? 400);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(2)} ms, p90 ${pct(xs, 90).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms (n=${xs.length})`;

const srv = await startTestServer();
const { csrPem } = opensslCsr(mkdtempSync(join(tmpdir(), 'webhook-bench-')), 'bench', 2048);
const pool = await createPool(srv, 'bench', csrPem);
const repo = 'http://127.0.0.1:9/bench/infra.git';
const st = await srv.admin('POST', '/v1/stacks', { name: 'infra', pool: pool.poolId, repo, branch: 'main', phases: [{ name: 'p', script: 'true' }] });
const stackId = st.body.stack.id as string;
const secret = (await srv.admin('GET', `/v1/stacks/${stackId}/webhook`)).body.webhook.secret as string;

// The floor: read, HMAC, 202.
const ca = testCa();
const cert = issueServerCertificate(ca, { dnsNames: [], ipAddresses: ['127.0.0.1'], bits: 2048 });
const bare = createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const ok = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}` === req.headers['x-hub-signature-256'];
    JSON.parse(body.toString('utf8'));
    res.writeHead(ok ? 202 : 401, { 'content-type': 'application/json' });
    res.end('{"message":"queued"}');
  });
});
await new Promise<void>((r) => bare.listen(0, '127.0.0.1', () => r()));
const barePort = (bare.address() as AddressInfo).port;

const serverAgent = new Agent({ keepAlive: true, maxSockets: 1, ca: srv.caPem });
const bareAgent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem });

function post(port: number, path: string, agent: Agent, body: Buffer, headers: Record<string, string>): Promise<{ status: number; ms: number; text: string }> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...headers } }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t) / 1e6, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function payload(): Buffer {
  const sha = randomBytes(20).toString('hex');
  return Buffer.from(JSON.stringify({
    ref: 'refs/heads/main', before: '0'.repeat(40), after: sha, created: false, deleted: false, forced: false,
    repository: { full_name: 'bench/infra', clone_url: repo, html_url: repo.replace(/\.git$/, '') },
    head_commit: { id: sha, message: 'Bench commit', author: { name: 'Bench', email: 'bench@example.test' }, added: [], modified: ['main.tf'], removed: [] },
    commits: [{ id: sha, message: 'Bench commit', author: { name: 'Bench', email: 'bench@example.test' }, added: [], modified: ['main.tf'], removed: [] }],
  }));
}

const port = Number(new URL(srv.url).port);
const hook: number[] = [];
const admin: number[] = [];
const floor: number[] = [];
for (let i = -20; i < N; i++) {
  const body = payload();
  const h = await post(port, '/v1/hooks/git', serverAgent, body, { 'x-github-event': 'push', 'x-github-delivery': randomBytes(8).toString('hex'), 'x-hub-signature-256': signBody(body, secret) });
  if (h.status !== 202 || !h.text.includes('queued 1 run')) throw new Error(`webhook: ${h.status} ${h.text}`);
  const a = await post(port, `/v1/stacks/${stackId}/runs`, serverAgent, Buffer.from('{}'), { authorization: `Bearer ${srv.adminToken}` });
  if (a.status !== 201) throw new Error(`trigger: ${a.status} ${a.text}`);
  const f = await post(barePort, '/hook', bareAgent, body, { 'x-hub-signature-256': signBody(body, secret) });
  if (f.status !== 202) throw new Error(`bare: ${f.status}`);
  if (i >= 0) { hook.push(h.ms); admin.push(a.ms); floor.push(f.ms); }
}
const runs = (await srv.admin('GET', `/v1/runs?stack=${stackId}&limit=1000`)).body.runs.length;
console.log(`webhook → run queued (202):        ${fmt(hook)}`);
console.log(`admin API trigger (201):           ${fmt(admin)}`);
console.log(`bare node:https HMAC + 202:        ${fmt(floor)}`);
console.log(`runs queued: ${runs} (limit 1000 listed); load average ${loadavg()[0]!.toFixed(1)}`);
console.log('\n| round trip | p50 ms | p90 ms | p99 ms |');
console.log('| --- | --- | --- | --- |');
for (const [name, xs] of [['webhook → run queued (202)', hook], ['admin API trigger (201)', admin], ['bare node:https HMAC + 202', floor]] as const) {
  console.log(`| ${name} | ${pct(xs, 50).toFixed(2)} | ${pct(xs, 90).toFixed(2)} | ${pct(xs, 99).toFixed(2)} |`);
}
serverAgent.destroy();
bareAgent.destroy();
bare.close();
await srv.stop();
