// The console's tool workflow in real Chromium against the built executable
// and a real launcher running real Terraform: a stack set to Terraform in the
// Behavior section (its configuration written by a before-init hook), a run
// whose planned changes show before confirm, the sealed state versions
// (downloaded and opened with `age`), a rollback, and a drift schedule.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { createPool, startBinaryLauncher, startBinaryServer } from './helpers/binary.ts';
import { consoleE2e } from './helpers/console-e2e.ts';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { TERRAFORM_IMAGE, ensureTerraformImage } from './helpers/terraform.ts';

const { work, data, shots, started, waitText, cleanup } = consoleE2e('launcher-console-tf-', 180_000);
let browser: Browser | undefined;

test.after(async () => {
  await browser?.close();
  await cleanup();
});

test('a Terraform stack from the Behavior section: planned changes, confirm, sealed state versions, rollback, drift schedule', async () => {
  await ensureTerraformImage(new DockerClient());
  const server = await startBinaryServer(started, data);
  const { url, adminToken, api: adminApi } = server;
  const { token, keyPath } = await createPool(server, work, 'tf-pool');
  await startBinaryLauncher(started, { token, keyPath, stateDir: join(work, 'state') });

  browser = await launchBrowser({ serverCertPem: readFileSync(join(data, 'server.crt'), 'utf8') });
  const { page } = browser;
  await page.goto(`${url}/signin?next=/stacks/new`);
  await page.getByLabel('Admin token').fill(adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitText(page, 'h1', 'New stack');

  const config = (input: string) => `printf 'resource "terraform_data" "demo" {\\n  input = "${input}"\\n}\\n' > main.tf`;
  await page.getByLabel('Name', { exact: true }).fill('tf-stack');
  await page.getByLabel('Worker pool').selectOption({ label: 'tf-pool' });
  await page.getByLabel('Runner image').fill(TERRAFORM_IMAGE);
  await page.getByLabel('Runs', { exact: true }).selectOption('terraform');
  assert.is(await page.getByLabel('Phase 1 name').count(), 0, 'a tool stack has no phases of its own');
  await page.getByText('Var files, hooks and extra arguments').click();
  await page.getByLabel('Hook before-init (one command per line)').fill(config('one'));
  mkdirSync(shots, { recursive: true });
  await page.locator('.behavior').screenshot({ path: join(shots, 'stack-terraform.png') });
  await page.getByRole('button', { name: 'Create stack' }).click();
  await waitText(page, 'h1', 'Stack tf-stack');
  const st = (await adminApi('GET', '/v1/stacks/tf-stack')).body.stack;
  assert.is(st.tool.name, 'terraform');
  assert.equal(st.tool.hooks, { 'before-init': [config('one')] });
  assert.equal(st.phases, []);

  // Trigger: the plan's changes are on the run page before confirming.
  await page.getByRole('button', { name: 'Trigger run', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  await waitText(page, 'h1 .badge', 'UNCONFIRMED');
  await waitText(page, '.changes', '+1 to add');
  await waitText(page, '.resources', 'terraform_data.demo');
  await page.screenshot({ path: join(shots, 'run-plan.png') });
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitText(page, 'h1 .badge', 'FINISHED');

  // State version 1, from that run; downloaded, it opens with age and the pool key.
  await page.goto(`${url}/stacks/tf-stack`);
  await waitText(page, 'table.states tr[data-version="1"]', 'current');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.locator('tr[data-version="1"]').getByRole('link', { name: 'Download' }).click()]);
  const state = JSON.parse(execFileSync('age', ['-d', '-i', keyPath, (await dl.path())!], { encoding: 'utf8' }));
  assert.is(state.resources[0].type, 'terraform_data');
  assert.is(state.resources[0].instances[0].attributes.input.value, 'one');

  // Change the configuration in Behavior, apply again: version 2; roll back to 1: version 3.
  await page.getByText('Var files, hooks and extra arguments').click();
  await page.getByLabel('Hook before-init (one command per line)').fill(config('two'));
  await page.getByRole('button', { name: 'Save' }).click();
  await waitText(page, '[role=status]', 'Saved.');
  await page.getByRole('button', { name: 'Trigger run', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  await waitText(page, '.changes', '~1 to change');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitText(page, 'h1 .badge', 'FINISHED');
  await page.goto(`${url}/stacks/tf-stack`);
  await waitText(page, 'table.states tr[data-version="2"]', 'current');
  await page.getByRole('button', { name: 'Roll back to version 1' }).click();
  await waitText(page, 'table.states tr[data-version="3"]', 'current');
  const list = (await adminApi('GET', '/v1/stacks/tf-stack/state')).body;
  assert.is(list.current, 3);
  assert.match(list.versions.find((v: { version: number }) => v.version === 3).source, /rollback/);

  // A drift schedule: added, listed with its next slot, deleted.
  await page.getByLabel('Cron (UTC)').fill('0 3 * * *');
  await page.getByRole('button', { name: 'Add schedule' }).click();
  await waitText(page, 'table', '0 3 * * *');
  await page.locator('h2', { hasText: 'State versions' }).scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shots, 'stack-state.png') });
  assert.is((await adminApi('GET', '/v1/stacks/tf-stack/schedules')).body.schedules.length, 1);
  await page.getByRole('button', { name: 'Delete schedule 0 3 * * *' }).click();
  await waitText(page, 'p', 'No schedules.');
  assert.is((await adminApi('GET', '/v1/stacks/tf-stack/schedules')).body.schedules.length, 0);
  assert.equal(browser.errors, [], 'browser console errors');
});

test.run();
