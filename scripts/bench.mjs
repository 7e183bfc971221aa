#!/usr/bin/env node
// `npm run bench`: runs the benchmarks in bench/ one after another (never two
// at once: they measure the machine) and ends with a summary table.
//
//   npm run bench                  every bench/*.bench.ts
//   npm run bench -- age mask      only those whose name contains "age" or "mask"
//   npm run bench -- --list        the names, and the command each runs
//   npm run bench -- mask -- 64 3  arguments after a second -- go to each benchmark
//
// Each benchmark runs as `node --import tsx bench/NAME.bench.ts [ARGS]` with
// its own defaults (its header comment lists the arguments and environment
// variables it takes). Its output is shown as it runs and
// kept in .tmp/bench/NAME.log. The summary gives every benchmark's exit code,
// duration and the last table it printed (its results, side by side with its
// peer); docs/benchmarks.md says how to read each figure.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadavg } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const logDir = join(root, '.tmp/bench');
const all = readdirSync(join(root, 'bench')).filter((f) => f.endsWith('.bench.ts')).map((f) => f.replace(/\.bench\.ts$/, '')).sort();
const split = process.argv.indexOf('--', 2);
const args = split < 0 ? process.argv.slice(2) : process.argv.slice(2, split);
const benchArgs = split < 0 ? [] : process.argv.slice(split + 1);

// The pinned Node the project runs on, even when this script was started by another.
const pinnedNode = join(root, 'node_modules/.bin/node');
const node = existsSync(pinnedNode) ? pinnedNode : process.execPath;
const command = (name) => [node, ['--import', 'tsx', join('bench', `${name}.bench.ts`), ...benchArgs]];

if (args.includes('--help') || args.includes('-h')) {
  console.log('Usage: npm run bench [-- NAME... [-- ARGS...]]\n  every benchmark in bench/, or those whose name contains a NAME; ARGS go to each\n  npm run bench -- --list   list them');
  process.exit(0);
}
if (args.includes('--list')) {
  for (const name of all) console.log(`${name.padEnd(20)} node --import tsx bench/${name}.bench.ts`);
  process.exit(0);
}
const unknown = args.filter((a) => a.startsWith('-') || !all.some((n) => n.includes(a)));
if (unknown.length) {
  console.error(`No benchmark matches ${unknown.map((a) => `"${a}"`).join(', ')}: expected part of one of ${all.join(', ')} (or --list)`);
  process.exit(2);
}
const chosen = args.length ? all.filter((n) => args.some((a) => n.includes(a))) : all;

/** The last markdown table in a benchmark's output: where each prints its results. */
function lastTable(output) {
  const lines = output.split('\n');
  let end = -1;
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i].trimStart().startsWith('|')) { end = i; break; }
  if (end < 0) return null;
  let start = end;
  while (start > 0 && lines[start - 1].trimStart().startsWith('|')) start--;
  return lines.slice(start, end + 1).map((l) => l.trim()).join('\n');
}

function run(name) {
  return new Promise((resolve) => {
    const [cmd, argv] = command(name);
    const log = createWriteStream(join(logDir, `${name}.log`));
    const started = process.hrtime.bigint();
    let output = '';
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${join(root, 'node_modules/.bin')}:${process.env.PATH ?? ''}` } });
    const take = (stream, to) => stream.on('data', (d) => { output += d; log.write(d); to.write(d); });
    take(child.stdout, process.stdout);
    take(child.stderr, process.stderr);
    child.on('close', (code, signal) => {
      log.end();
      resolve({ name, code: code ?? (signal ? `signal ${signal}` : 1), seconds: Number(process.hrtime.bigint() - started) / 1e9, output });
    });
  });
}

mkdirSync(logDir, { recursive: true });
const results = [];
for (const name of chosen) {
  console.log(`\n=== ${name} (${chosen.indexOf(name) + 1}/${chosen.length}): node --import tsx bench/${name}.bench.ts ${benchArgs.join(' ')}; load average ${loadavg()[0].toFixed(1)}\n`);
  results.push(await run(name));
}

console.log('\n## Summary\n');
console.log('| benchmark | exit | duration | log |');
console.log('| --- | --- | --- | --- |');
for (const r of results) console.log(`| ${r.name} | ${r.code} | ${r.seconds.toFixed(0)} s | ${relative(root, join(logDir, `${r.name}.log`))} |`);
for (const r of results) {
  const table = lastTable(r.output);
  console.log(`\n### ${r.name}\n`);
  console.log(table ?? r.output.trim().split('\n').slice(-3).join('\n'));
}
console.log(`\nload average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (on a shared machine, read ratios against the peer, not absolute times)`);
const failed = results.filter((r) => r.code !== 0);
if (failed.length) {
  console.log(`\n${failed.length} benchmark(s) failed: ${failed.map((r) => r.name).join(', ')}`);
  process.exitCode = 1;
}
