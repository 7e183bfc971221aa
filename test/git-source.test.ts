// The launcher's Git client against a real Git server (git http-backend behind
// a loopback HTTP server with basic auth): exact commits at depth 1, branch
// tips, modes and symlinks, and the refusals (wrong credential, unknown
// branch or commit, submodules, Git LFS) with messages that say what to do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, symlinkSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchSource, type SourceSpec } from '../lib/vcs/source.ts';
import { startGitServer, type GitRepo, type GitServer } from './helpers/git-server.ts';

let gs: GitServer;
let repo: GitRepo;
let first: string;
let second: string;
const dirs: string[] = [];

function fresh(): { dir: string; parent: string } {
  const d = mkdtempSync(join(tmpdir(), 'launcher-git-fetch-'));
  dirs.push(d);
  return { dir: join(d, 'ws'), parent: d };
}
const cred = () => ({ username: gs.username, password: gs.password });
const fetchAt = (spec: Partial<SourceSpec>, o: { credential?: { username: string; password: string } | undefined } = { credential: cred() }) => {
  const d = fresh();
  return fetchSource({ repo: repo.url, branch: 'main', commit: null, ...spec }, { dir: d.dir, credential: o.credential }).then((f) => ({ ...f, ...d }));
};

test.before(async () => {
  gs = await startGitServer({ username: 'ci', password: 'tok-9f8e7d' });
  repo = gs.createRepo('infra');
  first = repo.commit({
    'main.tf': 'resource "terraform_data" "a" {}\n',
    'scripts/run.sh': '#!/bin/sh\necho run\n',
    'modules/net/vars.tf': 'variable "x" {}\n',
  }, 'First commit\n\nWith a body', { mode: { 'scripts/run.sh': 0o755 } });
  second = repo.commit({ 'main.tf': 'resource "terraform_data" "b" {}\n', 'modules/net/vars.tf': null }, 'Second commit');
});

test('the branch tip at depth 1: files, modes, commit details; nothing written but the files', async () => {
  const f = await fetchAt({});
  assert.is(f.sha, second);
  assert.is(f.author, 'Ada Tester <ada@example.test>');
  assert.is(f.message, 'Second commit');
  assert.is(readFileSync(join(f.dir, 'main.tf'), 'utf8'), 'resource "terraform_data" "b" {}\n');
  assert.not.ok(existsSync(join(f.dir, 'modules/net/vars.tf')), 'a file deleted in the commit is not there');
  assert.is(statSync(join(f.dir, 'scripts/run.sh')).mode & 0o777, 0o755);
  assert.is(statSync(join(f.dir, 'main.tf')).mode & 0o777, 0o644);
  assert.equal(readdirSync(f.dir).sort(), ['main.tf', 'scripts']);
  assert.is(f.files, 2);
  // Depth 1: the commit, its two trees and two blobs; not the first commit's objects.
  assert.is(f.objects, 5);
  assert.equal(readdirSync(f.parent), ['ws'], 'nothing is written but the files (no .git, no pack, no credential)');
});

test('an exact older commit, even after newer pushes', async () => {
  const f = await fetchAt({ commit: first });
  assert.is(f.sha, first);
  assert.is(f.message, 'First commit');
  assert.is(readFileSync(join(f.dir, 'main.tf'), 'utf8'), 'resource "terraform_data" "a" {}\n');
  assert.is(readFileSync(join(f.dir, 'modules/net/vars.tf'), 'utf8'), 'variable "x" {}\n');
});

test('a wrong or missing credential: SOURCE_AUTH_FAILED naming the status and the fix, never the credential', async () => {
  for (const credential of [{ username: 'ci', password: 'wrong-token-123' }, undefined]) {
    const e = await fetchAt({}, { credential }).then(() => undefined, (x: unknown) => x as Error & { code: string });
    assert.ok(e, 'the fetch must fail');
    assert.is(e!.code, 'SOURCE_AUTH_FAILED');
    assert.match(e!.message, /answered 401/);
    assert.match(e!.message, /--repo-credential/);
    assert.not.ok(e!.message.includes('wrong-token-123'));
  }
});

