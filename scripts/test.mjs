#!/usr/bin/env node
// The test command: strict type-check, then every test/**/*.test.ts in its own
// process (uvu suites run under tsx). Each file's uvu summary is parsed and the
// totals end in one line "N passed, N failed" that CI reads.
//
//   npm test                     everything
//   npm test -- mask docker      only files whose path contains "mask" or "docker"
//   TEST_JOBS=2 npm test         run two files at once
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const jobs = Math.max(1, Number(process.env.TEST_JOBS ?? 1));
const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 8 * 60_000);

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const files = walk(join(root, 'test'))
  .filter((p) => p.endsWith('.test.ts'))
  .map((p) => relative(root, p))
  .filter((p) => filters.length === 0 || filters.some((f) => p.includes(f)))
  .sort();

function runProcess(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { out += `\n[test runner] killed after ${fileTimeoutMs} ms\n`; child.kill('SIGKILL'); }, fileTimeoutMs);
    child.on('close', (code, sig) => { clearTimeout(timer); resolve({ code: code ?? (sig ? 128 : 1), out, ms: Date.now() - started }); });
  });
}

let passed = 0;
let failed = 0;
const failures = [];

if (filters.length === 0 || filters.includes('typecheck')) {
  // Two projects: the server/CLI code (Node types) and the console's browser code (DOM types).
  for (const project of ['.', 'lib/console/app']) {
    const r = await runProcess(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', project]);
    const name = project === '.' ? 'typecheck' : `typecheck ${project}`;
    if (r.code === 0) { passed++; console.log(`ok   ${name} (${r.ms} ms)`); }
    else { failed++; failures.push(name); console.log(`FAIL ${name}\n${r.out}`); }
  }
}

const queue = [...files];
async function worker() {
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    const r = await runProcess(process.execPath, ['--import', 'tsx', f]);
    const total = Number(/Total:\s+(\d+)/.exec(r.out)?.[1] ?? NaN);
    const ok = Number(/Passed:\s+(\d+)/.exec(r.out)?.[1] ?? NaN);
    const skipped = Number(/Skipped:\s+(\d+)/.exec(r.out)?.[1] ?? 0);
    if (Number.isNaN(total) || Number.isNaN(ok)) {
      failed++;
      failures.push(f);
      console.log(`FAIL ${f}: no uvu summary (exit ${r.code})\n${r.out}`);
      continue;
    }
    const bad = total - ok - skipped + (r.code !== 0 && total === ok ? 1 : 0);
    passed += ok;
    failed += bad;
    if (bad > 0) { failures.push(f); console.log(`FAIL ${f} (${ok}/${total}, exit ${r.code}, ${r.ms} ms)\n${r.out}`); }
    else console.log(`ok   ${f} (${ok} tests, ${r.ms} ms)`);
  }
}
await Promise.all(Array.from({ length: jobs }, worker));

if (failures.length) console.log(`\nFailed: ${failures.join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
