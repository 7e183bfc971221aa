// The Git cores without sockets: webhook senders, signatures, push payloads
// (GitHub, Gitea, GitLab shapes), path globs, repository URL forms, branch names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { globProblem, globToRegExp, pathsMatch } from '../lib/vcs/paths.ts';
import { branchProblem, repoKey, repoUrlProblem } from '../lib/vcs/repo.ts';
import { dedupeKey, deliveryOf, firstLine, isPushEvent, parsePush, PayloadError, signBody, signatureOf, verifySignature } from '../lib/vcs/webhook.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const ZERO = '0'.repeat(40);

function githubPush(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ref: 'refs/heads/main', before: B, after: A, created: false, deleted: false, forced: false,
    repository: { full_name: 'org/infra', clone_url: 'https://github.com/org/infra.git', html_url: 'https://github.com/org/infra', ssh_url: 'git@github.com:org/infra.git' },
    head_commit: { id: A, message: 'Add the network\n\nLonger body', author: { name: 'Ada', email: 'ada@example.test' }, added: [], modified: ['infra/net.tf'], removed: [] },
    commits: [
      { id: 'c'.repeat(40), message: 'docs', author: { name: 'Ada', email: 'ada@example.test' }, added: ['docs/readme.md'], modified: [], removed: [] },
      { id: A, message: 'Add the network', author: { name: 'Ada', email: 'ada@example.test' }, added: [], modified: ['infra/net.tf'], removed: ['old.tf'] },
    ],
    ...over,
  };
}

test('GitHub: the signature is HMAC-SHA256 of the exact body; a changed byte, another secret or a missing header fail', () => {
  const body = Buffer.from(JSON.stringify(githubPush()));
  const headers = { 'x-github-event': 'push', 'x-github-delivery': 'd-1', 'x-hub-signature-256': signBody(body, 's3cret') };
  const sig = signatureOf(headers);
  assert.ok(verifySignature(sig, body, 's3cret'));
  assert.not.ok(verifySignature(sig, body, 's3cret2'));
  const tampered = Buffer.from(body); tampered[10] ^= 1;
  assert.not.ok(verifySignature(sig, tampered, 's3cret'));
  assert.not.ok(verifySignature(signatureOf({ 'x-hub-signature-256': 'sha256=zz' }), body, 's3cret'));
  assert.not.ok(verifySignature(signatureOf({ 'x-hub-signature-256': signBody(body, 's3cret').replace('sha256=', 'sha1=') }), body, 's3cret'));
  assert.is(signatureOf({}), undefined);
  assert.not.ok(verifySignature(undefined, body, 's3cret'));
  assert.not.ok(verifySignature(sig, body, ''), 'an empty secret verifies nothing');
  assert.equal(deliveryOf(headers), { sender: 'github', event: 'push', id: 'd-1' });
  assert.ok(isPushEvent(deliveryOf(headers)));
  assert.not.ok(isPushEvent(deliveryOf({ 'x-github-event': 'ping' })));
});

test('GitLab: X-Gitlab-Token compared whole; Gitea and Forgejo are told apart from GitHub', () => {
  const sig = signatureOf({ 'x-gitlab-token': 'tok' });
  assert.ok(verifySignature(sig, Buffer.from('{}'), 'tok'));
  assert.not.ok(verifySignature(sig, Buffer.from('{}'), 'tok2'));
  assert.not.ok(verifySignature(sig, Buffer.from('{}'), 'to'));
  assert.equal(deliveryOf({ 'x-gitlab-event': 'Push Hook', 'x-gitlab-event-uuid': 'u-1' }), { sender: 'gitlab', event: 'Push Hook', id: 'u-1' });
  assert.ok(isPushEvent(deliveryOf({ 'x-gitlab-event': 'Push Hook' })));
  assert.equal(deliveryOf({ 'x-gitea-event': 'push', 'x-github-event': 'push', 'x-gitea-delivery': 'g-1' }), { sender: 'gitea', event: 'push', id: 'g-1' });
  assert.equal(deliveryOf({ 'x-forgejo-event': 'push', 'x-gitea-event': 'push', 'x-forgejo-delivery': 'f-1' }).sender, 'forgejo');
  assert.is(deliveryOf({}).sender, 'unknown');
});

test('a GitHub push: repository URLs, branch, commit, head commit first line and author, changed paths of every commit', () => {
  const p = parsePush(githubPush(), 'github');
  assert.is(p.branch, 'main');
  assert.is(p.after, A);
  assert.is(p.deleted, false);
  assert.equal(p.head, { sha: A, author: 'Ada <ada@example.test>', message: 'Add the network' });
  assert.equal(p.changed?.sort(), ['docs/readme.md', 'infra/net.tf', 'old.tf']);
  assert.ok(p.repoUrls.includes('https://github.com/org/infra.git'));
});

test('a branch deletion, a tag, a forced push and a payload without commits', () => {
  const del = parsePush(githubPush({ after: ZERO, deleted: true, head_commit: null, commits: [] }), 'github');
  assert.is(del.deleted, true);
  assert.is(del.after, undefined);
  assert.is(parsePush(githubPush({ ref: 'refs/tags/v1' }), 'github').branch, undefined);
  assert.is(parsePush(githubPush({ forced: true }), 'github').changed, undefined, 'a forced push may drop commits: the paths are unknown');
  assert.is(parsePush(githubPush({ commits: [] }), 'github').changed, undefined);
  assert.throws(() => parsePush({ ref: 'refs/heads/main', after: A }, 'github'), (e: Error) => e instanceof PayloadError && /repository URL/.test(e.message));
  assert.throws(() => parsePush({ repository: { clone_url: 'x' } }, 'github'), /without "ref"/);
  assert.throws(() => parsePush(githubPush({ after: 'not-a-sha' }), 'github'), /40-character commit SHA/);
});

