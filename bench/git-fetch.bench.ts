// Fetch of a repository of 10,000 files / 100 MiB at depth 1: the launcher's
// Git client (lib/vcs/source.ts: smart HTTP over undici, the pack read with
// node:zlib and node:crypto; bundled like the executable, run as its own process) against `git clone --depth 1` from the same git
// http-backend (basic auth, loopback), interleaved A B A B, wall time per
// process, median and the ratio pair by pair. Both write a checked-out tree.
//
//   node_modules/.bin/node --import tsx bench/git-fetch.bench.ts [runs] [files] [MiB]
//   node_modules/.bin/node --import tsx bench/git-fetch.bench.ts serve   (prints the two commands, keeps the server up)
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { startGitServer } from '../test/helpers/git-server.ts';

const root = new URL('..', import.meta.url).pathname;
const serve = process.argv[2] === 'serve';
const runs = serve ? 0 : Number(process.argv[2] ?? 7);
const files = Number(process.argv[3] ?? 10_000);
const mib = Number(process.argv[4] ?? 100);
const work = join(root, '.tmp/bench-git');
mkdirSync(work, { recursive: true });

// The fetch as the launcher runs it, bundled with esbuild into CommonJS.
const cli = join(work, 'git-fetch.cjs');
await build({
  stdin: {
    contents: `import { fetchSource } from ${JSON.stringify(join(root, 'lib/vcs/source.ts'))};
const [url, user, pass, dest] = process.argv.slice(2);
fetchSource({ repo: url, branch: 'main', commit: null }, { dir: dest + '/ws', credential: { username: user, password: pass } })
  .then((f) => console.log(JSON.stringify(f)), (e) => { console.error(e.message); process.exitCode = 1; });`,
    resolveDir: root, loader: 'ts',
  },
  bundle: true, platform: 'node', format: 'cjs', target: 'node22', outfile: cli, logLevel: 'error',
});

const gs = await startGitServer({ username: 'bench', password: 'bench-pa55' });
const repo = gs.createRepo('big');
// One commit of `files` files of random (incompressible) bytes, by git fast-import.
{
  const size = Math.floor((mib * 1024 * 1024) / files);
  const fi = spawn('git', ['-C', repo.bare, 'fast-import', '--quiet'], { stdio: ['pipe', 'inherit', 'inherit'] });
  const w = (b: string | Buffer) => new Promise<void>((res) => { if (fi.stdin.write(b)) res(); else fi.stdin.once('drain', () => res()); });
  const msg = `${files} files, ${mib} MiB\n`;
  await w(`commit refs/heads/main\ncommitter Bench <bench@example.test> 1700000000 +0000\ndata ${Buffer.byteLength(msg)}\n${msg}`);
  for (let i = 0; i < files; i++) {
    const body = randomBytes(size);
    await w(`M 100644 inline d${String(Math.floor(i / 100)).padStart(3, '0')}/f${String(i).padStart(5, '0')}.bin\ndata ${body.length}\n`);
    await w(body);
    await w('\n');
  }
  fi.stdin.end();
  await new Promise((res) => fi.on('close', res));
  // As a server would keep it: one pack.
  execFileSync('git', ['-C', repo.bare, 'repack', '-a', '-d', '-q']);
}
const authed = repo.url.replace('http://', `http://${gs.username}:${gs.password}@`);
const node = join(root, 'node_modules/.bin/node');
const fetchCmd = (dest: string) => [node, cli, repo.url, gs.username, gs.password, dest];
const cloneCmd = (dest: string) => ['git', 'clone', '-q', '--depth', '1', '--single-branch', '--branch', 'main', authed, join(dest, 'ws')];

if (serve) {
  console.log(`repository: ${repo.url} (${files} files, ${mib} MiB)`);
  console.log(`launcher fetch: sh -c 'exec ${node} ${cli} ${repo.url} ${gs.username} ${gs.password} "$(mktemp -d -p ${work})"'`);
  console.log(`git clone:      sh -c 'exec git clone -q --depth 1 --single-branch --branch main ${authed} "$(mktemp -d -p ${work})/ws"'`);
  console.log('Ctrl-C to stop');
  await new Promise(() => {});
}

// Asynchronous: the Git server runs in this process and must keep serving.
async function timed(cmd: string[]): Promise<number> {
  const dest = mkdtempSync(join(work, 'run-'));
  const t = process.hrtime.bigint();
  const p = spawn(cmd[0]!, [...cmd.slice(1, -1), cmd[cmd.length - 1]!.replace('DEST', dest)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d) => { stderr += d; });
  const code = await new Promise<number | null>((res) => p.on('close', res));
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (code !== 0) throw new Error(`${cmd.join(' ')} failed: ${stderr}`);
  if (!existsSync(join(dest, 'ws', 'd000', 'f00000.bin'))) throw new Error(`${cmd[0]} wrote no tree`);
  rmSync(dest, { recursive: true, force: true });
  return ms;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
const a: number[] = [];
const b: number[] = [];
const ratios: number[] = [];
await timed(fetchCmd('DEST'));
await timed(cloneCmd('DEST'));
for (let i = 0; i < runs; i++) {
  const x = await timed(fetchCmd('DEST'));
  const y = await timed(cloneCmd('DEST'));
  a.push(x); b.push(y); ratios.push(x / y);
  console.log(`run ${i + 1}: launcher fetch ${x.toFixed(0)} ms, git clone --depth 1 ${y.toFixed(0)} ms, ratio ${(x / y).toFixed(2)}`);
}
const load = (await import('node:os')).loadavg()[0]!.toFixed(1);
console.log(`median of ${runs}: launcher fetch ${median(a).toFixed(0)} ms, git clone --depth 1 ${median(b).toFixed(0)} ms, ratio ${median(ratios).toFixed(2)} (pairwise), load ${load}`);
console.log('\n| fetch, depth 1 | files | MiB | median ms | ratio (pairwise median) |');
console.log('| --- | --- | --- | --- | --- |');
console.log(`| launcher (smart HTTP + node:zlib) | ${files} | ${mib} | ${median(a).toFixed(0)} | ${median(ratios).toFixed(2)} |`);
console.log(`| git clone --depth 1 | ${files} | ${mib} | ${median(b).toFixed(0)} | 1 |`);
await gs.stop();
