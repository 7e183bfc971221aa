// Stacks from Git with nothing but the built executable: the server, the admin
// CLI (credential read from standard input and sealed locally, webhook URL and
// secret), curl delivering a signed push like GitHub, and a launcher whose
// PATH holds no git, running in a busybox image that has none either.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { signBody } from '../lib/vcs/webhook.ts';
import { ensureBuilt } from './helpers/build.ts';
import { adminCli, startBinaryLauncher, startBinaryServer, waitRunState, type AdminCli } from './helpers/binary.ts';
import { startProcess, type Started, stopProcesses } from './helpers/processes.ts';
import { TEST_IMAGE, ensureTestImage } from './helpers/docker.ts';
import { githubPushPayload, startGitServer, type GitServer } from './helpers/git-server.ts';

const binary = ensureBuilt();
const work = mkdtempSync(join(tmpdir(), 'launcher-git-binary-'));
const data = join(work, 'data');
const emptyPath = join(work, 'empty-path');
mkdirSync(emptyPath);
const children: ChildProcess[] = [];
let cli: AdminCli;
let gs: GitServer | undefined;

const started = (args: string[], env: Record<string, string> = {}): Started => startProcess(binary, args, env, children);


const adminText = (args: string[], input?: string): string => cli.text(args, input);
const admin = (args: string[], input?: string): any => cli.json(args, input);

test.after(async () => {
  await stopProcesses(children);
  await gs?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('the binary alone: Git stack, signed push by curl, fetch with no git anywhere, commit in run show and run list', async () => {
  await ensureTestImage(new DockerClient());
  gs = await startGitServer({ username: 'deploy', password: 'glpat-binary-test-7a1c' });
  const repo = gs.createRepo('binary-infra');
  const base = repo.commit({ 'infra/main.tf': '# infra one\n', 'docs/readme.md': 'docs\n' }, 'Base');
  const sha = repo.commit({ 'infra/main.tf': '# infra two\n' }, 'Change the infra\n\nDetails');

  const kg = spawnSync(binary, ['keygen', '--out', join(work, 'spacelift'), '--bits', '2048'], { encoding: 'utf8' });
  assert.is(kg.status, 0, kg.stderr);
  const { url } = await startBinaryServer(started, data);
  cli = adminCli(binary, { data, url });
  const created = admin(['pool', 'create', 'git-binary', '--csr', join(work, 'spacelift.csr')]);
  const stackId: string = admin(['stack', 'create', 'binary-infra', '--pool', created.pool.id, '--image', TEST_IMAGE,
    '--repo', repo.url, '--branch', 'main', '--repo-credential-file', '-', '--trigger-path', 'infra/**',
    '--phase', 'plan=set -e; if command -v git; then echo "git found"; exit 9; fi; cat infra/main.tf'], `${gs.username}:${gs.password}\n`).stack.id;
  const shown = adminText(['stack', 'show', stackId]);
  assert.match(shown, new RegExp(`repository: +${repo.url.replace(/[.]/g, '\\.')} \\(branch main\\)`));
  assert.match(shown, /credential: +sealed/);
  assert.match(shown, /trigger paths: +infra\/\*\*/);
  assert.not.ok(shown.includes(gs.password));
  const hook = admin(['stack', 'webhook', stackId]).webhook;
  assert.is(hook.url, `${url}/v1/hooks/git`);
  assert.match(adminText(['stack', 'webhook', stackId]), /secret: +\S{20,}/);

  const launcher = await startBinaryLauncher(started, { token: created.token, keyPath: join(work, 'spacelift.key'), stateDir: join(work, 'state'), env: { PATH: emptyPath } });

  // The push, delivered by curl exactly as GitHub would (the server's CA pinned).
  const body = JSON.stringify(githubPushPayload(repo, sha, { before: base }));
  writeFileSync(join(work, 'push.json'), body);
  const answer = JSON.parse(execFileSync('curl', ['-sS', '--cacert', join(data, 'ca.crt'), '-X', 'POST', hook.url,
    '-H', 'content-type: application/json', '-H', 'x-github-event: push', '-H', 'x-github-delivery: bin-1',
    '-H', `x-hub-signature-256: ${signBody(body, hook.secret)}`, '--data-binary', `@${join(work, 'push.json')}`], { encoding: 'utf8' }));
  assert.is(answer.runs.length, 1, JSON.stringify(answer));
  const run = await waitRunState(cli, answer.runs[0].id, ['FINISHED']);
  assert.equal(run.commit, { repo: repo.url, branch: 'main', sha, author: 'Ada Tester <ada@example.test>', message: 'Change the infra' });
  const logs = adminText(['run', 'logs', run.id]);
  assert.match(logs, /# infra two/);
  assert.not.ok(logs.includes('git found'));
  assert.match(adminText(['run', 'show', run.id]), new RegExp(`commit: +${sha}`));
  assert.match(adminText(['run', 'list', '--stack', stackId]), new RegExp(`main@${sha.slice(0, 12)}`));

  // run trigger --commit: exactly the older commit.
  const older = admin(['run', 'trigger', stackId, '--commit', base]).run.id;
  const r2 = await waitRunState(cli, older, ['FINISHED']);
  assert.is(r2.commit.sha, base);
  assert.match(adminText(['run', 'logs', older]), /# infra one/);
  assert.not.ok(launcher.output().includes(gs.password));
});

test.run();