test('a GitLab push: project URLs, checkout_sha, truncated commit lists leave the paths unknown, deletion by null checkout_sha', () => {
  const gl = {
    object_kind: 'push', ref: 'refs/heads/feature/x', before: B, after: A, checkout_sha: A,
    project: { git_http_url: 'https://gitlab.example.test/grp/infra.git', git_ssh_url: 'git@gitlab.example.test:grp/infra.git', web_url: 'https://gitlab.example.test/grp/infra' },
    commits: [{ id: A, message: 'Fix\n', author: { name: 'Bo', email: 'bo@example.test' }, added: ['a.tf'], modified: [], removed: [] }],
    total_commits_count: 1,
  };
  const p = parsePush(gl, 'gitlab');
  assert.is(p.branch, 'feature/x');
  assert.equal(p.head, { sha: A, author: 'Bo <bo@example.test>', message: 'Fix' });
  assert.equal(p.changed, ['a.tf']);
  assert.is(parsePush({ ...gl, total_commits_count: 25 }, 'gitlab').changed, undefined);
  const del = parsePush({ ...gl, after: ZERO, checkout_sha: null, commits: [], total_commits_count: 0 }, 'gitlab');
  assert.is(del.deleted, true);
});

test('path globs: *, **, ?, classes, trailing slash; a push runs the stack only when a changed path matches', () => {
  const m = (g: string, p: string) => globToRegExp(g).test(p);
  assert.ok(m('infra/**', 'infra/a/b.tf'));
  assert.ok(m('infra/**', 'infra/x'));
  assert.not.ok(m('infra/**', 'infrastructure/x'));
  assert.ok(m('infra/', 'infra/deep/x.tf'));
  assert.ok(m('*.tf', 'main.tf'));
  assert.not.ok(m('*.tf', 'dir/main.tf'), '* stops at /');
  assert.ok(m('**/*.tf', 'main.tf'));
  assert.ok(m('**/*.tf', 'a/b/main.tf'));
  assert.ok(m('modules/*/main.tf', 'modules/net/main.tf'));
  assert.not.ok(m('modules/*/main.tf', 'modules/net/sub/main.tf'));
  assert.ok(m('a/**/b', 'a/b'));
  assert.ok(m('a/**/b', 'a/x/y/b'));
  assert.ok(m('v?.tf', 'v1.tf'));
  assert.ok(m('[ab].txt', 'b.txt'));
  assert.not.ok(m('[!ab].txt', 'b.txt'));
  assert.ok(m('file.with+plus(1).txt', 'file.with+plus(1).txt'), 'regex characters are literal');
  assert.ok(m('/root.tf', 'root.tf'));
  assert.ok(pathsMatch([], ['anything']));
  assert.ok(pathsMatch(['infra/**'], ['docs/x', 'infra/y']));
  assert.not.ok(pathsMatch(['infra/**'], ['docs/x']));
  assert.ok(pathsMatch(['infra/**'], undefined), 'unknown paths run the stack');
  assert.not.ok(pathsMatch(['infra/**'], []));
  assert.is(globProblem('infra/**'), undefined);
  assert.match(globProblem('../x')!, /\.\./);
  assert.match(globProblem('  ')!, /empty/);
});

test('repository URLs: accepted schemes, credentials refused, one comparable form for clone, web and SSH URLs', () => {
  assert.is(repoUrlProblem('https://github.com/org/infra.git'), undefined);
  assert.is(repoUrlProblem('http://127.0.0.1:8080/infra.git'), undefined);
  assert.is(repoUrlProblem('file:///srv/git/infra.git'), undefined);
  assert.match(repoUrlProblem('https://user:tok@github.com/org/infra.git')!, /--repo-credential/);
  assert.match(repoUrlProblem('ssh://git@github.com/org/infra.git')!, /scheme ssh/);
  assert.match(repoUrlProblem('infra')!, /not a URL/);
  assert.match(repoUrlProblem('https://github.com/x?y=1')!, /query/);
  const k = repoKey('https://github.com/Org/Infra.git');
  assert.is(k, 'github.com/org/infra');
  for (const u of ['https://github.com/org/infra', 'http://github.com/org/infra/', 'git@github.com:org/infra.git', 'ssh://git@github.com/org/infra.git', 'https://x:y@GitHub.com/org/infra.git']) {
    assert.is(repoKey(u), k, u);
  }
  assert.is.not(repoKey('https://github.com/org/infra2'), k);
  assert.is(repoKey('http://127.0.0.1:8080/infra.git'), '127.0.0.1:8080/infra');
  assert.is(repoKey('https://github.com:443/org/infra'), k, 'the default port is the same server');
  assert.is(repoKey('file:///srv/git/infra.git'), 'file:/srv/git/infra');
});

test('branch names, first lines and dedupe keys', () => {
  assert.is(branchProblem('main'), undefined);
  assert.is(branchProblem('feature/x-1'), undefined);
  for (const bad of ['', 'refs/heads/main', 'a b', 'a..b', 'a/', '.hidden', 'x.lock', 'a~1', 'a:b', '@']) assert.ok(branchProblem(bad), bad);
  assert.is(firstLine('one\ntwo'), 'one');
  assert.is(firstLine(null), null);
  assert.is(firstLine('x'.repeat(600))!.length, 500);
  assert.is(dedupeKey('stk_1', A, false), `stk_1:${A}:tracked`);
  assert.is.not(dedupeKey('stk_1', A, true), dedupeKey('stk_1', A, false));
});

test.run();
