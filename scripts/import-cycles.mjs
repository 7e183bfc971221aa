#!/usr/bin/env node
// Import cycles among the modules under lib/. A cycle means two modules each
// need the other: neither can be read, tested or moved alone, and ESM leaves
// one of them half-initialised while the other runs. The build and a test
// fail on any cycle; the fix is to move what both need into a module of its own.
//
//   node scripts/import-cycles.mjs     prints the cycles, exits 1 when there are any
//
// Imports used only for types count too: a type-only cycle still means two
// modules that cannot be understood apart (which is why this reads the
// sources rather than a bundler's graph, from which types are erased).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The cycles of a graph (`{ module: [imported modules] }`), each as the list of
 * its modules starting from the smallest name, following import order; only
 * modules whose name starts with `under` count. Tarjan's strongly connected
 * components: every component of more than one module holds a cycle, and so
 * does a module that imports itself.
 */
export function importCycles(graph, under = 'lib/') {
  const inScope = (m) => m.startsWith(under);
  const edges = (m) => (graph[m] ?? []).filter(inScope);
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const components = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) === index.get(v)) {
      const c = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); c.push(w); } while (w !== v);
      if (c.length > 1 || edges(v).includes(v)) components.push(c);
    }
  };
  for (const m of Object.keys(graph).filter(inScope).sort()) if (!index.has(m)) visit(m);
  return components.map((c) => cyclePath(c, edges)).sort((a, b) => a[0].localeCompare(b[0]));
}

/** One cycle through a component, as a path from its smallest module back to it (the last edge is implied). */
function cyclePath(component, edges) {
  const members = new Set(component);
  const start = [...component].sort()[0];
  // Breadth-first from start to any module importing start, inside the component.
  const from = new Map([[start, null]]);
  const queue = [start];
  while (queue.length) {
    const v = queue.shift();
    for (const w of edges(v)) {
      if (w === start) {
        const path = [];
        for (let x = v; x !== null; x = from.get(x)) path.unshift(x);
        return path;
      }
      if (members.has(w) && !from.has(w)) { from.set(w, v); queue.push(w); }
    }
  }
  return [start];
}

/** Sentences for build.mjs and tests: one per cycle, naming its modules in order. */
export function importCycleProblems(graph, under = 'lib/') {
  return importCycles(graph, under).map((c) => `import cycle: ${[...c, c[0]].join(' → ')} (move what they share into a module of its own)`);
}

/**
 * The relative modules a source imports or re-exports: `import … from './x.ts'`,
 * `import type …`, `export … from`, `import './x.ts'` and `import('./x.ts')`.
 * Statements start a line, so an example in a comment (after `//` or ` * `) is not read.
 */
export function importsOf(source) {
  const found = [];
  for (const m of source.matchAll(/^[ \t]*(?:import|export)\b[^;'"`]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]|^[ \t]*import\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/gm)) {
    found.push(m[1] ?? m[2] ?? m[3]);
  }
  return found;
}

function sourceFiles(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(m?[jt]sx?)$/.test(n) && !n.endsWith('.d.ts') ? [p] : [];
  });
}

/** The import graph of every module under lib/, paths relative to `root`. */
export function libImportGraph(root) {
  const graph = {};
  for (const file of sourceFiles(join(root, 'lib'))) {
    graph[relative(root, file)] = importsOf(readFileSync(file, 'utf8')).map((spec) => relative(root, resolve(dirname(file), spec)));
  }
  return graph;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const root = new URL('..', import.meta.url).pathname;
  const problems = importCycleProblems(libImportGraph(root));
  for (const p of problems) process.stderr.write(`${p}\n`);
  if (problems.length) process.exit(1);
  process.stdout.write('No import cycles in lib/\n');
}
