// The named peer for the server load bench: a bare node:https long-poll server
// with the same TLS material and settings as `launcher server` (its CA, its
// server certificate, client certificates requested and checked), speaking just
// enough of the worker API for the simulated launchers: register, poll, start,
// logs (appended and fsynced, like the server), result, and POST /trigger to
// hand a run to the first waiting poll. No database, no scheduler, no audit: it
// is the floor any long-poll server on this machine pays.
//
//   node bench/load/peer-server.ts DATA_DIR PORT
import { createServer } from 'node:https';
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [dataDir, portText] = process.argv.slice(2);
if (!dataDir || !portText) throw new Error('usage: peer-server.ts DATA_DIR PORT');
const logDir = mkdtempSync(join(tmpdir(), 'launcher-bench-peer-'));

interface Waiter { res: ServerResponse; timer: NodeJS.Timeout; workerId: string }
const waiting: Waiter[] = [];
const queued: string[] = [];
let workers = 0;
let runs = 0;
const logFds = new Map<string, { fd: number; next: number }>();

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function assignment(runId: string) {
  return {
    assignment: { runId, phase: 0, phaseName: 'p', phaseCount: 1, stack: { id: 'stk_peer', name: 'peer', kind: 'stack' }, proposed: false, image: 'x', script: 'true', env: {}, secretEnv: null, workspace: false, recipients: [], logs: { nextSeq: 0 } },
    control: { drain: false, cycle: false, cancel: [] },
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

const server = createServer({
  key: readFileSync(join(dataDir, 'server.key')), cert: readFileSync(join(dataDir, 'server.crt')), ca: readFileSync(join(dataDir, 'ca.crt')),
  requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2',
}, async (req, res) => {
  const url = new URL(req.url ?? '/', 'https://peer');
  const path = url.pathname;
  if (path === '/health') return send(res, 200, {});
  if (path === '/trigger') {
    await readBody(req);
    const runId = `run_peer${runs++}`;
    const w = waiting.shift();
    if (w) { clearTimeout(w.timer); send(w.res, 200, assignment(runId)); } else queued.push(runId);
    return send(res, 201, { run: { id: runId } });
  }
  if (!path.startsWith('/v1/worker/')) return send(res, 404, { error: { code: 'NOT_FOUND', message: 'Not found' } });
  if (!(req.socket as TLSSocket).authorized) return send(res, 401, { error: { code: 'CLIENT_CERT_REQUIRED', message: 'No client certificate' } });
  const body = await readBody(req);
  if (path === '/v1/worker/register') return send(res, 200, { workerId: `wrk_peer${workers++}`, pollSeconds: 25, leaseSeconds: 30 });
  if (path === '/v1/worker/deregister') return send(res, 200, {});
  if (path === '/v1/worker/poll') {
    const { workerId } = JSON.parse(body.toString()) as { workerId: string };
    const run = queued.shift();
    if (run) return send(res, 200, assignment(run));
    const wait = Math.min(60, Number(url.searchParams.get('wait') ?? 25)) * 1000;
    const w: Waiter = { res, workerId, timer: setTimeout(() => { remove(w); send(res, 200, { assignment: null, control: { drain: false, cycle: false, cancel: [] } }); }, wait) };
    waiting.push(w);
    res.on('close', () => { clearTimeout(w.timer); remove(w); });
    return;
  }
  const m = /^\/v1\/worker\/runs\/([^/]+)\/phases\/(\d+)\/(start|logs|result)$/.exec(path);
  if (m) {
    const [, runId, , what] = m;
    if (what === 'logs') {
      let f = logFds.get(runId!);
      if (!f) { f = { fd: openSync(join(logDir, runId!), 'a'), next: 0 }; logFds.set(runId!, f); }
      const seq = Number(url.searchParams.get('seq'));
      if (seq === f.next) { writeSync(f.fd, body); fsyncSync(f.fd); f.next++; }
      return send(res, 200, { nextSeq: f.next });
    }
    if (what === 'result') {
      const f = logFds.get(runId!);
      if (f) { closeSync(f.fd); logFds.delete(runId!); rmSync(join(logDir, runId!), { force: true }); }
    }
    return send(res, 200, {});
  }
  return send(res, 404, { error: { code: 'NOT_FOUND', message: 'Not found' } });
});

function remove(w: Waiter): void {
  const i = waiting.indexOf(w);
  if (i >= 0) waiting.splice(i, 1);
}

server.keepAliveTimeout = 120_000;
server.listen({ port: Number(portText), host: '127.0.0.1', backlog: 511 }, () => process.stdout.write(`peer listening on ${portText}\n`));
process.on('SIGTERM', () => { rmSync(logDir, { recursive: true, force: true }); process.exit(0); });
