// The executable's main script holds only launcher.ts's dispatch and the
// `version` command; every other command module (and all they import) is a
// second bundle, the commands chunk, loaded on first use. Why: V8 runs a
// script's top level before anything else, and esbuild hoists every bundled
// module's functions to the top level, so a single 2.7 MB bundle made each
// start create thousands of closures `launcher version` never calls (callgrind:
// the bundle's top level cost ~7 M instructions on top of a trivial
// executable's ~93 M; docs/benchmarks.md, round 3).
//
// Inside the executable the chunk is a SEA asset, compiled with vm.Script from
// a V8 code cache the build made with the same Node (another asset), so the
// commands that load it start as fast as from the main script's own cache.
// `node dist/launcher.cjs` requires dist/launcher-commands.cjs beside it.
import { spawnSync } from 'node:child_process';

export const CHUNK_FILE = 'launcher-commands.cjs';
export const CHUNK_CACHE = 'launcher-commands.cache';

/** Commands that stay in the main script: cheap, and the ones start-up is measured by. */
export const MAIN_COMMANDS = new Set(['version']);

/** The chunk's entry: `load(name)` evaluates one command module and returns its exports. */
export function chunkEntry(commandModules) {
  const cases = Object.entries(commandModules)
    .map(([name, path]) => `    case ${JSON.stringify(name)}: return require(${JSON.stringify(`./${path}`)});`)
    .join('\n');
  return `exports.load = (name) => {\n  switch (name) {\n${cases}\n    default: throw new Error('No command module "' + name + '" in the commands chunk');\n  }\n};\n`;
}

// One line, so line numbers in stack traces match dist/launcher-commands.cjs.
const WRAP_START = '(function (exports, require, module, __filename, __dirname) {';
const WRAP_END = '\n})';

/**
 * Main-script banner: `__launcher_commands()` loads the chunk once. The
 * chunk gets the main script's require (in the executable: built-in modules
 * only, all a bundle needs), __filename and __dirname (the executable's path).
 */
export const loaderBanner = `var __launcher_commands = (() => {
  let chunk;
  const load = () => {
    const sea = require('node:sea');
    if (!sea.isSea()) return require(require('node:path').join(__dirname, ${JSON.stringify(CHUNK_FILE)}));
    const source = Buffer.from(sea.getRawAsset(${JSON.stringify(CHUNK_FILE)})).toString('latin1');
    let cachedData;
    try { cachedData = Buffer.from(sea.getRawAsset(${JSON.stringify(CHUNK_CACHE)})); } catch { /* built without code cache */ }
    const script = new (require('node:vm').Script)(${JSON.stringify(WRAP_START)} + source + ${JSON.stringify(WRAP_END)}, { filename: ${JSON.stringify(CHUNK_FILE)}, cachedData });
    const module = { exports: {} };
    script.runInThisContext().call(module.exports, module.exports, require, module, __filename, __dirname);
    return module.exports;
  };
  return () => (chunk ??= load());
})();`;

/**
 * esbuild plugin for the main script: launcher.ts's import() of a chunk
 * command becomes a module that asks the loaded chunk for it.
 */
export function chunkCommandsPlugin(launcherPath, chunkCommands) {
  return {
    name: 'commands-chunk',
    setup(b) {
      b.onResolve({ filter: /^\.\/lib\/cli\/[\w-]+\.ts$/ }, (args) => {
        if (args.importer !== launcherPath) return undefined;
        const name = Object.entries(chunkCommands).find(([, path]) => `./${path}` === args.path)?.[0];
        return name === undefined ? undefined : { path: name, namespace: 'commands-chunk' };
      });
      b.onLoad({ filter: /.*/, namespace: 'commands-chunk' }, (args) => ({
        contents: `module.exports = __launcher_commands().load(${JSON.stringify(args.path)});\n`,
        loader: 'js',
      }));
    },
  };
}

/**
 * TEXT with every non-ASCII character written as a \\u escape. Node hands V8
 * an ASCII main script as one byte per character; a single "×" or "—" in a
 * comment made it decode the whole 2.7 MB bundle into a two-byte string at
 * every start (~680 more page faults, ~14 M more instructions for `launcher
 * version`). esbuild already escapes strings; comments keep their characters.
 * An escape means the same in comments, strings, templates and regexps.
 */
export function asciiOnly(text) {
  return text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The V8 code cache for the chunk as the executable compiles it, made by NODE
 * (the executable's own Node, run without flags like the executable: V8
 * rejects a cache made under other flags). Checked by compiling once more
 * with it; throws when V8 would not use it.
 */
export function makeChunkCodeCache(node, chunkPath, cachePath) {
  const program = `
    const { Script } = require('node:vm');
    const fs = require('node:fs');
    const [chunkPath, cachePath, start, end, filename] = process.argv.slice(1);
    const code = start + fs.readFileSync(chunkPath, 'latin1') + end;
    const made = new Script(code, { filename, produceCachedData: true }).cachedData;
    if (new Script(code, { filename, cachedData: made }).cachedDataRejected) throw new Error('V8 rejects the code cache it just made');
    fs.writeFileSync(cachePath, made);`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(node, ['-e', program, chunkPath, cachePath, WRAP_START, WRAP_END, CHUNK_FILE], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`making the commands chunk's code cache failed (exit ${r.status}): ${r.stderr}`);
}
