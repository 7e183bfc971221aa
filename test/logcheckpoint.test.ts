// Picking a container's output up from a checkpoint: the pure parts (the
// engine's timestamped frames, its `since` parameter, the tracker that finds
// verified anchors), then end to end with a real launcher, a real container
// and a real server: kill -9 in the middle of a phase, restart, and the run
// finishes with every line exactly once, the restarted launcher reading the
// log from the checkpoint rather than from the start, and a value the script
// added with ::add-mask:: before the restart still masked after it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DockerClient } from '../lib/docker/client.ts';
import { dockerSince, resumeFrames, TimestampedFrames, type LogEntry } from '../lib/docker/logs.ts';
import { Demuxer, muxFrame } from '../lib/docker/stream.ts';
import { listManagedContainers } from '../lib/executor.ts';
import { CheckpointTracker } from '../lib/launcher/logcheckpoint.ts';
import { Masker } from '../lib/mask.ts';
import { ensureTestImage } from './helpers/docker.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { createPool, createStack, ended, runLogs, seedPoolKey, startLauncher, tempDir, trigger, waitRun, type LauncherProcess } from './helpers/launcher.ts';

const frame = (stream: 'stdout' | 'stderr', ts: string, text: string): Uint8Array => muxFrame(stream, Buffer.from(`${ts} ${text}`));
const T = (n: number): string => `2026-12-02T03:14:57.${String(n).padStart(9, '0')}Z`;

test('dockerSince: seconds.nanoseconds without float rounding', () => {
  assert.is(dockerSince('2026-12-02T03:14:57.252915377Z'), '1796181297.252915377');
  assert.is(dockerSince('2026-12-02T03:14:57.25Z'), '1796181297.250000000');
  assert.is(dockerSince('2026-12-02T03:14:57Z'), '1796181297.000000000');
  assert.throws(() => dockerSince('yesterday'), /Not an engine log timestamp/);
});

test('timestamped frames parse across any chunk boundary; resumeFrames drops the first entries and the timestamps', async () => {
  const all = Buffer.concat([frame('stdout', T(1), 'one\n'), frame('stderr', T(2), 'two\n'), frame('stdout', T(2), 'three\n'), frame('stdout', T(3), 'four\n')]);
  for (const cut of [1, 3, 8, 9, 17, 40]) {
    const p = new TimestampedFrames();
    const got: LogEntry[] = [];
    for (let i = 0; i < all.length; i += cut) got.push(...p.push(all.subarray(i, i + cut)));
    assert.equal(got.map((e) => [e.stream, e.ts, e.payload.toString()]), [['stdout', T(1), 'one\n'], ['stderr', T(2), 'two\n'], ['stdout', T(2), 'three\n'], ['stdout', T(3), 'four\n']]);
    assert.ok(p.atBoundary);
  }
  const out: string[] = [];
  const d = new Demuxer((c, s) => out.push(`${s}:${Buffer.from(c).toString()}`));
  for await (const c of Readable.from([all.subarray(0, 13), all.subarray(13)]).pipe(resumeFrames(2))) d.push(c as Buffer);
  assert.equal(out, ['stdout:three\n', 'stdout:four\n']);
});

/** Feeds lines through a masker and a tracker the way the launcher does. */
function live(lines: string[]): { tracker: CheckpointTracker; masker: Masker; masked: string } {
  const masker = new Masker({ secrets: [{ name: 's', value: 'hunter22' }] });
  const tracker = new CheckpointTracker(null);
  let masked = '';
  for (const l of lines) {
    const out = masker.write(Buffer.from(l));
    tracker.addMasked(out.length);
    masked += Buffer.from(out).toString();
    tracker.observe(Buffer.from(l), masker.atRest);
  }
  return { tracker, masker, masked };
}

test('the tracker anchors at the newest entry boundary where attach was at rest, and only when the bytes agree', () => {
  const lines = ['a1\n', 'pw hunter22\n', 'part', 'ial\n', 'a4\n'];
  const { tracker, masked } = live(lines);
  const entries = (ls: string[], ts: number[]) => ls.map((l, i) => ({ stream: 'stdout' as const, ts: T(ts[i]!), payload: Buffer.from(l) }));
  // The engine split "partial\n" the same way (a partial entry, then the rest).
  const e = entries(lines, [1, 2, 2, 2, 3]);
  const a = tracker.advance(e)!;
  assert.equal(a, { since: T(3), skipEntries: 1, rawBytes: lines.join('').length, maskedBytes: Buffer.byteLength(masked) });
  // Nothing new: no anchor.
  assert.is(tracker.advance(e.slice(4)), undefined);

  // Entries that share a timestamp: the anchor counts how many of them to skip.
  const t2 = live(['x\n', 'y\n', 'z\n']).tracker;
  const a2 = t2.advance(entries(['x\n', 'y\n', 'z\n'], [5, 5, 6]))!;
  assert.is(a2.since, T(6));
  const t3 = live(['x\n', 'y\n']).tracker;
  const a3 = t3.advance(entries(['x\n', 'y\n'], [5, 5]))!;
  assert.equal([a3.since, a3.skipEntries], [T(5), 2]);

  // The engine ordered the streams differently from attach: the hash differs, no anchor.
  const t4 = live(['out 1\n', 'err 1\n']).tracker;
  assert.is(t4.advance(entries(['err 1\n', 'out 1\n'], [1, 2])), undefined);
});

