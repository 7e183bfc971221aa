// The console's pool management in a real browser against a server run from
// source: the `openssl req` line the form shows works as printed, a pasted CSR
// makes a pool whose token certifies that key, and a pool page adds and
// retires keys, resets with a new CSR, cycles and deletes, each checked
// through the admin API as `launcher admin` would see it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { opensslCsr, startTestServer, tokenCertificate, type TestServer } from './helpers/server.ts';

let srv: TestServer;
let browser: Browser | undefined;
const work = mkdtempSync(join(tmpdir(), 'console-pools-'));

test.before(async () => { srv = await startTestServer(); });
test.after(async () => {
  await browser?.close();
  await srv?.stop();
  rmSync(work, { recursive: true, force: true });
});

const samePublicKey = (token: string, keyPem: string): boolean =>
  new X509Certificate(tokenCertificate(token)).publicKey.export({ type: 'spki', format: 'pem' }) ===
  createPublicKey(keyPem).export({ type: 'spki', format: 'pem' });

test('create from a pasted CSR, add and retire a key, reset, cycle, delete', async () => {
  browser = await launchBrowser({ serverCertPem: readFileSync(join(srv.dataDir, 'server.crt'), 'utf8') });
  const { page } = browser;
  await page.goto(`${srv.url}/signin?next=/pools/new`);
  await page.getByLabel('Admin token').fill(srv.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('h1', { hasText: 'New worker pool' }).waitFor();

  // The openssl line on the page, run as printed, makes a key and a CSR.
  const line = await page.getByLabel('openssl command').innerText();
  const dir = mkdtempSync(join(work, 'openssl-'));
  execFileSync('sh', ['-c', line.replace('rsa:4096', 'rsa:2048')], { cwd: dir, stdio: 'ignore' });
  const csr = readFileSync(join(dir, 'spacelift.csr'), 'utf8');
  assert.match(csr, /BEGIN CERTIFICATE REQUEST/);

  await page.getByLabel('Name').fill('ops-pool');
  await page.getByLabel('Certificate request (CSR)').fill(csr);
  await page.getByRole('button', { name: 'Create worker pool' }).click();
  const token = await page.locator('#pool-token').inputValue();
  assert.ok(samePublicKey(token, readFileSync(join(dir, 'spacelift.key'), 'utf8')), 'the token certifies the CSR\'s key');
  await page.getByRole('link', { name: 'Go to the pool' }).click();
  await page.locator('h1', { hasText: 'Worker pool ops-pool' }).waitFor();
  const pool = async () => (await srv.admin('GET', '/v1/pools/ops-pool')).body.pool;
  const firstKey = (await pool()).keys[0].id;

  // A second key from a CSR file: its own token, two active keys.
  const second = opensslCsr(work, 'second');
  await page.getByRole('button', { name: 'Add a key' }).click();
  await page.getByRole('form', { name: 'Add a key' }).getByLabel('Or choose the CSR file').setInputFiles(second.csrPath);
  await page.waitForFunction(`document.getElementById('csr-add-a-key')?.value.includes('BEGIN CERTIFICATE REQUEST')`);
  await page.getByRole('form', { name: 'Add a key' }).getByRole('button', { name: 'Add a key' }).click();
  await page.locator('h2', { hasText: 'Token for the new key' }).waitFor();
  assert.ok(samePublicKey(await page.locator('#token-add-a-key').inputValue(), second.keyPem));
  await page.locator('tbody tr', { hasText: 'active' }).nth(1).waitFor();
  assert.equal((await pool()).keys.map((k: { state: string }) => k.state), ['active', 'active']);

  // Retire the first key.
  await page.getByRole('button', { name: `Retire key ${firstKey}` }).click();
  await page.locator('tbody tr', { hasText: 'retired' }).waitFor();
  assert.is((await pool()).keys.find((k: { id: string }) => k.id === firstKey).state, 'retired');

  // Reset with a third CSR: every key revoked, only the new one active.
  const third = opensslCsr(work, 'third');
  await page.getByRole('button', { name: 'Reset with a new CSR' }).click();
  await page.getByRole('form', { name: 'Reset with a new CSR' }).getByLabel('Certificate request (CSR)').fill(third.csrPem);
  await page.getByRole('form', { name: 'Reset with a new CSR' }).getByRole('button', { name: 'Reset with a new CSR' }).click();
  await page.locator('h2', { hasText: 'New pool token' }).waitFor();
  assert.ok(samePublicKey(await page.locator('#token-reset-with-a-new-csr').inputValue(), third.keyPem));
  const afterReset = (await pool()).keys.map((k: { state: string }) => k.state).sort();
  assert.equal(afterReset, ['active', 'revoked', 'revoked']);

  // Cycle, then delete.
  await page.getByRole('button', { name: 'Cycle workers' }).click();
  await page.locator('dd', { hasText: /^1$/ }).waitFor();
  assert.is((await pool()).cycle, 1);
  await page.getByRole('button', { name: 'Delete pool' }).click();
  await page.locator('h1', { hasText: 'Worker pools' }).waitFor();
  assert.is((await srv.admin('GET', '/v1/pools/ops-pool')).status, 404);
  assert.equal(browser.errors, [], 'browser console errors');
  assert.equal(browser.requests.filter((r) => !r.startsWith(`${srv.url}/`)), []);
});

test.run();
