// Stacks from Git end to end, real everything: a `launcher server`, a
// launcher on the real dockerd (busybox runner image: no git inside), and a
// real Git server (git http-backend with basic auth) holding repositories with
// real commits. Pushes arrive as signed webhooks, the worker fetches exactly
// the pushed commit, and the server never holds the repository's content.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { publicKeyPem, parsePoolPrivateKey } from '../lib/keys.ts';
import { signBody } from '../lib/vcs/webhook.ts';
import { ensureTestImage, removeWorkerContainers } from './helpers/docker.ts';
import { githubPushPayload, startGitServer, type GitRepo, type GitServer } from './helpers/git-server.ts';
import { startTestServer, type HttpResult, type TestServer } from './helpers/server.ts';
import {
  createPool, ended, filesContaining, runLogs, sealToKey, seedPoolKey, startLauncher, tempDir, waitRun,
  type LauncherProcess, type PoolKey,
} from './helpers/launcher.ts';
import { TEST_IMAGE } from './helpers/docker.ts';

const docker = new DockerClient();
let srv: TestServer;
let gs: GitServer;
let key: PoolKey;
let pub: string;
let pool: { poolId: string; token: string };
let launcher: LauncherProcess;
let workerId = '';
const dirs: Array<{ remove(): void }> = [];

const MARK1 = `first-marker-${randomBytes(6).toString('hex')}`;
const MARK2 = `second-marker-${randomBytes(6).toString('hex')}`;

async function credential(username: string, password: string): Promise<string> {
  return (await sealToKey(JSON.stringify({ username, password }), pub)).toString('base64');
}

async function gitStack(name: string, repo: GitRepo, extra: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const r = await srv.admin('POST', '/v1/stacks', {
    name, pool: pool.poolId, image: TEST_IMAGE, repo: repo.url, branch: 'main',
    repoCredential: await credential(gs.username, gs.password),
    phases: [{ name: 'plan', script: 'set -e\nif command -v git; then echo "git in the image"; exit 9; fi\ncat main.tf\ncp main.tf planned.tf' }],
    ...extra,
  });
  assert.is(r.status, 201, r.text);
  const w = await srv.admin('GET', `/v1/stacks/${r.body.stack.id}/webhook`);
  assert.is(w.status, 200, w.text);
  assert.is(w.body.webhook.url, `${srv.url}/v1/hooks/git`);
  return { id: r.body.stack.id, secret: w.body.webhook.secret };
}

function push(payload: unknown, secret: string, o: { delivery?: string; signature?: string; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const body = Buffer.from(JSON.stringify(payload));
  return srv.admin('POST', '/v1/hooks/git', body, {
    token: null,
    headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': o.delivery ?? randomBytes(8).toString('hex'),
      'x-hub-signature-256': o.signature ?? signBody(body, secret), ...o.headers,
    },
  });
}

async function stackRuns(stackId: string): Promise<any[]> {
  const r = await srv.admin('GET', `/v1/runs?stack=${stackId}`);
  return r.body.runs;
}

