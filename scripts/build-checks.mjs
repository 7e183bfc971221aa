// Checks the build runs on what it made. Each returns the problems it found
// as sentences (an empty list when all is well) so build.mjs can fail with
// them and tests can feed them broken input.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The lib/cli/<name>.ts modules launcher.ts loads lazily. A command table
 * this does not recognise (reformatted, or loading modules another way) is an
 * error, not an empty list: an empty list would let every check pass.
 */
export function commandModules(launcherSource) {
  const found = [...launcherSource.matchAll(/import\('\.\/(lib\/cli\/[\w-]+\.ts)'\)/g)].map((m) => m[1]);
  if (found.length === 0) {
    throw new Error("No command modules found in launcher.ts: expected entries like `name: () => import('./lib/cli/name.ts')` in its command table");
  }
  return found;
}

/** Command modules that esbuild did not put in the bundle (metafile inputs). */
export function missingCommandModules(launcherSource, bundledInputs) {
  const inputs = new Set(bundledInputs);
  let expected;
  try {
    expected = commandModules(launcherSource);
  } catch (e) {
    return [e.message];
  }
  return expected.filter((m) => !inputs.has(m)).map((m) => `the bundle lacks the command module ${m}`);
}

/** Strips comments and string/template literals so only code is searched. */
function codeOnly(js) {
  return js.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, (m) => (m.startsWith('/') ? ' ' : '""'));
}

/**
 * import() left in the bundle. The executable's code cache cannot serve
 * import(), so each one would fail at run time inside the binary.
 */
export function leftoverDynamicImports(bundleText) {
  const code = codeOnly(bundleText);
  const problems = [];
  for (const m of code.matchAll(/(?<![\w$.])import\s*\(/g)) {
    const line = code.slice(0, m.index).split('\n').length;
    problems.push(`the bundle calls import() at line ${line}, which fails inside the executable (the code cache cannot serve it)`);
  }
  return problems;
}

/**
 * scripts/undici-slim.cjs requires undici's internal files and copies a
 * function from its index, so it is written for one exact undici version:
 * any other version must be re-checked by hand before it is bundled.
 */
export function undiciSlimProblems(root) {
  const slim = readFileSync(join(root, 'scripts/undici-slim.cjs'), 'utf8');
  const written = /UNDICI_VERSION = '([^']+)'/.exec(slim)?.[1];
  const installed = JSON.parse(readFileSync(join(root, 'node_modules/undici/package.json'), 'utf8')).version;
  const pinned = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).dependencies?.undici;
  const problems = [];
  if (!written) problems.push('scripts/undici-slim.cjs does not say which undici version it was written for (UNDICI_VERSION)');
  else if (installed !== written) {
    problems.push(`undici ${installed} is installed but scripts/undici-slim.cjs was written for ${written}: compare its require() paths and makeDispatcher with node_modules/undici/index.js, then update UNDICI_VERSION`);
  }
  if (pinned !== installed) problems.push(`package.json must pin undici to the exact version installed (${installed}), not "${pinned}"`);
  return problems;
}
