// The built executable for tests and benchmarks: builds dist/ when it is
// missing or older than any source it is made from, so what is tested is what
// ships. A lock directory keeps two test files from building at once.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const dist = join(root, 'dist');
export const binary = join(dist, 'launcher-linux-x64');

/** Latest modification time of anything the build reads. */
export function newestSourceMtime(): number {
  let newest = 0;
  const visit = (p: string): void => {
    const st = statSync(p);
    if (st.isDirectory()) for (const n of readdirSync(p)) visit(join(p, n));
    else if (/\.(ts|mjs|cjs|json|sh|css)$/.test(p)) newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['launcher.ts', 'lib', 'build.mjs', 'scripts/build-sea.mjs', 'scripts/build-checks.mjs', 'scripts/commands-chunk.mjs', 'scripts/undici-slim.cjs', 'scripts/install.sh', 'package.json', 'package-lock.json']) {
    if (existsSync(join(root, p))) visit(join(root, p));
  }
  return newest;
}

export function isStale(): boolean {
  for (const f of [binary, join(dist, 'SHA256SUMS'), join(dist, 'install.sh')]) if (!existsSync(f)) return true;
  return statSync(binary).mtimeMs < newestSourceMtime();
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `node build.mjs ARGS` with the pinned Node; throws with its output on failure. */
export function runBuild(args: string[] = [], env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, [join(root, 'build.mjs'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${join(root, 'node_modules/.bin')}:${process.env.PATH ?? ''}`, ...env },
  });
  if (r.status !== 0) throw new Error(`build failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stderr;
}

/** Path of dist/launcher-linux-x64, built first if needed. */
export function ensureBuilt(): string {
  const lock = join(root, '.tmp/build.lock');
  mkdirSync(join(root, '.tmp'), { recursive: true });
  for (let waited = 0; ; waited += 200) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock older than five minutes belongs to a build that died.
      const st = statSync(lock, { throwIfNoEntry: false });
      if (waited > 300_000 || (st && Date.now() - st.mtimeMs > 300_000)) {
        try { rmdirSync(lock); } catch { /* another waiter took it */ }
        continue;
      }
      sleep(200);
    }
  }
  try {
    if (isStale()) runBuild();
  } finally {
    rmdirSync(lock);
  }
  return binary;
}
