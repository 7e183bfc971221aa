#!/usr/bin/env node
// `npm run build`: one executable for air-gapped hosts.
//
//   1. esbuild bundles launcher.ts's dispatch and `version` into
//      dist/launcher.cjs, and every other command module with all it imports
//      (node-forge, tar-stream, undici, ...) into dist/launcher-commands.cjs,
//      loaded on first use (scripts/commands-chunk.mjs), with the version and
//      commit stamped in;
//   2. Node's single executable application support injects the first as the
//      main script, and the second with its V8 code cache as assets, into a
//      stripped copy of the pinned Node: dist/launcher-linux-<arch>;
//   3. dist/SHA256SUMS lists what was built, for install.sh to verify, and
//      dist/install.sh is a copy of scripts/install.sh: dist/ is the directory
//      a launcher server publishes (see lib/server/distribution.ts).
//
// Flags (after `npm run build --`):
//   --arch x64|arm64   architecture to build, repeatable (default: x64)
//   --reproducible     no V8 code cache: byte-identical binaries, slower start-up
//   --compress         also write .gz (gzip -9) and .xz copies (xz takes a while)
//   --bundle-only      stop after the two bundles
//   --out-dir DIR      write there instead of dist/ (tests build twice to compare)
// dist/ holds exactly what the last build made.
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { bundleConsole } from './scripts/console-bundle.mjs';
import { ARCHES, baseNodeFor, buildSea, hostArch, pinnedNodeVersion, sha256File, strippedCopy } from './scripts/build-sea.mjs';
import { leftoverDynamicImports, missingCommandModules, undiciSlimProblems } from './scripts/build-checks.mjs';
import { asciiOnly, CHUNK_CACHE, CHUNK_FILE, chunkCommandsPlugin, chunkEntry, loaderBanner, MAIN_COMMANDS, makeChunkCodeCache } from './scripts/commands-chunk.mjs';
import { importCycleProblems, libImportGraph } from './scripts/import-cycles.mjs';

const root = dirname(new URL(import.meta.url).pathname);
const cacheDir = join(root, '.tmp/build-cache');
const started = process.hrtime.bigint();
const log = (msg) => process.stderr.write(`build: ${msg}\n`);
const elapsed = () => `${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`;

const { values: opts } = parseArgs({
  options: {
    arch: { type: 'string', multiple: true, default: ['x64'] },
    reproducible: { type: 'boolean', default: false },
    compress: { type: 'boolean', default: false },
    'bundle-only': { type: 'boolean', default: false },
    'out-dir': { type: 'string' },
  },
});
const dist = resolve(root, opts['out-dir'] ?? 'dist');
const arches = [...new Set(opts.arch.flatMap((a) => a.split(',')))];
for (const a of arches) {
  if (!ARCHES.includes(a)) fail(`Unknown --arch "${a}": expected one of ${ARCHES.join(', ')}`);
}

function fail(msg) {
  log(msg);
  process.exit(1);
}

/**
 * Short commit, "-dirty" when tracked files differ from it, "unknown" outside
 * git. LAUNCHER_BUILD_COMMIT overrides it (builds from a source tarball).
 */