test('an unknown branch, an unknown commit, a repository that is not there', async () => {
  const nb = await fetchAt({ branch: 'nope' }).catch((e: Error & { code: string }) => e);
  assert.is((nb as { code: string }).code, 'SOURCE_BRANCH_NOT_FOUND');
  assert.match((nb as Error).message, /branch "nope" not found/);
  const nc = await fetchAt({ commit: 'f'.repeat(40) }).catch((e: Error & { code: string }) => e);
  assert.ok((nc as { code: string }).code?.startsWith('SOURCE_'), String(nc));
  assert.match((nc as Error).message, /ffffffff/);
  const d = fresh();
  const nr = await fetchSource({ repo: gs.url('missing'), branch: 'main', commit: null }, { dir: d.dir, credential: cred() }).catch((e: Error & { code: string }) => e);
  assert.is((nr as { code: string }).code, 'SOURCE_FETCH_FAILED');
  assert.match((nr as Error).message, /404|not found|no repository/i);
  const bad = await fetchAt({ commit: 'abc' }).catch((e: Error & { code: string }) => e);
  assert.is((bad as { code: string }).code, 'SOURCE_COMMIT_INVALID');
});

test('symlinks are checked out as symlinks', async () => {
  const r = gs.createRepo('links');
  const sha = r.commit({ 'target.txt': 'hello\n' }, 'target');
  symlinkSync('target.txt', join(r.work, 'link.txt'));
  r.git('add', 'link.txt');
  const sha2 = r.commit({}, 'link');
  assert.is.not(sha, sha2);
  const d = fresh();
  await fetchSource({ repo: r.url, branch: 'main', commit: null }, { dir: d.dir, credential: cred() });
  assert.ok(lstatSync(join(d.dir, 'link.txt')).isSymbolicLink());
  assert.is(readlinkSync(join(d.dir, 'link.txt')), 'target.txt');
});

test('submodules are refused, naming the path and what to do', async () => {
  const r = gs.createRepo('with-submodule');
  r.commit({ 'main.tf': 'x\n' }, 'base');
  // A gitlink entry, as `git submodule add` records it.
  r.git('update-index', '--add', '--cacheinfo', `160000,${second},vendor/lib`);
  r.commit({ '.gitmodules': '[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.test/lib.git\n' }, 'add submodule');
  const d = fresh();
  const e = await fetchSource({ repo: r.url, branch: 'main', commit: null }, { dir: d.dir, credential: cred() }).catch((x: Error & { code: string }) => x);
  assert.is((e as { code: string }).code, 'SOURCE_SUBMODULE');
  assert.match((e as Error).message, /vendor\/lib is a Git submodule/);
  assert.match((e as Error).message, /not supported yet/);
});

test('Git LFS is refused (a .gitattributes filter, or a pointer file)', async () => {
  const r = gs.createRepo('with-lfs');
  r.commit({ '.gitattributes': '*.bin filter=lfs diff=lfs merge=lfs -text\n', 'big.bin': 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 10\n' }, 'lfs');
  const d = fresh();
  const e = await fetchSource({ repo: r.url, branch: 'main', commit: null }, { dir: d.dir, credential: cred() }).catch((x: Error & { code: string }) => x);
  assert.is((e as { code: string }).code, 'SOURCE_LFS');
  assert.match((e as Error).message, /Git LFS is not supported yet/);
  const r2 = gs.createRepo('lfs-pointer');
  r2.commit({ 'data/big.bin': 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 10\n' }, 'pointer only');
  const d2 = fresh();
  const e2 = await fetchSource({ repo: r2.url, branch: 'main', commit: null }, { dir: d2.dir, credential: cred() }).catch((x: Error & { code: string }) => x);
  assert.is((e2 as { code: string }).code, 'SOURCE_LFS');
  assert.match((e2 as Error).message, /data\/big\.bin is a Git LFS pointer/);
});

test('file:// sources are read in place on the worker host (bare repository), at a branch or a commit', async () => {
  const d = fresh();
  const f = await fetchSource({ repo: `file://${repo.bare}`, branch: 'main', commit: null }, { dir: d.dir });
  assert.is(f.sha, second);
  const d2 = fresh();
  const f2 = await fetchSource({ repo: `file://${repo.bare}`, branch: 'main', commit: first }, { dir: d2.dir });
  assert.is(f2.sha, first);
  assert.ok(existsSync(join(d2.dir, 'modules/net/vars.tf')));
  const d3 = fresh();
  const e = await fetchSource({ repo: 'file:///nonexistent/repo.git', branch: 'main', commit: null }, { dir: d3.dir }).catch((x: Error & { code: string }) => x);
  assert.match((e as Error).message, /not a Git repository/);
});

test.after(async () => {
  await gs?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
test.run();
