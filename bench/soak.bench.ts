// The full soak (issue 14): 5,000 launchers on long-polls, 20,000 hostile
// idle connections and a stream of runs at once, a backup taken mid-stream
// and restored. Prints the report; exits 1 if anything was lost or crashed.
//
//   node_modules/.bin/node --import tsx bench/soak.bench.ts \
//     [--launchers 5000] [--hostile 20000] [--runs 600] [--interval-ms 100] [--lines 200]
//
// Needs an open-file limit of at least launchers + 1,000 for this process
// (it re-runs itself under the hard limit) and 10,000 per hostile child.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runSoak } from './load/soak.ts';
import { NODE, spawnWithLimit } from './load/proc.ts';

const { values } = parseArgs({
  options: {
    launchers: { type: 'string', default: '5000' },
    hostile: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '600' },
    'interval-ms': { type: 'string', default: '100' },
    lines: { type: 'string', default: '200' },
    child: { type: 'boolean' },
  },
});
const launchers = Number(values.launchers);
const soft = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);

if (!values.child && soft < launchers + 1000) {
  const c = spawnWithLimit([NODE, '--import', 'tsx', ...process.argv.slice(1), '--child'], { log: (l) => console.log(l) });
  c.on('exit', (code) => { process.exitCode = code ?? 1; });
} else {
  const runs = Number(values.runs);
  const t = new Date().toISOString();
  console.log(`# soak ${t}: ${launchers} launchers, ${values.hostile} hostile connections, ${runs} runs every ${values['interval-ms']} ms, ${values.lines} lines each`);
  const r = await runSoak({
    launchers, hostile: Number(values.hostile), runs, intervalMs: Number(values['interval-ms']), linesPerRun: Number(values.lines),
    backupAfterRuns: Math.floor(runs / 2), say: (l) => console.log(`  ${l}`),
  });
  console.log(JSON.stringify(r, null, 1));
  const ok = r.serverAlive && r.serverErrors.length === 0 && r.runsSucceeded === r.runsTriggered && r.runsWithLogMismatch.length === 0 && (r.backup?.missing.length ?? 0) === 0;
  console.log(ok ? 'soak passed' : 'soak FAILED');
  process.exit(ok ? 0 : 1);
}
