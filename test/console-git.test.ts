// A stack from Git set up in the console, in real Chromium against the built
// executable, a real launcher and `git http-backend` with basic auth: the
// repository credential is sealed in the browser (it opens with `age`, and
// the server's data directory never holds it), a run shows the exact commit
// it ran, and the webhook URL and secret the page shows accept a signed push
// delivered by curl.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { signBody } from '../lib/vcs/webhook.ts';
import { createPool, startBinaryLauncher, startBinaryServer } from './helpers/binary.ts';
import { consoleE2e } from './helpers/console-e2e.ts';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { TEST_IMAGE, ensureTestImage } from './helpers/docker.ts';
import { githubPushPayload, startGitServer, type GitServer } from './helpers/git-server.ts';

const { work, data, shots, started, waitText, cleanup } = consoleE2e('launcher-console-git-');
let browser: Browser | undefined;
let gs: GitServer | undefined;

test.after(async () => {
  await browser?.close();
  await cleanup(() => gs?.stop());
});

test('a Git stack from the console: credential sealed in the browser, the run\'s commit, the webhook the page shows', async () => {
  await ensureTestImage(new DockerClient());
  gs = await startGitServer({ username: 'ci', password: `tok-${Date.now().toString(36)}-console` });
  const repo = gs.createRepo('infra');
  const first = repo.commit({ 'hello.txt': 'hello from git\n' }, 'First commit');

  const server = await startBinaryServer(started, data);
  const { url, adminToken, api: adminApi } = server;
  const { token, keyPath } = await createPool(server, work, 'git-pool');
  await startBinaryLauncher(started, { token, keyPath, stateDir: join(work, 'state') });

  browser = await launchBrowser({ serverCertPem: readFileSync(join(data, 'server.crt'), 'utf8') });
  const { page } = browser;
  await page.goto(`${url}/signin?next=/stacks/new`);
  await page.getByLabel('Admin token').fill(adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitText(page, 'h1', 'New stack');
  await page.getByLabel('Name', { exact: true }).fill('git-stack');
  await page.getByLabel('Worker pool').selectOption({ label: 'git-pool' });
  await page.getByLabel('Runner image').fill(TEST_IMAGE);
  await page.getByLabel('Files come from').selectOption('git');
  await page.getByLabel('Repository URL').fill(repo.url);
  await page.getByLabel('Branch', { exact: true }).fill('main');
  await page.getByLabel('Credential user (optional)').fill(gs.username);
  await page.getByLabel('Credential token or password').fill(gs.password);
  await page.getByLabel('Trigger paths (one pattern per line; a push must touch one to queue a run; empty: any change)').fill('*.txt');
  await page.getByLabel('Phase 1 name').fill('show');
  await page.getByLabel('Phase 1 script').fill('cat hello.txt');
  mkdirSync(shots, { recursive: true });
  await page.locator('fieldset.source').screenshot({ path: join(shots, 'stack-git.png') });
  await page.getByRole('button', { name: 'Create stack' }).click();
  await waitText(page, 'h1', 'Stack git-stack');
  await waitText(page, '.source .sealed-status', 'Stored credential: sealed to 1 key.');

  // The stored credential opens with the pool key; the server's files never hold the token.
  const st = (await adminApi('GET', '/v1/stacks/git-stack')).body.stack;
  assert.is(st.repo, repo.url);
  assert.equal(st.triggerPaths, ['*.txt']);
  writeFileSync(join(work, 'cred.age'), Buffer.from(st.repoCredential, 'base64'));
  assert.equal(JSON.parse(execFileSync('age', ['-d', '-i', keyPath, join(work, 'cred.age')], { encoding: 'utf8' })), { username: gs.username, password: gs.password });
  assert.is(spawnSync('grep', ['-r', '-F', '-l', gs.password, data]).status, 1, 'the credential is nowhere in the data directory');

  // A run from the page: the exact commit, the repository's file in the log.
  await page.getByRole('button', { name: 'Trigger run', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  await waitText(page, 'h1 .badge', 'FINISHED');
  await waitText(page, '.log .row', 'hello from git');
  await waitText(page, 'dd', first.slice(0, 12));
  await page.screenshot({ path: join(shots, 'run-git.png') });

  // The webhook as the page shows it: a signed push delivered by curl queues a run of that commit.
  await page.goto(`${url}/stacks/git-stack`);
  const hookUrl = await page.getByLabel('Webhook URL').innerText();
  const secret = await page.getByLabel('Webhook secret').innerText();
  assert.is(hookUrl, `${url}/v1/hooks/git`);
  const second = repo.commit({ 'hello.txt': 'second version\n' }, 'Second commit');
  const body = JSON.stringify(githubPushPayload(repo, second));
  writeFileSync(join(work, 'push.json'), body);
  const answer = JSON.parse(execFileSync('curl', ['-sS', '--cacert', join(data, 'ca.crt'), '-X', 'POST', hookUrl,
    '-H', 'content-type: application/json', '-H', 'x-github-event: push', '-H', 'x-github-delivery: console-1',
    '-H', `x-hub-signature-256: ${signBody(body, secret)}`, '--data-binary', `@${join(work, 'push.json')}`], { encoding: 'utf8' }));
  assert.is(answer.runs.length, 1, JSON.stringify(answer));
  await page.goto(`${url}/runs/${answer.runs[0].id}`);
  await waitText(page, 'h1 .badge', 'FINISHED');
  await waitText(page, '.log .row', 'second version');
  await waitText(page, 'dd', second.slice(0, 12));
  await waitText(page, 'dd', 'push');
  assert.equal(browser.errors, [], 'browser console errors');
  assert.equal(browser.requests.filter((r) => !r.startsWith(`${url}/`)), [], 'requests to other hosts');
});

test.run();
