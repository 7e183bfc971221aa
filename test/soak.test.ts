// A small soak in the default suite (well under a minute on a quiet machine):
// 50 launchers on long-polls, 1,000 hostile idle connections against a
// server capped at 500 connections, and a stream of 30 runs each shipping
// 100 numbered log lines. Every run must be assigned and succeed, every log
// line must be stored once and in order, the server must stay up with no
// error in its log and bounded memory; a backup taken mid-stream must restore
// into a new data directory that starts and lists every pool and run it saw.
// The full size (5,000 launchers, 20,000 hostile connections) is
// bench/soak.bench.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runSoak } from '../bench/load/soak.ts';

test('soak: launchers, hostile idle connections and a stream of runs at once', async () => {
  const r = await runSoak({
    launchers: 50, hostile: 1000, runs: 30, intervalMs: 20, linesPerRun: 100, backupAfterRuns: 15,
    // The cap (500) less the 50 launchers leaves room for about 450 strangers.
    hostileOpenTarget: 400,
    serverArgs: ['--max-connections', '500', '--handshake-timeout', '3s'],
    say: (l) => console.log(`  ${l}`),
  });
  console.log(JSON.stringify({ ...r, serverErrors: r.serverErrors.length }, null, 1));
  assert.ok(r.serverAlive, 'the server is still running');
  assert.equal(r.serverErrors, [], 'no error in the server log');
  assert.is(r.launchersPolling, 50, 'every launcher is polling again at the end');
  assert.ok(r.hostilePeakOpen >= 300, `hostile connections were open (peak ${r.hostilePeakOpen})`);
  assert.ok(r.hostileClosedByServer > 0, 'the server closed hostile connections');
  assert.ok(Object.keys(r.guardWarnings).some((w) => w.startsWith('Connection limit reached')), `the connection cap was reached: ${JSON.stringify(r.guardWarnings)}`);
  assert.is(r.runsTriggered, 30);
  assert.is(r.runsSucceeded, 30, `not finished: ${r.runsNotFinished.join(', ')}`);
  assert.equal(r.runsWithLogMismatch, [], 'every log line stored once, in order');
  assert.ok(r.rssPeakMiB < 600, `server memory stayed bounded (peak ${r.rssPeakMiB.toFixed(0)} MiB)`);
  assert.ok(r.backup, 'a backup was taken');
  assert.equal(r.backup!.missing, [], 'the restored data directory lists every pool and run the backup saw');
  assert.is(r.backup!.restoredRuns, 15);
});

test.run();