function audit(): Record<string, unknown>[] {
  return readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test.before(async () => {
  await ensureTestImage(docker);
  key = seedPoolKey(2048);
  pub = publicKeyPem(parsePoolPrivateKey(key.keyPem));
  srv = await startTestServer();
  pool = await createPool(srv, 'git-e2e', key.csrPem);
  gs = await startGitServer({ username: 'ci', password: `tok-${randomBytes(6).toString('hex')}` });
  const d = tempDir('launcher-git-e2e-state-');
  dirs.push(d);
  launcher = startLauncher({ token: pool.token, keyB64: key.keyB64, stateDir: d.path });
  const line = await launcher.waitFor(/Registered with the server/);
  workerId = (JSON.parse(line) as { workerId: string }).workerId;
});

test('a signed push queues a tracked run at exactly that commit; a second push while it waits for confirmation does not change what apply uses', async () => {
  const repo = gs.createRepo('infra');
  // main.tf is printed by the phases; data.txt holds a marker nobody prints,
  // which must never reach the server.
  const sha1 = repo.commit({ 'main.tf': '# version one\n', 'data.txt': `${MARK1}\n` }, 'First infra\n\nbody');
  const st = await gitStack('infra', repo, {
    phases: [
      { name: 'plan', script: 'set -e\nif command -v git; then echo "git in the image"; exit 9; fi\ncat main.tf\ncp main.tf planned.tf' },
      { name: 'apply', confirm: true, script: 'set -e\ncmp main.tf planned.tf\necho "applying: $(cat main.tf)"' },
    ],
  });
  const r1 = await push(githubPushPayload(repo, sha1), st.secret);
  assert.is(r1.status, 202, r1.text);
  assert.is(r1.body.runs.length, 1, r1.text);
  const run1 = r1.body.runs[0].id as string;
  assert.is(r1.body.runs[0].proposed, false);
  let run = await waitRun(srv, run1, (r) => r.state === 'UNCONFIRMED' || ended(r));
  assert.is(run.state, 'UNCONFIRMED', JSON.stringify(run));
  assert.is(run.trigger, 'push');
  assert.equal(run.commit, { repo: repo.url, branch: 'main', sha: sha1, author: 'Ada Tester <ada@example.test>', message: 'First infra' });

  // A newer push while the first run waits: it gets its own run.
  const sha2 = repo.commit({ 'main.tf': '# version two\n', 'data.txt': `${MARK2}\n` }, 'Second infra');
  const r2 = await push(githubPushPayload(repo, sha2), st.secret);
  assert.is(r2.status, 202, r2.text);
  const run2 = r2.body.runs[0].id as string;
  assert.is((await waitRun(srv, run2, (r) => r.state === 'UNCONFIRMED' || ended(r))).commit.sha, sha2);

  assert.is((await srv.admin('POST', `/v1/runs/${run1}/confirm`)).status, 200);
  run = await waitRun(srv, run1, ended);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.is(run.commit.sha, sha1, 'the run keeps its commit');
  const logs = await runLogs(srv, run1);
  assert.match(logs, /applying: # version one/);
  assert.not.ok(logs.includes('version two'), 'apply used the files of the planned commit, not the newer push');
  assert.match(logs, new RegExp(`Fetched ${repo.url.replace(/[.]/g, '\\.')} main at ${sha1}`));
  assert.not.ok(logs.includes('git in the image'));
  assert.is((await srv.admin('POST', `/v1/runs/${run2}/discard`)).status, 200);

  // The fetched tree is in the run's sealed workspace (the files only, no .git),
  // and the stock age CLI opens it with the pool key.
  const ws = await srv.admin('GET', `/v1/runs/${run1}/workspace`);
  assert.is(ws.status, 200);
  const tar = execFileSync('age', ['-d', '-i', key.keyPath], { input: ws.raw });
  const raw = execFileSync('tar', ['-t'], { input: tar, encoding: 'utf8' }).split('\n').filter(Boolean);
  const names = raw.map((n) => n.replace(/^\.\//, ''));
  assert.ok(['main.tf', 'data.txt', 'planned.tf'].every((n) => names.includes(n)), names.join(','));
  assert.not.ok(names.some((n) => n === '.git' || n.startsWith('.git/')), names.join(','));
  assert.is(execFileSync('tar', ['-xO', raw[names.indexOf('data.txt')]!], { input: tar, encoding: 'utf8' }).trim(), MARK1);

  // The server never holds the repository's content, nor the credential.
  for (const s of [MARK1, MARK2, gs.password]) assert.equal(filesContaining(srv.dataDir, s), [], `${s.slice(0, 14)}… on the server`);
  assert.not.ok(launcher.out.includes(gs.password), 'the launcher never logs the credential');
});

test('a push to another branch queues a proposed run; with proposed runs off, or a branch deletion, nothing is queued', async () => {
  const repo = gs.createRepo('review');
  repo.commit({ 'main.tf': 'main\n' }, 'base');
  const st = await gitStack('review', repo);
  const fsha = repo.commit({ 'main.tf': 'feature\n' }, 'Try a feature', { branch: 'feature/x' });
  const r = await push(githubPushPayload(repo, fsha, { branch: 'feature/x' }), st.secret);
  assert.is(r.status, 202, r.text);
  assert.is(r.body.runs.length, 1);
  assert.is(r.body.runs[0].proposed, true);
  const run = await waitRun(srv, r.body.runs[0].id, ended);
  assert.is(run.state, 'FINISHED', JSON.stringify(run));
  assert.is(run.proposed, true);
  assert.equal([run.commit.branch, run.commit.sha], ['feature/x', fsha]);
  assert.match(await runLogs(srv, run.id), /^feature$/m);

  const del = await push(githubPushPayload(repo, fsha, { branch: 'feature/x', deleted: true }), st.secret);
  assert.is(del.status, 202);
  assert.equal(del.body.runs, []);
  assert.match(del.body.skipped[0].reason, /deleted/);

  assert.is((await srv.admin('PATCH', `/v1/stacks/${st.id}`, { proposeBranches: false })).status, 200);
  const f2 = repo.commit({ 'main.tf': 'feature 2\n' }, 'More', { branch: 'feature/x' });
  const off = await push(githubPushPayload(repo, f2, { branch: 'feature/x' }), st.secret);
  assert.equal(off.body.runs, []);
  assert.match(off.body.skipped[0].reason, /proposed runs on push are off/);
  assert.is((await stackRuns(st.id)).length, 1);
});

test('wrong signature: 401, an audit line, nothing queued; the same delivery twice, or the same commit again: one run; unknown repository: 202; over 1 MiB: 413', async () => {
  const repo = gs.createRepo('dedupe');
  const sha = repo.commit({ 'main.tf': 'x\n' }, 'one');
  const st = await gitStack('dedupe', repo);
  const payload = githubPushPayload(repo, sha);

  const bad = await push(payload, 'not-the-secret', { delivery: 'bad-1' });
  assert.is(bad.status, 401, bad.text);
  assert.is(bad.body.error.code, 'WEBHOOK_SIGNATURE_INVALID');
  const none = await push(payload, st.secret, { delivery: 'bad-2', signature: '' , headers: {} });
  assert.is(none.status, 401);
  const unsigned = await srv.admin('POST', '/v1/hooks/git', Buffer.from(JSON.stringify(payload)), { token: null, headers: { 'content-type': 'application/json', 'x-github-event': 'push' } });
  assert.is(unsigned.status, 401);
  assert.match(unsigned.body.error.message, /no signature/);
  assert.equal(await stackRuns(st.id), []);
  const lines = audit().filter((l) => l.action === 'POST /v1/hooks/git' && l.status === 401);
  assert.ok(lines.some((l) => l.delivery === 'bad-1' && l.repo === repo.url), JSON.stringify(lines));

  const ok1 = await push(payload, st.secret, { delivery: 'same-1' });
  const ok2 = await push(payload, st.secret, { delivery: 'same-1' });
  const ok3 = await push(payload, st.secret, { delivery: 'other-2' });
  assert.equal([ok1.status, ok2.status, ok3.status], [202, 202, 202]);
  assert.is(ok1.body.runs.length, 1);
  assert.equal(ok2.body.runs, []);
  assert.match(ok2.body.skipped[0].reason, /already received/);
  assert.equal(ok3.body.runs, []);
  assert.match(ok3.body.skipped[0].reason, /already queued a tracked run/);
  assert.is((await stackRuns(st.id)).length, 1);
  await waitRun(srv, ok1.body.runs[0].id, ended);

  // GitLab's token header works for the same stack.
  const sha2 = repo.commit({ 'main.tf': 'y\n' }, 'two');
  const gl = {
    object_kind: 'push', ref: 'refs/heads/main', before: sha, after: sha2, checkout_sha: sha2,
    project: { git_http_url: repo.url }, commits: [{ id: sha2, message: 'two', author: { name: 'A', email: 'a@example.test' }, added: [], modified: ['main.tf'], removed: [] }], total_commits_count: 1,
  };
  const glBody = Buffer.from(JSON.stringify(gl));
  const wrongGl = await srv.admin('POST', '/v1/hooks/git', glBody, { token: null, headers: { 'content-type': 'application/json', 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': 'nope' } });
  assert.is(wrongGl.status, 401);
  const okGl = await srv.admin('POST', '/v1/hooks/git', glBody, { token: null, headers: { 'content-type': 'application/json', 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': st.secret } });
  assert.is(okGl.status, 202, okGl.text);
  assert.is(okGl.body.runs.length, 1);
  await waitRun(srv, okGl.body.runs[0].id, ended);

  const other = gs.createRepo('nobody-uses-this');
  const osha = other.commit({ 'a': 'b' }, 'x');
  const unknown = await push(githubPushPayload(other, osha), 'whatever');
  assert.is(unknown.status, 202);
  assert.match(unknown.body.message, /no stack/);

  const big = Buffer.alloc(1024 * 1024 + 10, 0x20);
  const tooBig = await srv.admin('POST', '/v1/hooks/git', big, { token: null, headers: { 'content-type': 'application/json', 'x-github-event': 'push' } });
  assert.is(tooBig.status, 413);
});

test('a private repository with a wrong credential: the run fails naming the fetch error; the credential is masked', async () => {
  const repo = gs.createRepo('private');
  const sha = repo.commit({ 'main.tf': 'secret infra\n' }, 'private');
  const wrong = `wrong-${randomBytes(8).toString('hex')}`;
  const st = await gitStack('private', repo, { repoCredential: await credential('ci', wrong) });
  const r = await srv.admin('POST', `/v1/stacks/${st.id}/runs`, { commit: sha });
  assert.is(r.status, 201, r.text);
  const run = await waitRun(srv, r.body.run.id, ended);
  assert.is(run.state, 'FAILED', JSON.stringify(run));
  assert.match(run.phases[0].error, /^SOURCE_AUTH_FAILED: Cannot fetch .*private\.git.* answered 401/);
  const logs = await runLogs(srv, run.id);
  assert.match(logs, /answered 401/);
  for (const text of [logs, JSON.stringify(run), launcher.out]) assert.not.ok(text.includes(wrong), 'the credential leaked');
  assert.equal(filesContaining(srv.dataDir, wrong), []);
});

test('path filters: a push runs the stack only when a changed path matches', async () => {
  const repo = gs.createRepo('mono');
  const base = repo.commit({ 'main.tf': 'root\n', 'infra/main.tf': 'infra\n', 'docs/readme.md': 'docs\n' }, 'base');
  const st = await gitStack('mono-infra', repo, { triggerPaths: ['infra/**'] });
  const docsOnly = repo.commit({ 'docs/readme.md': 'docs 2\n' }, 'docs only');
  const skip = await push(githubPushPayload(repo, docsOnly, { before: base }), st.secret);
  assert.equal(skip.body.runs, [], skip.text);
  assert.match(skip.body.skipped[0].reason, /no changed path matches/);
  const infra = repo.commit({ 'infra/main.tf': 'infra 2\n' }, 'infra change');
  const go = await push(githubPushPayload(repo, infra, { before: docsOnly }), st.secret);
  assert.is(go.body.runs.length, 1, go.text);
  assert.is((await waitRun(srv, go.body.runs[0].id, ended)).state, 'FINISHED');
});

test('run trigger: the branch tip (the worker reports the SHA), an exact commit, and a tracked run of another branch refused', async () => {
  const repo = gs.createRepo('manual');
  const old = repo.commit({ 'main.tf': 'old\n' }, 'old');
  const tip = repo.commit({ 'main.tf': 'tip\n' }, 'tip');
  const st = await gitStack('manual', repo);
  const t1 = await srv.admin('POST', `/v1/stacks/${st.id}/runs`, {});
  assert.is(t1.status, 201, t1.text);
  assert.is(t1.body.run.commit.sha, null, 'a branch trigger has no SHA until a worker resolves it');
  const r1 = await waitRun(srv, t1.body.run.id, ended);
  assert.is(r1.commit.sha, tip);
  assert.is(r1.commit.message, 'tip');
  const t2 = await srv.admin('POST', `/v1/stacks/${st.id}/runs`, { commit: old });
  const r2 = await waitRun(srv, t2.body.run.id, ended);
  assert.is(r2.commit.sha, old);
  assert.match(await runLogs(srv, r2.id), /^old$/m);
  const refused = await srv.admin('POST', `/v1/stacks/${st.id}/runs`, { branch: 'feature' });
  assert.is(refused.status, 409);
  assert.match(refused.body.error.message, /tracks "main"/);
  const badSha = await srv.admin('POST', `/v1/stacks/${st.id}/runs`, { commit: 'abc' });
  assert.is(badSha.status, 400);
  const fb = repo.commit({ 'main.tf': 'feature\n' }, 'feature', { branch: 'feature' });
  const t3 = await srv.admin('POST', `/v1/stacks/${st.id}/runs`, { branch: 'feature', proposed: true });
  const r3 = await waitRun(srv, t3.body.run.id, ended);
  assert.equal([r3.state, r3.proposed, r3.commit.sha], ['FINISHED', true, fb]);
});

test('bad stack fields name what is accepted', async () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ repo: 'https://u:p@example.test/x.git' }, /--repo-credential/],
    [{ repo: 'ssh://example.test/x.git' }, /scheme ssh/],
    [{ repo: 'https://example.test/x.git', branch: 'a..b' }, /"branch"/],
    [{ repo: 'https://example.test/x.git', triggerPaths: ['../x'] }, /triggerPaths/],
    [{ branch: 'main' }, /no repository/],
    [{ repo: 'https://example.test/x.git', repoCredential: 'plain' }, /repoCredential/],
  ];
  for (const [extra, re] of cases) {
    const r = await srv.admin('POST', '/v1/stacks', { name: `bad-${randomBytes(3).toString('hex')}`, pool: pool.poolId, phases: [{ name: 'p', script: 'true' }], ...extra });
    assert.is(r.status, 400, `${JSON.stringify(extra)}: ${r.text}`);
    assert.match(r.body.error.message, re);
  }
  const plain = await srv.admin('POST', '/v1/stacks', { name: 'plain-upload', pool: pool.poolId, phases: [{ name: 'p', script: 'true' }] });
  const w = await srv.admin('GET', `/v1/stacks/${plain.body.stack.id}/webhook`);
  assert.is(w.status, 409);
});

test.after(async () => {
  launcher?.kill('SIGTERM');
  await launcher?.exitCode(30_000);
  if (workerId) await removeWorkerContainers(docker, workerId).catch(() => {});
  await srv?.stop();
  await gs?.stop();
  key?.dir.cleanup();
  for (const d of dirs) d.remove();
  await docker.close();
});
test.run();
