import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogShipper } from '../lib/launcher/logship.ts';

// A FAKE of the server's log endpoint (an in-process stand-in, named as such):
// it keeps the protocol's rules (seq == next stored, seq < next ignored,
// seq > next refused with the server's nextSeq) and can be told to fail the
// way an unreachable server does, or to store a chunk and then lose the reply.
class FakeLogServer {
  chunks: Buffer[] = [];
  calls: number[] = [];
  failNext = 0;
  unreachable = false;
  loseReplies = 0;
  refuse = false;
  #waiters: { ready: () => boolean; resolve: () => void }[] = [];
  /** Resolves once `ready()` holds, checked after every call: a test waits on what the shipper did, not on time. */
  until(ready: () => boolean, what = 'the expected upload', ms = 10_000): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // A deadline so a shipper that never calls fails the test instead of hanging it.
      const t = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms (calls: ${this.calls.join(',')})`)), ms);
      this.#waiters.push({ ready, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }
  #settle(): void {
    for (const w of this.#waiters.filter((x) => x.ready())) { this.#waiters.splice(this.#waiters.indexOf(w), 1); w.resolve(); }
  }
  upload = async (seq: number, bytes: Uint8Array): Promise<number> => {
    try {
      return await this.#upload(seq, bytes);
    } finally {
      this.#settle();
    }
  };
  #upload = async (seq: number, bytes: Uint8Array): Promise<number> => {
    this.calls.push(seq);
    await new Promise((r) => setImmediate(r));
    if (this.refuse) throw Object.assign(new Error('Certificate refused (fake)'), { permanent: true });
    if (this.unreachable || this.failNext > 0) {
      if (this.failNext > 0) this.failNext--;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1 (fake unreachable server)'), { code: 'ECONNREFUSED' });
    }
    const next = this.chunks.length;
    if (seq > next) throw Object.assign(new Error('gap'), { code: 'LOG_SEQ_GAP', nextSeq: next });
    if (seq === next) this.chunks.push(Buffer.from(bytes));
    if (this.loseReplies > 0) {
      this.loseReplies--;
      throw Object.assign(new Error('socket hang up after the server stored the chunk (fake)'), { code: 'ECONNRESET' });
    }
    return this.chunks.length;
  };
  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

const dirs: string[] = [];
function spillDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'logship-'));
  dirs.push(d);
  return join(d, 'spill');
}
const fast = { baseMs: 1, capMs: 5 };
const lines = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `line ${from + i}\n`).join('');

test('everything written arrives once, in order, after flush', async () => {
  const srv = new FakeLogServer();
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), maxChunkBytes: 64, backoff: fast });
  const text = lines(200);
  for (const ch of text.match(/[\s\S]{1,7}/g)!) s.write(Buffer.from(ch));
  const next = await s.close();
  assert.is(srv.text, text);
  assert.is(next, srv.chunks.length);
  assert.ok(srv.chunks.every((c) => c.length <= 64));
});

test('the timer ships buffered output without a flush', async () => {
  const srv = new FakeLogServer();
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), flushMs: 20 });
  s.write(Buffer.from('hello\n'));
  await srv.until(() => srv.chunks.length > 0);
  assert.is(srv.text, 'hello\n');
  await s.close();
});

test('an unreachable server (fake) failing N times loses nothing', async () => {
  const srv = new FakeLogServer();
  srv.failNext = 7;
  const retries: number[] = [];
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), maxChunkBytes: 32, backoff: fast, onRetry: (_e, a) => retries.push(a) });
  const text = lines(50);
  s.write(Buffer.from(text));
  await s.close();
  assert.is(srv.text, text);
  assert.is(retries.length, 7);
});

test('a lost reply is retried with the same seq and bytes and never stored twice', async () => {
  const srv = new FakeLogServer();
  srv.loseReplies = 3;
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), maxChunkBytes: 16, backoff: fast });
  const text = lines(30);
  s.write(Buffer.from(text));
  await s.close();
  assert.is(srv.text, text);
  // Some seq was sent more than once, yet each line is stored exactly once.
  assert.ok(srv.calls.length > srv.chunks.length);
  for (let i = 0; i < 30; i++) assert.is(srv.text.split(`line ${i}\n`).length, 2);
});

test('while the server is unreachable (fake) chunks spill to files with bounded memory, then go up in order', async () => {
  const srv = new FakeLogServer();
  srv.unreachable = true;
  const dir = spillDir();
  const s = new LogShipper({ upload: srv.upload, spillDir: dir, maxChunkBytes: 100, memoryBytes: 300, backoff: fast });
  const text = lines(400);
  for (const ch of text.match(/[\s\S]{1,50}/g)!) s.write(Buffer.from(ch));
  assert.ok(s.spilledChunks > 0, 'some chunks spilled');
  assert.ok(readdirSync(dir).length === s.spilledChunks);
  // close() keeps trying while the server is unreachable: let it fail twice more first.
  const tried = srv.calls.length;
  const done = s.close();
  await srv.until(() => srv.calls.length >= tried + 2);
  srv.unreachable = false;
  await done;
  assert.is(srv.text, text);
  assert.not.ok(existsSync(dir), 'spill dir removed on close');
});

test('resuming at the server nextSeq continues the numbering', async () => {
  const srv = new FakeLogServer();
  srv.chunks = [Buffer.from('a\n'), Buffer.from('b\n')];
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), startSeq: 2 });
  s.write(Buffer.from('c\n'));
  assert.is(await s.close(), 3);
  assert.is(srv.text, 'a\nb\nc\n');
});

test('a permanent refusal stops retrying and surfaces from flush', async () => {
  const srv = new FakeLogServer();
  srv.refuse = true;
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), backoff: fast });
  s.write(Buffer.from('x\n'));
  try {
    await s.flush();
    assert.unreachable('flush should fail');
  } catch (e) {
    assert.match((e as Error).message, /refused/);
  }
  assert.is(srv.calls.length, 1);
});

test('a server that lost confirmed chunks is reported, not papered over', async () => {
  const srv = new FakeLogServer();
  const s = new LogShipper({ upload: srv.upload, spillDir: spillDir(), startSeq: 5 });
  s.write(Buffer.from('x\n'));
  try {
    await s.flush();
    assert.unreachable('flush should fail');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'LOG_SEQ_GAP');
  }
});

test('random split points and random failures: stored log equals the input', async () => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 20; round++) {
    const srv = new FakeLogServer();
    const s = new LogShipper({ upload: async (q, b) => { if (rnd() < 0.3) srv.failNext = 1; if (rnd() < 0.2) srv.loseReplies = 1; return srv.upload(q, b); }, spillDir: spillDir(), maxChunkBytes: 40, memoryBytes: 120, backoff: fast, flushMs: 1 });
    const text = lines(100, round * 1000);
    let i = 0;
    while (i < text.length) {
      const n = 1 + Math.floor(rnd() * 60);
      s.write(Buffer.from(text.slice(i, i + n)));
      i += n;
      if (rnd() < 0.1) await new Promise((r) => setTimeout(r, 2));
    }
    await s.close();
    assert.is(srv.text, text);
  }
});

test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
test.run();
