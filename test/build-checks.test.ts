// The checks build.mjs runs on its own output, fed broken input so each is
// seen to fail, and the slim undici module the bundle uses instead of
// undici's index, exercised with real requests to a loopback server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandModules, leftoverDynamicImports, missingCommandModules, undiciSlimProblems } from '../scripts/build-checks.mjs';
import { asciiOnly, CHUNK_FILE, chunkEntry } from '../scripts/commands-chunk.mjs';
import { root } from './helpers/build.ts';

const launcherSource = readFileSync(join(root, 'launcher.ts'), 'utf8');

test('command modules: read from launcher.ts; a missing one is named', () => {
  const mods = commandModules(launcherSource);
  assert.ok(mods.includes('lib/cli/state.ts') && mods.includes('lib/cli/server.ts'), mods.join(', '));
  assert.equal(missingCommandModules(launcherSource, mods), []);
  const without = mods.filter((m) => m !== 'lib/cli/state.ts');
  assert.equal(missingCommandModules(launcherSource, without), ['the bundle lacks the command module lib/cli/state.ts']);
});

test('command modules: a command table the check cannot read fails instead of passing with nothing to check', () => {
  const reformatted = launcherSource.replace(/import\('\.\/(lib\/cli\/[\w-]+\.ts)'\)/g, 'import(`./$1`)');
  assert.throws(() => commandModules(reformatted), /No command modules found in launcher\.ts/);
  const problems = missingCommandModules(reformatted, []);
  assert.is(problems.length, 1);
  assert.match(problems[0]!, /No command modules found/);
});

test('dynamic import(): found in code, with its line; ignored in comments and strings', () => {
  const bundle = [
    '// import("x") in a comment',
    '/* import(y) */ const s = "import(z)", t = `import(w)`;',
    'const m = obj.import(1);', // a method named import is not import()
    'load(() => import("node:sqlite"));',
  ].join('\n');
  const problems = leftoverDynamicImports(bundle);
  assert.is(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /line 4/);
  assert.equal(leftoverDynamicImports('require("node:sqlite")'), []);
});

test('the built bundle passes both checks', () => {
  const bundle = readFileSync(join(root, 'dist/launcher.cjs'), 'utf8');
  assert.equal(leftoverDynamicImports(bundle), []);
  assert.equal(leftoverDynamicImports(readFileSync(join(root, 'dist', CHUNK_FILE), 'utf8')), []);
});

test('ASCII only: every non-ASCII character becomes an escape that means the same in strings, templates and regexps', () => {
  const js = 'const a = "5× — 😀"; const b = `é`; const r = /[à-ÿ]/; // café ≤ 100 MB';
  const escaped = asciiOnly(js);
  assert.ok(/^[\x00-\x7f]*$/.test(escaped), escaped);
  assert.ok(escaped.endsWith('// caf\\u00e9 \\u2264 100 MB'), escaped);
  const run = (src: string) => new Function(`${src}\nreturn [a, b, r.test('é'), r.test('e')];`)();
  assert.equal(run(escaped), ['5× — 😀', 'é', true, false]);
  assert.equal(run(escaped), run(js));
});

test('the built bundles are ASCII (Node then keeps one byte per character of the script)', () => {
  for (const f of ['launcher.cjs', CHUNK_FILE]) {
    const text = readFileSync(join(root, 'dist', f), 'latin1');
    const at = text.search(/[^\x00-\x7f]/);
    assert.is(at, -1, `${f} has a non-ASCII byte at offset ${at}`);
  }
});

test('commands chunk: its entry loads each command module by name and refuses an unknown one', () => {
  const entry = chunkEntry({ state: 'lib/cli/state.ts', server: 'lib/cli/server.ts' });
  const required: string[] = [];
  const exports: { load?: (name: string) => unknown } = {};
  new Function('exports', 'require', entry)(exports, (p: string) => { required.push(p); return { run: p }; });
  assert.equal(exports.load!('state'), { run: './lib/cli/state.ts' });
  assert.equal(exports.load!('server'), { run: './lib/cli/server.ts' });
  assert.equal(required, ['./lib/cli/state.ts', './lib/cli/server.ts']);
  assert.throws(() => exports.load!('version'), /No command module "version" in the commands chunk/);
});

test('undici: the slim module is written for the exact version installed and pinned; another version fails the build', () => {
  assert.equal(undiciSlimProblems(root), []);
  const copy = mkdtempSync(join(tmpdir(), 'launcher-undici-check-'));
  try {
    mkdirSync(join(copy, 'scripts'));
    mkdirSync(join(copy, 'node_modules/undici'), { recursive: true });
    cpSync(join(root, 'package.json'), join(copy, 'package.json'));
    cpSync(join(root, 'scripts/undici-slim.cjs'), join(copy, 'scripts/undici-slim.cjs'));
    cpSync(join(root, 'node_modules/undici/package.json'), join(copy, 'node_modules/undici/package.json'));
    const pkg = JSON.parse(readFileSync(join(copy, 'node_modules/undici/package.json'), 'utf8'));
    writeFileSync(join(copy, 'node_modules/undici/package.json'), JSON.stringify({ ...pkg, version: '9.0.0' }));
    const problems = undiciSlimProblems(copy);
    assert.ok(problems.some((p) => /undici 9\.0\.0 is installed but scripts\/undici-slim\.cjs was written for /.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /must pin undici to the exact version installed \(9\.0\.0\)/.test(p)), problems.join('\n'));
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});

test("undici: the slim module's makeDispatcher is undici's own, token for token", () => {
  // Compare without whitespace, semicolons, trailing commas and the `errors.` prefix the copy adds.
  const body = (src: string) => {
    const start = src.indexOf('function makeDispatcher');
    const end = src.indexOf('\n}\n', start);
    assert.ok(start >= 0 && end > start, 'makeDispatcher found');
    return src.slice(start, end).replace(/errors\./g, '').replace(/[\s;]/g, '').replace(/,([}\])])/g, '$1');
  };
  const theirs = body(readFileSync(join(root, 'node_modules/undici/index.js'), 'utf8'));
  const ours = body(readFileSync(join(root, 'scripts/undici-slim.cjs'), 'utf8'));
  assert.is(ours, theirs);
});

test('undici: request, Pool and Agent from the slim module talk to a real server', async () => {
  const slim = createRequire(import.meta.url)(join(root, 'scripts/undici-slim.cjs'));
  const server: Server = createServer((req, res) => res.end(`${req.method} ${req.url}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const pool = new slim.Pool(origin);
  const agent = new slim.Agent();
  try {
    const viaRequest = await slim.request(`${origin}/a?b=1`, { dispatcher: agent });
    assert.is(viaRequest.statusCode, 200);
    assert.is(await viaRequest.body.text(), 'GET /a?b=1');
    const viaPool = await pool.request({ path: '/p', method: 'POST', body: 'x' });
    assert.is(await viaPool.body.text(), 'POST /p');
    assert.throws(() => slim.request(`${origin}/`, { agent }), /unsupported opts\.agent/);
    assert.ok(new slim.errors.InvalidArgumentError('x') instanceof Error);
  } finally {
    await pool.close();
    await agent.close();
    server.close();
  }
});

test.run();
