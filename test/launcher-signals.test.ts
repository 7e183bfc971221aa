// The pure parts around the worker loop: which stop a signal asks for, and
// the Prometheus text the metrics listener serves (through a real listener).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { EXIT_QUIT } from '../lib/launcher/exit-codes.ts';
import { handleSignals } from '../lib/launcher/signals.ts';
import { Metrics, serveMetrics } from '../lib/launcher/metrics.ts';
import type { StopMode } from '../lib/launcher/worker.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

test('first SIGTERM is graceful, the second cancels; SIGINT counts the same; SIGQUIT quits with 131', () => {
  const proc = new EventEmitter();
  const stops: StopMode[] = [];
  const quits: number[] = [];
  const off = handleSignals(proc as never, { stop: (m) => stops.push(m) }, quiet, (c) => quits.push(c));
  proc.emit('SIGTERM');
  assert.equal(stops, ['graceful']);
  proc.emit('SIGINT');
  assert.equal(stops, ['graceful', 'cancel']);
  proc.emit('SIGQUIT');
  assert.equal(quits, [EXIT_QUIT]);
  off();
  proc.emit('SIGTERM');
  assert.is(stops.length, 2, 'handlers removed');
  assert.is(proc.listenerCount('SIGTERM') + proc.listenerCount('SIGINT') + proc.listenerCount('SIGQUIT'), 0);
});

test('metrics render every result, busy, bytes, reconnects and time since contact', () => {
  let now = 1_000_000;
  const m = new Metrics(() => now);
  assert.match(m.render(), /^launcher_seconds_since_server_contact -1\.000$/m);
  m.phaseFinished('succeeded');
  m.phaseFinished('succeeded');
  m.phaseFinished('canceled');
  m.phaseFinished('worker-lost');
  m.busy = true;
  m.logBytes = 1234;
  m.reconnects = 3;
  m.contact();
  now += 2500;
  const text = m.render();
  assert.match(text, /^launcher_phases_total\{result="succeeded"\} 2$/m);
  assert.match(text, /^launcher_phases_total\{result="canceled"\} 1$/m);
  assert.match(text, /^launcher_phases_total\{result="failed"\} 0$/m);
  assert.match(text, /^launcher_phases_total\{result="worker-lost"\} 1$/m);
  assert.match(text, /^launcher_busy 1$/m);
  assert.match(text, /^launcher_log_bytes_total 1234$/m);
  assert.match(text, /^launcher_reconnects_total 3$/m);
  assert.match(text, /^launcher_seconds_since_server_contact 2\.500$/m);
  // Every sample line belongs to a declared metric.
  const declared = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((x) => x[1]));
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) assert.ok(declared.has(line.split(/[{ ]/)[0]!), line);
});

test('the listener: /metrics, /healthz by recency of contact, 404 elsewhere', async () => {
  let now = 5_000_000;
  const m = new Metrics(() => now);
  const server = await serveMetrics(m, { host: '127.0.0.1', port: 0 }, 90);
  const port = (server.address() as { port: number }).port;
  try {
    const base = `http://127.0.0.1:${port}`;
    assert.is((await fetch(`${base}/healthz`)).status, 503, 'never contacted');
    m.contact();
    assert.is((await fetch(`${base}/healthz`)).status, 200);
    now += 91_000;
    assert.is((await fetch(`${base}/healthz`)).status, 503, 'silent too long');
    const r = await fetch(`${base}/metrics`);
    assert.is(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/plain; version=0\.0\.4/);
    assert.is((await fetch(`${base}/nope`)).status, 404);
  } finally {
    server.close();
  }
});

test.run();
