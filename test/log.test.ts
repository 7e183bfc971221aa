import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, type LoggerOptions } from '../lib/log.ts';
import { Masker } from '../lib/mask.ts';
import { LauncherError } from '../lib/errors.ts';

const clock = () => new Date('2026-11-28T18:34:03.123Z');

function sink(isTTY?: boolean) {
  const lines: string[] = [];
  const stream = { isTTY, write: (s: string) => { lines.push(s); return true; } };
  return { stream, lines };
}

test('JSON lines by default: time, level, msg, then fields', () => {
  const { stream, lines } = sink();
  const log = createLogger({ stream, clock });
  log.info('Pulling image', { image: 'busybox:latest', attempt: 2 });
  assert.equal(lines, ['{"time":"2026-11-28T18:34:03.123Z","level":"info","msg":"Pulling image","image":"busybox:latest","attempt":2}\n']);
});

test('debug records only when debug is on', () => {
  const a = sink();
  createLogger({ stream: a.stream, clock }).debug('hidden');
  assert.equal(a.lines, []);
  const b = sink();
  const log = createLogger({ stream: b.stream, clock, debug: true });
  assert.is(log.debugEnabled, true);
  log.debug('shown');
  assert.is(JSON.parse(b.lines[0]).level, 'debug');
});

test('every level is written with its name', () => {
  const { stream, lines } = sink();
  const log = createLogger({ stream, clock, debug: true });
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  assert.equal(lines.map((l) => JSON.parse(l).level), ['debug', 'info', 'warn', 'error']);
});

test('human-readable on a terminal, or when asked', () => {
  const tty = sink(true);
  createLogger({ stream: tty.stream, clock }).warn('Run stopped:\nno output', { run: 'run-1', reason: 'logs timeout', empty: '' });
  assert.equal(tty.lines, ['2026-11-28T18:34:03.123Z WARN  Run stopped:\\nno output run=run-1 reason="logs timeout" empty=""\n']);
  const asked = sink(false);
  createLogger({ stream: asked.stream, clock, json: false }).info('x', { n: 1, o: { a: 1 } });
  assert.is(asked.lines[0], '2026-11-28T18:34:03.123Z INFO  x n=1 o={"a":1}\n');
  const forced = sink(true);
  createLogger({ stream: forced.stream, clock, json: true }).info('x');
  assert.ok(forced.lines[0].startsWith('{'));
});

test('child loggers add their fields; record fields win; reserved names are kept apart', () => {
  const { stream, lines } = sink();
  const log = createLogger({ stream, clock }).child({ worker: 'w-1', run: 'r-0' }).child({ phase: 'plan' });
  log.info('Phase started', { run: 'r-1', msg: 'user field', level: 7 });
  assert.equal(JSON.parse(lines[0]), { time: '2026-11-28T18:34:03.123Z', level: 'info', msg: 'Phase started', worker: 'w-1', run: 'r-1', phase: 'plan', 'field.msg': 'user field', 'field.level': 7 });
});

test('the redact hook masks the message, string fields, nested values and errors', () => {
  const secret = 'db-password-123';
  const masker = new Masker({ secrets: [{ name: 'DB_PASSWORD', value: secret }] });
  const opts = (stream: LoggerOptions['stream'], json: boolean): LoggerOptions => ({ stream, clock, json, redact: (t) => masker.redact(t) });
  const j = sink();
  const log = createLogger(opts(j.stream, true)).child({ env: { DB_PASSWORD: secret } });
  log.error(`Cannot connect with ${secret}`, { args: ['--password', secret], err: new LauncherError('X', `bad ${secret}`, { cause: new Error(secret) }) });
  assert.not.ok(j.lines[0].includes(secret), j.lines[0]);
  const rec = JSON.parse(j.lines[0]);
  assert.is(rec.msg, 'Cannot connect with *****');
  assert.equal(rec.env, { DB_PASSWORD: '*****' });
  assert.equal(rec.args, ['--password', '*****']);
  assert.equal(rec.err, { name: 'LauncherError', message: 'bad *****', code: 'X', cause: { name: 'Error', message: '*****' } });
  const h = sink();
  createLogger(opts(h.stream, false)).info('x', { s: `a ${secret} b`, b64: Buffer.from(secret).toString('base64') });
  assert.not.ok(h.lines[0].includes(secret));
  assert.not.ok(h.lines[0].includes(Buffer.from(secret).toString('base64').replace(/=+$/, '')));
});

test('awkward fields do not lose the record', () => {
  const { stream, lines } = sink();
  const log = createLogger({ stream, clock });
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  log.info('cycle', { cyclic, big: 10n, when: new Date(0), nothing: undefined });
  assert.equal(JSON.parse(lines[0]), { time: '2026-11-28T18:34:03.123Z', level: 'info', msg: 'cycle', cyclic: { a: 1, self: '[circular]' }, big: '10', when: '1970-01-01T00:00:00.000Z' });
  const throwing = createLogger({ stream: { write: () => { throw new Error('EPIPE'); } }, clock });
  throwing.error('still fine');
});

test.run();
