// Rules about where code may live, checked over lib/ itself: no import
// cycles (the build fails on one too), and SQL only in the store. Each check
// is also fed a broken input so it is seen to fail.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { importCycleProblems, importCycles, importsOf, libImportGraph } from '../scripts/import-cycles.mjs';
import { root } from './helpers/build.ts';

test('importsOf: every static form, type-only included; dynamic import(); not packages, not comments', () => {
  const source = [
    "import { a } from './a.ts';",
    "import type { B } from '../b.ts';",
    'import {',
    '  c,',
    "  type C } from './c/index.ts';",
    "export { d } from './d.ts';",
    "export type * from './e.ts';",
    "import './side-effect.ts';",
    "const f = () => import('./f.ts');",
    "import { undici } from 'undici';",
    "import { readFileSync } from 'node:fs';",
    "// import { g } from './g.ts';",
    " * import { h } from './h.ts';",
  ].join('\n');
  assert.equal(importsOf(source), ['./a.ts', '../b.ts', './c/index.ts', './d.ts', './e.ts', './side-effect.ts', './f.ts']);
});

test('importCycles: two modules, three modules, a module importing itself; none in a tree; only under lib/', () => {
  assert.equal(importCycles({ 'lib/a.ts': ['lib/b.ts'], 'lib/b.ts': ['lib/c.ts'], 'lib/c.ts': [] }), []);
  assert.equal(importCycles({ 'lib/b.ts': ['lib/a.ts'], 'lib/a.ts': ['lib/b.ts', 'lib/c.ts'], 'lib/c.ts': [] }), [['lib/a.ts', 'lib/b.ts']]);
  assert.equal(importCycles({
    'lib/x/1.ts': ['lib/x/2.ts'], 'lib/x/2.ts': ['lib/x/3.ts'], 'lib/x/3.ts': ['lib/x/1.ts'],
    'lib/self.ts': ['lib/self.ts'],
    'lib/ok.ts': ['lib/x/1.ts'],
  }), [['lib/self.ts'], ['lib/x/1.ts', 'lib/x/2.ts', 'lib/x/3.ts']]);
  assert.equal(importCycles({ 'test/a.ts': ['test/b.ts'], 'test/b.ts': ['test/a.ts'] }), []);
  const problems = importCycleProblems({ 'lib/server/service.ts': ['lib/server/state.ts'], 'lib/server/state.ts': ['lib/server/service.ts'] });
  assert.equal(problems, ['import cycle: lib/server/service.ts → lib/server/state.ts → lib/server/service.ts (move what they share into a module of its own)']);
});

test('lib/ has no import cycle', () => {
  const graph = libImportGraph(root);
  assert.ok(Object.keys(graph).length > 100, `only ${Object.keys(graph).length} modules read`);
  assert.ok(graph['lib/server/service.ts']!.includes('lib/server/state.ts'), 'the graph misses a known import');
  assert.equal(importCycleProblems(graph), []);
});

// SQL statements as the store writes them: a keyword, then what it works on.
const SQL = /\b(SELECT\s+[\w*(]|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE|PRAGMA\s+\w)/;
/** The store (store.ts and store/), and db.ts, which owns the schema, migrations and the database file's settings. */
const SQL_HOMES = [/^lib\/server\/store\//, /^lib\/server\/store\.ts$/, /^lib\/server\/db\.ts$/];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sourceFiles(p) : /\.tsx?$/.test(n) ? [p] : [];
  });
}

test('SQL lives in the store: no statement in lib/ outside lib/server/store/, store.ts and db.ts', () => {
  assert.ok(SQL.test("this.q.get('SELECT 1 AS x FROM runs WHERE id = ?')") && SQL.test('DELETE FROM workers') && SQL.test("exec('PRAGMA journal_mode = DELETE')"));
  assert.not.ok(SQL.test('Select a pool, then update the worker'));
  const outside = sourceFiles(join(root, 'lib'))
    .map((p) => relative(root, p))
    .filter((p) => !SQL_HOMES.some((h) => h.test(p)))
    .flatMap((p) => readFileSync(join(root, p), 'utf8').split('\n').flatMap((line, i) => (SQL.test(line) ? [`${p}:${i + 1}: ${line.trim()}`] : [])));
  assert.equal(outside, []);
});

test.run();