function gitCommit() {
  if (process.env.LAUNCHER_BUILD_COMMIT) return process.env.LAUNCHER_BUILD_COMMIT;
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

// --build-sea writes a blob only the same Node version can read, so the
// building Node must be the pinned one that becomes the executable.
const pinned = pinnedNodeVersion(root);
if (process.versions.node !== pinned) {
  fail(`Node ${process.versions.node} is running the build: expected the pinned ${pinned} (run it as \`npm run build\`, which puts node_modules/.bin first)`);
}

const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const commit = gitCommit();
mkdirSync(dist, { recursive: true });
const bundlePath = join(dist, 'launcher.cjs');
const chunkPath = join(dist, CHUNK_FILE);

// The web console's browser code is bundled first and embedded as a constant
// (lib/console/assets.ts), so the executable serves it without any file.
const consoleFiles = await bundleConsole(root);
const consoleGzip = gzipSync(consoleFiles.js, { level: 9 }).length + gzipSync(consoleFiles.css, { level: 9 }).length;
// The issue's budget for the whole first load; the shell page adds under 1 KB.
if (consoleGzip > 150 * 1024) fail(`The web console is ${(consoleGzip / 1024).toFixed(1)} KB gzipped: over the 150 KB first-load budget`);
log(`web console: ${(consoleFiles.js.length / 1024).toFixed(0)} KiB script, ${(consoleFiles.css.length / 1024).toFixed(0)} KiB style, ${(consoleGzip / 1024).toFixed(1)} KiB gzipped`);
// They travel beside the bundle, not inside it: as string literals in the
// main script they cost every command's start-up (~12 % more instructions for
// `launcher version`) although only `launcher server` serves them. The
// executable carries them as SEA assets; `node dist/launcher.cjs` reads
// dist/console/. The banner's getters read them on first use.
const consoleDir = join(dist, 'console');
mkdirSync(consoleDir, { recursive: true });
const consoleAssets = { 'console/app.js': join(consoleDir, 'app.js'), 'console/app.css': join(consoleDir, 'app.css') };
writeFileSync(consoleAssets['console/app.js'], consoleFiles.js);
writeFileSync(consoleAssets['console/app.css'], consoleFiles.css);
const consoleBanner = `var __launcher_console_assets = (() => {
  const read = (key) => { const sea = require('node:sea'); return sea.isSea() ? sea.getAsset(key, 'utf8') : require('node:fs').readFileSync(require('node:path').join(__dirname, key), 'utf8'); };
  return { get js() { return read('console/app.js'); }, get css() { return read('console/app.css'); } };
})();`;

const undiciProblems = undiciSlimProblems(root);
if (undiciProblems.length) fail(undiciProblems.join('\n'));
const cycles = importCycleProblems(libImportGraph(root));
if (cycles.length) fail(cycles.join('\n'));

// The age worker thread (lib/age/worker.ts) is a module of its own; inside the
// executable there is no file to start it from, so its bundle travels as a
// string constant that lib/age/parallel.ts hands to new Worker(…, { eval: true }).
const ageWorker = await build({
  entryPoints: [join(root, 'lib/age/worker.ts')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node26',
  write: false,
  logLevel: 'warning',
});
const ageWorkerSource = ageWorker.outputFiles[0].text;

// Options both bundles share: the stamps, the CommonJS mapping of ESM-only
// globals, no import(), and the slim undici.
const shared = {
  bundle: true,
  platform: 'node',
  format: 'cjs', // the SEA entry is a CommonJS script
  target: 'node26',
  metafile: true,
  write: false,
  logLevel: 'warning',
  define: {
    LAUNCHER_BUILD_VERSION: JSON.stringify(version),
    LAUNCHER_BUILD_COMMIT: JSON.stringify(commit),
    LAUNCHER_CONSOLE_ASSETS: '__launcher_console_assets',
    // ESM-only globals have no CommonJS meaning; give them the executable's
    // own path (in a SEA, __filename is the binary) instead of undefined.
    'import.meta.url': '__launcher_import_meta_url',
    'import.meta.filename': '__filename',
    'import.meta.dirname': '__dirname',
    LAUNCHER_AGE_WORKER_SOURCE: JSON.stringify(ageWorkerSource),
  },
  // The SEA's code cache cannot serve import(); turning the remaining
  // import() of built-ins (e.g. node:sqlite) into require() keeps them working.
  supported: { 'dynamic-import': false },
};
// Only the parts of undici the launcher uses (see scripts/undici-slim.cjs):
// its full index costs every idle launcher memory for fetch, WebSocket,
// mocks and caches it never calls.
const undiciSlim = {
  name: 'undici-slim',
  setup(b) { b.onResolve({ filter: /^undici$/ }, () => ({ path: join(root, 'scripts/undici-slim.cjs') })); },
};
const importMetaBanner = `var __launcher_import_meta_url = require('node:url').pathToFileURL(__filename).href;`;

// Two bundles (scripts/commands-chunk.mjs says why): the main script with
// launcher.ts's dispatch and `version`, and the commands chunk with every
// other command module.
const launcherPath = join(root, 'launcher.ts');
const launcherSource = readFileSync(launcherPath, 'utf8');
const chunkCommands = Object.fromEntries(
  [...launcherSource.matchAll(/^\s+([\w-]+): \(\) => import\('\.\/(lib\/cli\/[\w-]+\.ts)'\)/gm)]
    .filter(([, name]) => !MAIN_COMMANDS.has(name))
    .map(([, name, path]) => [name, path]),
);
const chunk = await build({
  ...shared,
  stdin: { contents: chunkEntry(chunkCommands), resolveDir: root, sourcefile: 'launcher-commands.js', loader: 'js' },
  outfile: chunkPath,
  banner: { js: `${importMetaBanner}\n${consoleBanner}` },
  plugins: [undiciSlim],
});
const result = await build({
  ...shared,
  entryPoints: [launcherPath],
  outfile: bundlePath,
  banner: { js: `${importMetaBanner}\n${loaderBanner}` },
  plugins: [undiciSlim, chunkCommandsPlugin(launcherPath, chunkCommands)],
});
const bundleText = asciiOnly(result.outputFiles[0].text);
const chunkText = asciiOnly(chunk.outputFiles[0].text);
writeFileSync(bundlePath, bundleText);
writeFileSync(chunkPath, chunkText);

const inputs = [...new Set([...Object.keys(result.metafile.inputs), ...Object.keys(chunk.metafile.inputs)])];
const problems = [
  ...missingCommandModules(launcherSource, inputs),
  ...leftoverDynamicImports(bundleText),
  ...leftoverDynamicImports(chunkText).map((p) => `commands chunk: ${p}`),
  ...leftoverDynamicImports(ageWorkerSource).map((p) => `age worker: ${p}`),
];
if (problems.length) fail(`The bundle is not fit for the executable:\n  ${problems.join('\n  ')}`);
log(`bundled ${inputs.length} modules into ${bundlePath} (${(bundleText.length / 1024).toFixed(0)} KiB) and ${chunkPath} (${(chunkText.length / 1024).toFixed(0)} KiB), version ${version}, commit ${commit} [${elapsed()}]`);

copyFileSync(join(root, 'scripts/install.sh'), join(dist, 'install.sh'));

const built = [];
if (!opts['bundle-only']) {
  const workDir = join(dist, '.sea');
  for (const arch of arches) {
    const base = baseNodeFor(arch, { root, cacheDir, log });
    const stripped = join(workDir, `node-linux-${arch}`);
    mkdirSync(workDir, { recursive: true });
    const didStrip = strippedCopy(base, stripped, { arch });
    const name = `launcher-linux-${arch}`;
    const codeCache = !opts.reproducible && arch === hostArch();
    const assets = { ...consoleAssets, [CHUNK_FILE]: chunkPath };
    if (codeCache) {
      // The chunk's code cache is V8 bytecode of the host's Node, the same
      // version as the executable (checked above), made without flags like it.
      assets[CHUNK_CACHE] = join(workDir, CHUNK_CACHE);
      makeChunkCodeCache(process.execPath, chunkPath, assets[CHUNK_CACHE]);
    }
    buildSea({ bundle: bundlePath, base: stripped, output: join(dist, name), workDir, codeCache, assets });
    if (codeCache) {
      // V8 silently falls back to compiling everything when the cache was made
      // under other flags (SEA_EXEC_ARGV): catch that here, not in start-up times.
      const check = spawnSync(join(dist, name), ['version'], { encoding: 'utf8' });
      if (check.status !== 0 || /code cache data rejected/i.test(check.stderr)) fail(`${name} does not start cleanly: ${check.stderr.trim() || `exit ${check.status}`}`);
    }
    rmSync(stripped, { force: true });
    built.push(name);
    log(`${name}: ${(statSync(join(dist, name)).size / 1e6).toFixed(1)} MB (${didStrip ? `Node stripped by ${didStrip}` : 'unstripped Node'}, code cache ${codeCache ? 'on' : 'off'}) [${elapsed()}]`);
  }
  // Binaries of architectures not built now are from an older build: drop them
  // so SHA256SUMS and the directory the server publishes always agree.
  for (const f of readdirSync(dist)) {
    if (/^launcher-linux-/.test(f) && !built.some((b) => f === b || f.startsWith(`${b}.`))) rmSync(join(dist, f));
  }
  if (opts.compress) {
    for (const name of [...built]) {
      execFileSync('sh', ['-c', `gzip -9 -n -c "$1" > "$1.gz"`, 'sh', join(dist, name)]);
      execFileSync('xz', ['-T0', '-6', '-k', '-f', join(dist, name)]);
      built.push(`${name}.gz`, `${name}.xz`);
      log(`${name}: compressed copies written [${elapsed()}]`);
    }
  } else {
    for (const name of built) for (const ext of ['.gz', '.xz']) rmSync(join(dist, name + ext), { force: true });
  }
  const sums = [];
  for (const name of built) sums.push(`${await sha256File(join(dist, name))}  ${name}\n`);
  writeFileSync(join(dist, 'SHA256SUMS'), sums.join(''));
}

writeFileSync(join(dist, 'build-info.json'), JSON.stringify({
  version, commit, node: process.versions.node, built, reproducible: opts.reproducible,
  seconds: Number(process.hrtime.bigint() - started) / 1e9,
}, null, 2) + '\n');
if (existsSync(join(dist, 'SHA256SUMS')) && built.length) log(`wrote ${join(dist, 'SHA256SUMS')} for ${built.join(', ')}`);
log(`done in ${elapsed()}`);
