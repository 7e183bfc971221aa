// The web console end to end, in real Chromium against the built executable:
// the product document's whole flow done by clicking (sign in, pool from an
// `openssl req` CSR uploaded in the form, token copied into a real launcher,
// worker IDLE with its tag, stack with the pool attached in Behavior and a
// secret sealed in the browser, a run watched live, confirmed, FINISHED, the
// worker drained). Along the way: every request goes to the server only, no
// page logs an error, and each page's screenshot goes to docs/console/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { DockerClient } from '../lib/docker/client.ts';
import { startBinaryLauncher, startBinaryServer } from './helpers/binary.ts';
import { consoleE2e } from './helpers/console-e2e.ts';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { TEST_IMAGE, ensureTestImage } from './helpers/docker.ts';
import { httpsRequest } from './helpers/server.ts';

const { work, data, shots, started, cleanup } = consoleE2e('launcher-console-');
let browser: Browser | undefined;

/** Form controls a screen reader could not name (no <label>, aria-label or aria-labelledby). */
async function unlabelled(page: Page): Promise<string[]> {
  return page.evaluate(`[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 120))`) as Promise<string[]>;
}

async function shot(page: Page, name: string): Promise<void> {
  assert.equal(await unlabelled(page), [], `unlabelled controls on ${name}`);
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

/** Waits until `selector` shows `text` (the page refreshes on its own: no reloads). */
async function waitText(page: Page, selector: string, text: string | RegExp, ms = 120_000): Promise<void> {
  await page.locator(selector, { hasText: text }).first().waitFor({ state: 'visible', timeout: ms });
}

test.after(async () => {
  await browser?.close();
  await cleanup();
});

test('the product flow in the browser: sign in, pool from a CSR file, launcher, stack with a browser-sealed secret, live run, confirm, drain', async () => {
  await ensureTestImage(new DockerClient());
  const { url, adminToken, ca, api: adminApi } = await startBinaryServer(started, data);
  const origin = new URL(url).origin;

  browser = await launchBrowser({ serverCertPem: readFileSync(join(data, 'server.crt'), 'utf8') });
  const { page, context } = browser;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });

  // Without a session a page sends the browser to sign-in.
  await page.goto(`${url}/pools`);
  assert.is(new URL(page.url()).pathname, '/signin');
  await page.getByLabel('Admin token').waitFor();
  await shot(page, 'signin');
  // Keyboard only: Tab to the token field, type, Enter.
  for (let i = 0; i < 6 && await page.evaluate('document.activeElement?.id') !== 'admin-token'; i++) await page.keyboard.press('Tab');
  assert.is(await page.evaluate('document.activeElement?.id'), 'admin-token', 'the token field is reachable with Tab');
  await page.keyboard.type(adminToken);
  await page.keyboard.press('Enter');
  await waitText(page, 'h1', 'Worker pools');
  assert.is(new URL(page.url()).pathname, '/pools');
  const cookie = (await context.cookies(origin)).find((c) => c.name === 'launcher_session')!;
  assert.ok(cookie, 'session cookie set');
  assert.ok(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict' && cookie.expires > Date.now() / 1000, JSON.stringify(cookie));
  assert.is(await page.evaluate('document.cookie'), '', 'the page script cannot read the session cookie');

  // The CSR, made as the product document says.
  const keyPath = join(work, 'spacelift.key');
  const csrPath = join(work, 'spacelift.csr');
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', csrPath, '-subj', '/CN=console-test'], { stdio: 'ignore' });

  // Create the pool by uploading the CSR file in the form.
  await page.getByRole('link', { name: 'New worker pool' }).click();
  await waitText(page, 'h1', 'New worker pool');
  await page.getByLabel('Name').fill('console-pool');
  await page.getByLabel('Description').fill('hosts in the lab rack');
  await page.getByLabel('Or choose the CSR file').setInputFiles(csrPath);
  await page.waitForFunction(`document.getElementById('pool-csr')?.value.includes('BEGIN CERTIFICATE REQUEST')`);
  await shot(page, 'pool-new');
  await page.getByRole('button', { name: 'Create worker pool' }).click();
  await waitText(page, 'h1', 'Worker pool console-pool created');
  const shownToken = await page.locator('#pool-token').inputValue();
  assert.ok(shownToken.length > 100, 'token shown');
  const command = await page.getByLabel('Launcher command').innerText();
  assert.ok(command.startsWith(`SPACELIFT_TOKEN=${shownToken} SPACELIFT_POOL_PRIVATE_KEY="$(base64 -w0 spacelift.key)" ./launcher`), command);
  await shot(page, 'pool-token');
  // Copy the token (the real clipboard), and download it.
  await page.getByRole('button', { name: 'Copy token' }).click();
  await waitText(page, 'button', 'Copied');
  const token = await page.evaluate('navigator.clipboard.readText()') as string;
  assert.is(token, shownToken);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download token' }).click()]);
  assert.is(dl.suggestedFilename(), 'console-pool.token');
  assert.is(readFileSync((await dl.path())!, 'utf8').trim(), token);

  // A real launcher with the copied token appears as an IDLE worker with its tag.
  await startBinaryLauncher(started, { token, keyPath, stateDir: join(work, 'state'), env: { SPACELIFT_METADATA_instance_id: 'i-console' } });
  await page.getByRole('link', { name: 'Go to the pool' }).click();
  await waitText(page, 'h1', 'Worker pool console-pool');
  await waitText(page, '.description', 'hosts in the lab rack');
  await waitText(page, 'table.workers tbody tr', /IDLE[\s\S]*instance_id=i-console/);
  await shot(page, 'pool');

  // A stack with the pool attached in Behavior, an env var, a secret, two phases.
  const secret = `s3cr3t-${randomBytes(8).toString('hex')}`;
  await page.getByRole('link', { name: 'Stacks' }).click();
  await waitText(page, 'h1', 'Stacks');
  await page.getByRole('link', { name: 'New stack' }).click();
  await waitText(page, 'h1', 'New stack');
  await page.getByLabel('Name', { exact: true }).fill('console-stack');
  await page.getByLabel('Worker pool').selectOption({ label: 'console-pool' });
  await page.getByLabel('Runner image').fill(TEST_IMAGE);
  await page.getByRole('button', { name: 'Add a variable' }).click();
  await page.getByLabel('Environment 1 name').fill('GREETING');
  await page.getByLabel('Environment 1 value').fill('hello from the console');
  await page.getByRole('button', { name: 'Add a secret' }).click();
  await page.getByLabel('Secrets 1 name').fill('API_SECRET');
  await page.getByLabel('Secrets 1 value').fill(secret);
  await page.getByLabel('Phase 1 name').fill('plan');
  await page.getByLabel('Phase 1 script').fill(`echo "plan: $GREETING"; printf '\\033[32mgreen text\\033[0m\\n'; echo first-live-line; sleep 4; echo second-live-line`);
  await page.getByRole('button', { name: 'Add a phase' }).click();
  await page.getByLabel('Phase 2 name').fill('apply');
  // The script compares a hash, so the value itself is never in the stack's (plain) configuration.
  const secretSha = createHash('sha256').update(secret).digest('hex');
  await page.getByLabel('Phase 2 script').fill(`[ "$(printf %s "$API_SECRET" | sha256sum | cut -c1-64)" = "${secretSha}" ] && echo secret-opened-by-the-launcher; echo applied`);
  await page.getByLabel('Wait for confirmation before phase 2').check();
  await shot(page, 'stack-new');
  await page.getByRole('button', { name: 'Create stack' }).click();
  await waitText(page, 'h1', 'Stack console-stack');
  await waitText(page, '[role=status]', 'Secrets sealed in this browser to 1 key.');
  await waitText(page, '.sealed-status', 'Stored secrets: sealed to 1 key.');
  await shot(page, 'stack');

  // What the server stored is an age file the pool key opens; the value is nowhere in its data directory.
  const st = (await adminApi('GET', '/v1/stacks/console-stack')).body.stack;
  assert.is(st.env.GREETING, 'hello from the console');
  writeFileSync(join(work, 'secret.age'), Buffer.from(st.secretEnv, 'base64'));
  const opened = JSON.parse(execFileSync('age', ['-d', '-i', keyPath, join(work, 'secret.age')], { encoding: 'utf8' }));
  assert.equal(opened, { API_SECRET: secret });
  const grep = spawnSync('grep', ['-r', '-F', '-l', secret, data]);
  assert.is(grep.status, 1, `grep found the secret in: ${grep.stdout}`);

  // Trigger a run and watch its log arrive live.
  await page.getByRole('button', { name: 'Trigger run', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  const runId = new URL(page.url()).pathname.split('/')[2]!;
  await waitText(page, '.log .row', 'first-live-line');
  // The first line is on screen while the phase is still running: it came over the live stream.
  const whileRunning = await page.evaluate(`({
    badge: document.querySelector('h1 .badge')?.textContent,
    second: document.querySelector('.log').textContent.includes('second-live-line'),
  })`);
  assert.equal(whileRunning, { badge: 'RUNNING', second: false });
  await waitText(page, '.log .row', 'second-live-line');
  await waitText(page, '.log .row', 'plan: hello from the console');
  const green = await page.locator('.log .row span.f2', { hasText: 'green text' }).count();
  assert.is(green, 1, 'the ANSI colour is rendered as a class, not printed');
  assert.not.match(await page.locator('.log').innerText(), /\[32m/);
  await waitText(page, 'h1 .badge', 'UNCONFIRMED');
  await waitText(page, '.timeline', 'apply: waiting for confirmation');
  await shot(page, 'run-unconfirmed');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitText(page, 'h1 .badge', 'FINISHED');
  await waitText(page, '.log .row', 'secret-opened-by-the-launcher');
  await waitText(page, '.log .row', 'applied');
  await waitText(page, '.timeline', 'FINISHED');
  await shot(page, 'run');
  const run = (await adminApi('GET', `/v1/runs/${runId}`)).body.run;
  assert.is(run.state, 'FINISHED');

  // The event stream the page used, read as any SSE client would: run, log in
  // order, end; resuming from an event id sends only what came after it.
  const parse = (text: string) => text.split('\n\n').filter((b) => /^(event|id):/m.test(b)).map((b) => ({
    event: /^event: (.*)$/m.exec(b)?.[1], id: /^id: (.*)$/m.exec(b)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(b)?.[1] ?? 'null'),
  }));
  const full = parse((await adminApi('GET', `/v1/runs/${runId}/events`)).text);
  assert.is(full[0]!.event, 'run');
  assert.is(full.at(-1)!.event, 'end');
  const logs = full.filter((e) => e.event === 'log');
  const text = logs.map((e) => e.data.text).join('');
  assert.match(text, /first-live-line\n(.|\n)*second-live-line\n(.|\n)*secret-opened-by-the-launcher\napplied\n/);
  const stored = (await adminApi('GET', `/v1/runs/${runId}/logs`)).text;
  assert.is(text, stored, 'the stream carries exactly the stored log');
  const resumed = parse((await httpsRequest(url, 'GET', `/v1/runs/${runId}/events`, { ca, headers: { authorization: `Bearer ${adminToken}`, 'last-event-id': logs[0]!.id! } })).text);
  assert.is(resumed.filter((e) => e.event === 'log').map((e) => e.data.text).join(''), logs.slice(1).map((e) => e.data.text).join(''));

  // The run on a phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await waitText(page, '.log .row', 'applied');
  await shot(page, 'run-phone');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Runs list with a filter.
  await page.goto(`${url}/runs`);
  await waitText(page, 'h1', 'Runs');
  await page.getByLabel('State').selectOption('FINISHED');
  await waitText(page, `tr[data-run="${runId}"]`, 'FINISHED');
  await shot(page, 'runs');

  // Workers: filter by tag, drain, see DRAINED.
  await page.getByRole('link', { name: 'Workers' }).click();
  await waitText(page, 'h1', 'Workers');
  await page.getByLabel('Tag (key=value)').fill('instance_id=i-console');
  await page.getByRole('button', { name: 'Filter' }).click();
  await waitText(page, 'table.workers tbody tr', 'IDLE');
  const workerId = await page.locator('table.workers tbody tr').first().getAttribute('data-worker');
  // By tag (every worker with instance_id=i-console), then one by one.
  await page.getByRole('button', { name: 'Drain all with instance_id=i-console', exact: true }).click();
  await waitText(page, 'table.workers tbody tr', 'DRAINED');
  await page.getByRole('button', { name: `Undrain ${workerId}`, exact: true }).click();
  await waitText(page, 'table.workers tbody tr', 'IDLE');
  await page.getByRole('button', { name: `Drain ${workerId}`, exact: true }).click();
  await waitText(page, 'table.workers tbody tr', 'DRAINED');
  await shot(page, 'workers');
  const w = (await adminApi('GET', '/v1/workers?metadata=instance_id=i-console')).body.workers[0];
  assert.is(w.status, 'DRAINED');

  // With the worker drained a new run waits in the pool's queue: prioritise it there, then cancel it.
  await page.goto(`${url}/stacks/console-stack`);
  await page.getByRole('button', { name: 'Trigger run', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  const queuedId = new URL(page.url()).pathname.split('/')[2]!;
  await waitText(page, 'h1 .badge', 'QUEUED');
  await page.goto(`${url}/pools/console-pool`);
  await waitText(page, `tr[data-run="${queuedId}"]`, 'QUEUED');
  await shot(page, 'pool-queue');
  await page.getByRole('button', { name: `Prioritise ${queuedId}` }).click();
  await page.locator(`tr[data-run="${queuedId}"] a`).click();
  await waitText(page, 'h1 .badge', 'QUEUED');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await waitText(page, 'h1 .badge', 'CANCELED');
  // A run waiting for confirmation before its first phase can be discarded.
  const waiting = await adminApi('POST', '/v1/stacks', { name: 'confirm-first', pool: 'console-pool', image: TEST_IMAGE, phases: [{ name: 'apply', script: 'echo never', confirm: true }] });
  assert.is(waiting.status, 201, waiting.text);
  const unconfirmed = (await adminApi('POST', '/v1/stacks/confirm-first/runs', { proposed: false })).body.run;
  await page.goto(`${url}/runs/${unconfirmed.id}`);
  await waitText(page, 'h1 .badge', 'UNCONFIRMED');
  await page.getByRole('button', { name: 'Discard' }).click();
  await waitText(page, 'h1 .badge', 'DISCARDED');
  const ended = await Promise.all([queuedId, unconfirmed.id].map(async (id) => (await adminApi('GET', `/v1/runs/${id}`)).body.run.state));
  assert.equal(ended, ['CANCELED', 'DISCARDED']);

  // The stacks list shows the last tracked run's state; the audit log shows what the console did.
  await page.getByRole('link', { name: 'Stacks' }).click();
  await waitText(page, 'tr[data-stack]', 'CANCELED');
  await shot(page, 'stacks');
  await page.getByRole('link', { name: 'Audit log' }).click();
  await waitText(page, 'table', 'POST /v1/workers/drain');
  await shot(page, 'audit');
  const audit = readFileSync(join(data, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const actions = audit.map((a) => `${a.action} ${a.status}`);
  for (const a of ['POST /console/session 201', 'POST /v1/pools 201', 'POST /v1/stacks 201', 'POST /v1/stacks/{stack}/runs 201', 'POST /v1/runs/{run}/confirm 200', 'POST /v1/workers/drain 200', 'POST /v1/workers/undrain 200', 'POST /v1/runs/{run}/prioritize 200', 'POST /v1/runs/{run}/cancel 200', 'POST /v1/runs/{run}/discard 200']) {
    assert.ok(actions.includes(a), `audit has ${a}: ${actions.join(', ')}`);
  }
  assert.is(audit.find((a) => a.action === 'POST /v1/runs/{run}/confirm').run, runId, 'the audit line names the run, as for the CLI');

  // Sign out: the cookie is gone and pages go back to sign-in.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await waitText(page, 'h1', 'Sign in');
  await page.goto(`${url}/runs/${runId}`);
  assert.is(new URL(page.url()).pathname, '/signin');

  // Only the server was ever asked for anything, and no page logged an error.
  const foreign = browser.requests.filter((r) => !r.startsWith(`${origin}/`) && !r.startsWith('blob:') );
  assert.equal(foreign, [], 'requests to other hosts');
  assert.ok(browser.requests.some((r) => r.includes('/events')), 'the run page used the event stream');
  assert.equal(browser.errors, [], 'browser console errors');
});

test.run();