test('a second advance starts from the anchor: entries up to it are skipped by count, the hash goes on from there', () => {
  const masker = new Masker({ secrets: [] });
  const tracker = new CheckpointTracker(null);
  const feed = (l: string) => { const out = masker.write(Buffer.from(l)); tracker.addMasked(out.length); tracker.observe(Buffer.from(l), masker.atRest); };
  feed('one\n'); feed('two\n');
  const first = tracker.advance([{ stream: 'stdout', ts: T(1), payload: Buffer.from('one\n') }, { stream: 'stdout', ts: T(1), payload: Buffer.from('two\n') }])!;
  assert.equal([first.since, first.skipEntries, first.rawBytes], [T(1), 2, 8]);
  feed('three\n');
  // since=T(1) is inclusive: the engine returns both T(1) entries again.
  const second = tracker.advance([
    { stream: 'stdout', ts: T(1), payload: Buffer.from('one\n') }, { stream: 'stdout', ts: T(1), payload: Buffer.from('two\n') },
    { stream: 'stdout', ts: T(2), payload: Buffer.from('three\n') },
  ])!;
  assert.equal([second.since, second.skipEntries, second.rawBytes, second.maskedBytes], [T(2), 1, 14, 14]);
  // A resumed phase starts its tracker at the anchor.
  const resumed = new CheckpointTracker(second);
  assert.equal([resumed.rawBytes, resumed.maskedBytes, resumed.anchor?.since], [14, 14, T(2)]);
});

test('kill -9 mid-phase: the restarted launcher reads the log from the checkpoint, every line once, run-time masks kept', async () => {
  const docker = new DockerClient();
  await ensureTestImage(docker);
  const key = seedPoolKey(2048, 'checkpoint');
  const srv: TestServer = await startTestServer();
  const dir = tempDir('launcher-checkpoint-state-');
  const launchers: LauncherProcess[] = [];
  try {
    const pool = await createPool(srv, 'checkpoint', key.csrPem);
    const N = 300;
    // Lines 1-150 quickly, a pause while the launcher is killed and restarted, then the rest.
    const script = `echo "::add-mask::rt-Secret-9931"; i=1; while [ $i -le ${N} ]; do echo "line $i"; if [ $i -eq 150 ]; then sleep 15; fi; i=$((i+1)); done; echo "value rt-Secret-9931 end"`;
    const stack = await createStack(srv, { name: 'cp', pool: pool.poolId, phases: [{ name: 'count', script }] });
    const first = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: dir.path });
    launchers.push(first);
    await first.waitFor(/Registered with the server/);
    const runId = await trigger(srv, stack);
    // Wait for a checkpoint past line 150 (written every 5 s while the phase runs).
    const cpFile = join(dir.path, 'checkpoint.json');
    const deadline = Date.now() + 60_000;
    let cp: { rawBytes: number; maskedBytes: number; addedMasks: string | null } | undefined;
    while (Date.now() < deadline) {
      if (existsSync(cpFile)) {
        cp = JSON.parse(readFileSync(cpFile, 'utf8'));
        if (cp!.rawBytes >= Buffer.byteLength(Array.from({ length: 150 }, (_, i) => `line ${i + 1}\n`).join(''))) break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(cp && cp.rawBytes > 0, 'a checkpoint was written');
    assert.ok(cp!.addedMasks !== null, 'the run-time mask is in it, sealed');
    assert.not.ok(readFileSync(cpFile, 'utf8').includes('rt-Secret-9931'), 'never in plain text on disk');
    first.kill('SIGKILL');
    await first.exited;

    const again = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: dir.path });
    launchers.push(again);
    const line = JSON.parse(await again.waitFor(/Re-attached to the phase container after a restart/)) as { logsFrom: string; skippedRawBytes: number };
    assert.is(line.logsFrom, 'checkpoint');
    assert.ok(line.skippedRawBytes >= cp!.rawBytes, 'the log before the checkpoint is not read again');
    const run = await waitRun(srv, runId, ended);
    assert.is(run.state, 'FINISHED', JSON.stringify(run));
    const logs = await runLogs(srv, runId);
    const got = logs.split('\n').filter((l) => l.startsWith('line '));
    assert.equal(got, Array.from({ length: N }, (_, i) => `line ${i + 1}`), 'every line once, in order');
    assert.not.ok(logs.includes('rt-Secret-9931'), 'the value added before the restart is still masked after it');
    assert.match(logs, /value \*+ end/);
    const id = (JSON.parse(readFileSync(join(dir.path, 'worker.json'), 'utf8')) as { workerId: string }).workerId;
    assert.equal(await listManagedContainers(docker, { workerId: id }), []);
  } finally {
    for (const l of launchers) { l.kill('SIGTERM'); await l.exitCode(60_000).catch(() => {}); }
    await srv.stop();
    dir.remove();
  }
});

test.run();
