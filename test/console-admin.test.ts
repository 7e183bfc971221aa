// The console's admin pages in real Chromium against a real server run from
// source: a pool's description edited with the keyboard (PATCH /v1/pools/{id}),
// the run page of a deleted pool, an online backup downloaded from the page
// and checked like `launcher admin backup` does, and retention (gc) as a dry
// run and for real. Every action is checked through the admin API and the
// audit log; every page of the console is then visited once more and none may
// log an error in the browser console.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { readArchive } from '../lib/backup/archive.ts';
import { checkBackup } from '../lib/console/app/backup-check.ts';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { opensslCsr, startTestServer, tokenCertificate, type ClientCert, type TestServer } from './helpers/server.ts';

const root = new URL('..', import.meta.url).pathname;
const shots = join(root, 'docs/console');
let srv: TestServer;
let browser: Browser | undefined;
const work = mkdtempSync(join(tmpdir(), 'console-admin-'));
const ids = { pool: '', gone: '', stack: '', run: '' };
let rackCert: ClientCert;

test.before(async () => {
  srv = await startTestServer();
  const mk = async (name: string): Promise<string> => {
    const k = opensslCsr(work, name);
    const r = await srv.admin('POST', '/v1/pools', { name, csr: k.csrPem, description: 'lab rack' });
    assert.is(r.status, 201, r.text);
    if (name === 'rack-4') rackCert = { certPem: tokenCertificate(r.body.token), keyPem: k.keyPem };
    return r.body.pool.id;
  };
  ids.pool = await mk('rack-4');
  ids.gone = await mk('old-rack');
  // A run on the pool that is then deleted: canceled while queued, so the pool may go.
  const st = await srv.admin('POST', '/v1/stacks', { name: 'infra', pool: ids.gone, phases: [{ name: 'plan', script: 'echo plan' }] });
  assert.is(st.status, 201, st.text);
  ids.stack = st.body.stack.id;
  const run = await srv.admin('POST', `/v1/stacks/${ids.stack}/runs`, { proposed: false, workspace: null });
  assert.is(run.status, 201, run.text);
  ids.run = run.body.run.id;
  assert.is((await srv.admin('POST', `/v1/runs/${ids.run}/cancel`)).body.run.state, 'CANCELED');
  assert.is((await srv.admin('DELETE', `/v1/pools/${ids.gone}`)).status, 200);
});

test.after(async () => {
  await browser?.close();
  await srv?.stop();
  rmSync(work, { recursive: true, force: true });
});

/**
 * The page's document, inside functions Playwright runs in the page (passed as
 * functions, which run as written there: the console's CSP refuses the eval a
 * string expression needs). Tests compile without DOM types, hence this shape.
 */
interface PageDocument {
  activeElement: { id: string; textContent: string | null } | null;
  querySelector(s: string): { textContent: string | null } | null;
  querySelectorAll(s: string): Iterable<{ getAttribute(n: string): string | null }>;
}
type InPage = { document: PageDocument };

const auditLines = (): Record<string, unknown>[] =>
  readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

async function settled(page: Page): Promise<void> {
  await page.locator('h1').first().waitFor();
  await page.waitForFunction(() => !(globalThis as unknown as InPage).document.querySelector('main')?.textContent?.includes('Loading'));
}

test('sign in; edit a pool\'s description with the keyboard only', async () => {
  browser = await launchBrowser({ serverCertPem: readFileSync(join(srv.dataDir, 'server.crt'), 'utf8') });
  const { page } = browser;
  await page.goto(`${srv.url}/signin?next=/pools/${ids.pool}`);
  await page.getByLabel('Admin token').fill(srv.adminToken);
  await page.keyboard.press('Enter');
  await page.locator('h1', { hasText: 'Worker pool rack-4' }).waitFor();
  await page.locator('.description', { hasText: 'lab rack' }).waitFor();

  // Open with the keyboard: focus lands in the labelled field; Esc closes and focus returns.
  await page.getByRole('button', { name: 'Edit description' }).focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (globalThis as unknown as InPage).document.activeElement?.id === 'pool-description-edit');
  assert.is(await page.getByLabel('Description', { exact: true }).inputValue(), 'lab rack');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => (globalThis as unknown as InPage).document.activeElement?.textContent === 'Edit description');

  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (globalThis as unknown as InPage).document.activeElement?.id === 'pool-description-edit');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('rack 4, owned by the platform team');
  await page.screenshot({ path: join(shots, 'pool-description.png') });
  await page.keyboard.press('Enter');
  await page.locator('[role=status]', { hasText: 'Description saved.' }).waitFor();
  await page.locator('.description', { hasText: 'rack 4, owned by the platform team' }).waitFor();
  assert.is((await srv.admin('GET', `/v1/pools/${ids.pool}`)).body.pool.description, 'rack 4, owned by the platform team');
  const line = auditLines().findLast((l) => l.action === 'PATCH /v1/pools/{pool}');
  assert.equal(line, { time: line!.time, action: 'PATCH /v1/pools/{pool}', status: 200, remote: '127.0.0.1', pool: ids.pool });
  assert.equal(browser.errors, [], 'browser console errors');
});

test('the run page of a deleted pool says so, without asking for the pool', async () => {
  const { page } = browser!;
  const asked = browser!.requests.length;
  await page.goto(`${srv.url}/runs/${ids.run}`);
  await page.locator('[role=note]', { hasText: 'this worker pool has been deleted' }).waitFor();
  assert.match(await page.locator('h1').innerText(), /CANCELED/);
  assert.not.ok(browser!.requests.slice(asked).some((u) => u.includes(`/v1/pools/${ids.gone}`)), 'no request for the deleted pool');
  assert.equal(browser!.errors, [], 'browser console errors');
});

test('backup from the console: the same POST /v1/backup, checked in the page, saved, readable by the CLI\'s reader and GNU tar', async () => {
  const { page } = browser!;
  await page.getByRole('link', { name: 'Backup' }).click();
  await page.locator('h1', { hasText: 'Backup' }).waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Make a backup and download it' }).click(),
  ]);
  const file = join(work, download.suggestedFilename());
  await download.saveAs(file);
  assert.match(download.suggestedFilename(), /^launcher-backup-.*\.tar$/);
  await page.locator('h2', { hasText: 'Backup saved' }).waitFor();
  assert.match(await page.locator('[role=status]').innerText(), /1 pools, 1 stacks, 1 runs/);
  await page.screenshot({ path: join(shots, 'backup.png'), fullPage: true });
  const got = await readArchive(createReadStream(file));
  assert.is(got.manifest.counts.runs, 1);
  assert.ok(execFileSync('tar', ['-tf', file]).toString().split('\n').includes('SHA256SUMS'));
  assert.ok(auditLines().some((l) => l.action === 'POST /v1/backup' && l.status === 200 && l.remote === '127.0.0.1'), 'audited');
  assert.equal(browser!.errors, [], 'browser console errors');
});

test('the page\'s backup check refuses an archive cut short or altered', async () => {
  const r = await srv.admin('POST', '/v1/backup');
  assert.is(r.status, 200);
  const sha = async (d: Uint8Array): Promise<string> => createHash('sha256').update(d).digest('hex');
  const whole = new Uint8Array(r.raw);
  const ok = await checkBackup(whole, sha);
  assert.is(ok.manifest.counts.runs, 1);
  for (const cut of [100, 512, 1024 + 7, Math.floor(whole.length / 2), whole.length - 1024 - 1]) {
    try {
      await checkBackup(whole.subarray(0, cut), sha);
      assert.unreachable(`cut at ${cut} was accepted`);
    } catch (e) {
      assert.match((e as Error).message, /^(Incomplete|Damaged) backup/, `cut at ${cut}`);
    }
  }
  const altered = whole.slice();
  altered[512 + 10]! ^= 1; // inside the manifest's data
  try {
    await checkBackup(altered, sha);
    assert.unreachable('an altered archive was accepted');
  } catch (e) {
    assert.match((e as Error).message, /Damaged backup|Not a launcher backup/);
  }
});

test('retention from the console: a bad period is refused before sending; dry run, then removal; both audited as POST /v1/gc', async () => {
  const { page } = browser!;
  // The canceled run must be older than the period used below (wait on it, not on a clock).
  for (;;) {
    const dry = await srv.admin('POST', '/v1/gc', { dryRun: true, retainRuns: '1s' });
    if (dry.body.runs.count === 1) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  await page.getByRole('link', { name: 'Retention' }).click();
  await page.locator('h1', { hasText: 'Retention' }).waitFor();
  const runsField = page.getByLabel('Remove runs that ended more than');
  const asked = browser!.requests.length;
  await runsField.fill('forever');
  await page.locator('[role=alert]', { hasText: '"forever" is not a duration (try 30d, 720h or 90m)' }).waitFor();
  assert.ok(await page.getByRole('button', { name: 'Dry run' }).isDisabled());
  assert.not.ok(browser!.requests.slice(asked).some((u) => u.endsWith('/v1/gc')), 'nothing sent');

  await runsField.fill('1s');
  await page.getByRole('button', { name: 'Dry run' }).click();
  await page.locator('[role=status] h2', { hasText: 'Dry run: nothing was removed' }).waitFor();
  assert.match(await page.locator('[role=status]').innerText(), /Would remove 1 runs that ended before/);
  await page.screenshot({ path: join(shots, 'retention.png'), fullPage: true });
  assert.is((await srv.admin('GET', `/v1/runs/${ids.run}`)).status, 200, 'a dry run removes nothing');

  await page.getByRole('button', { name: 'Remove now' }).click();
  // A regular expression, not a string: a string hasText matches case-blind
  // substrings, and the dry run's "nothing was removed" would already match.
  await page.locator('[role=status] h2', { hasText: /^Removed/ }).waitFor();
  assert.match(await page.locator('[role=status]').innerText(), /Removed 1 runs that ended before/);
  assert.is((await srv.admin('GET', `/v1/runs/${ids.run}`)).status, 404);
  const gc = auditLines().filter((l) => l.action === 'POST /v1/gc' && l.remote === '127.0.0.1' && l.status === 200);
  assert.ok(gc.some((l) => l.dryRun === true && l.runs === 1));
  assert.ok(gc.some((l) => l.dryRun === false && l.runs === 1));
  assert.equal(browser!.errors, [], 'browser console errors');
});

test('runs filtered by stack, pool and state; the queue reordered with Prioritise; a queued run cancelled from its page', async () => {
  const { page } = browser!;
  const stack = async (name: string): Promise<void> => {
    const r = await srv.admin('POST', '/v1/stacks', { name, pool: ids.pool, phases: [{ name: 'plan', script: 'echo plan' }] });
    assert.is(r.status, 201, r.text);
  };
  await stack('web');
  await stack('db');
  // No worker polls this pool, so both runs wait in its queue, in trigger order.
  const trigger = async (name: string): Promise<string> => (await srv.admin('POST', `/v1/stacks/${name}/runs`, { proposed: false })).body.run.id;
  const web = await trigger('web');
  const db = await trigger('db');
  const shown = async (): Promise<string[]> => page.locator('tbody tr[data-run]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run')!));
  const until = async (want: string[]): Promise<void> => {
    await page.waitForFunction((w) => JSON.stringify([...(globalThis as unknown as InPage).document.querySelectorAll('tbody tr[data-run]')].map((r) => r.getAttribute('data-run'))) === w, JSON.stringify(want));
  };

  await page.getByRole('link', { name: 'Runs' }).click();
  await page.locator(`tr[data-run="${web}"]`).waitFor();
  await page.getByLabel('Stack', { exact: true }).selectOption({ label: 'db' });
  await until([db]);
  await page.getByLabel('Stack', { exact: true }).selectOption('');
  await page.getByLabel('Pool', { exact: true }).selectOption({ label: 'rack-4' });
  await until([db, web]);
  assert.match(page.url(), new RegExp(`pool=${ids.pool}`));
  await page.getByLabel('State', { exact: true }).selectOption('CANCELED');
  await until([]);
  await page.getByLabel('State', { exact: true }).selectOption('QUEUED');
  await until([db, web]);

  // The pool's queue: web first; Prioritise db moves it to the head, as the API says too.
  await page.goto(`${srv.url}/pools/${ids.pool}`);
  await until([web, db]);
  await page.getByRole('button', { name: `Prioritise ${db}` }).click();
  await until([db, web]);
  assert.equal((await srv.admin('GET', `/v1/pools/${ids.pool}/queue`)).body.runs.map((r: { id: string }) => r.id), [db, web]);
  assert.ok(auditLines().some((l) => l.action === 'POST /v1/runs/{run}/prioritize' && l.run === db && l.status === 200));
  assert.equal(await shown(), [db, web]);

  // Cancel one from its run page: the state filter then finds only the other.
  await page.locator(`tr[data-run="${web}"] a`).click();
  await page.locator('h1 .badge', { hasText: 'QUEUED' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('h1 .badge', { hasText: 'CANCELED' }).waitFor();
  await page.goto(`${srv.url}/runs?state=QUEUED`);
  await until([db]);
  await page.getByLabel('State', { exact: true }).selectOption('CANCELED');
  await until([web]);
  assert.equal(browser!.errors, [], 'browser console errors');
});

test('workers drained and undrained by tag and one by one', async () => {
  const { page } = browser!;
  const reg = async (tag: string): Promise<string> => {
    const r = await srv.worker(rackCert, 'POST', '/v1/worker/register', { workerId: null, metadata: { rack: tag }, version: '0.1.0', host: { hostname: `h-${tag}`, os: 'linux', arch: 'x64' } });
    assert.is(r.status, 200, r.text);
    return r.body.workerId;
  };
  const a = await reg('4');
  const b = await reg('5');
  const status = async (id: string): Promise<string> => (await srv.admin('GET', `/v1/workers?pool=${ids.pool}`)).body.workers.find((w: { id: string }) => w.id === id).status;
  await page.getByRole('link', { name: 'Workers' }).click();
  await page.getByLabel('Tag (key=value)').fill('rack=4');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator(`tr[data-worker="${a}"]`, { hasText: 'IDLE' }).waitFor();
  assert.is(await page.locator(`tr[data-worker="${b}"]`).count(), 0, 'the tag filter hides the other worker');
  await page.getByRole('button', { name: 'Drain all with rack=4', exact: true }).click();
  await page.locator(`tr[data-worker="${a}"]`, { hasText: 'DRAINED' }).waitFor();
  assert.equal([await status(a), await status(b)], ['DRAINED', 'IDLE']);
  await page.getByRole('button', { name: 'Undrain all with rack=4', exact: true }).click();
  await page.locator(`tr[data-worker="${a}"]`, { hasText: 'IDLE' }).waitFor();
  assert.is(await status(a), 'IDLE');
  const drains = auditLines().filter((l) => (l.action === 'POST /v1/workers/drain' || l.action === 'POST /v1/workers/undrain') && l.workers === a);
  assert.equal(drains.map((l) => l.action), ['POST /v1/workers/drain', 'POST /v1/workers/undrain']);
  assert.equal(browser!.errors, [], 'browser console errors');
});

/** Every file under `dir`, for plaintext greps of the server's data directory. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

test('a state file uploaded on the stack page is sealed in the browser (opens with age and the pool key, nowhere in plaintext); delete with its state versions', async () => {
  const { page } = browser!;
  const st = await srv.admin('POST', '/v1/stacks', { name: 'network', pool: ids.pool, tool: { name: 'terraform', manageState: true } });
  assert.is(st.status, 201, st.text);
  const stackId = st.body.stack.id;
  const lineage = `lineage-${Date.now().toString(36)}-console-push`;
  const tfstate = JSON.stringify({ version: 4, terraform_version: '1.9.0', serial: 7, lineage, outputs: { marker: { value: 'plain-state-marker', type: 'string' } }, resources: [] }, null, 2);
  const file = join(work, 'terraform.tfstate');
  writeFileSync(file, tfstate);
  writeFileSync(join(work, 'not-state.json'), '{"hello": 1}');

  await page.goto(`${srv.url}/stacks/network`);
  await page.locator('h2', { hasText: 'State versions' }).waitFor();
  // A file that is not a state is refused in the page, before anything is sealed or sent.
  const asked = browser!.requests.length;
  await page.getByLabel('Upload a state file (terraform.tfstate) as a new version').setInputFiles(join(work, 'not-state.json'));
  await page.getByRole('button', { name: 'Seal and upload' }).click();
  await page.locator('[role=alert]', { hasText: 'is not a Terraform state file' }).waitFor();
  assert.not.ok(browser!.requests.slice(asked).some((u) => u.includes('/state?')), 'nothing sent');

  await page.getByLabel('Upload a state file (terraform.tfstate) as a new version').setInputFiles(file);
  await page.getByRole('button', { name: 'Seal and upload' }).click();
  await page.locator('[role=status]', { hasText: 'State version 1 stored (serial 7, sealed in this browser to 1 pool key)' }).waitFor();
  await page.locator('tr[data-version="1"]', { hasText: 'current' }).waitFor();
  const sealed = (await srv.admin('GET', `/v1/stacks/${stackId}/state/1`)).raw;
  assert.match(sealed.subarray(0, 40).toString(), /^age-encryption\.org\/v1\n-> ssh-rsa /);
  assert.is(execFileSync('age', ['-d', '-i', join(work, 'rack-4.key')], { input: sealed }).toString(), tfstate);
  const leaked = filesUnder(srv.dataDir).filter((f) => readFileSync(f).includes('plain-state-marker'));
  assert.equal(leaked, [], 'the state\'s plaintext is nowhere in the data directory');
  assert.ok(auditLines().some((l) => l.action === 'PUT /v1/stacks/{stack}/state' && l.status === 201 && l.stack === stackId));

  await page.getByLabel('with its state versions').check();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.locator('h1', { hasText: 'Stacks' }).waitFor();
  assert.is((await srv.admin('GET', '/v1/stacks/network')).status, 404);
  assert.equal((await srv.admin('GET', `/v1/stacks/${stackId}/state`)).body.versions, [], 'its state versions are gone too');
  assert.ok(auditLines().some((l) => l.action === 'DELETE /v1/stacks/{stack}' && l.status === 200 && l.stack === stackId));
  assert.equal(browser!.errors, [], 'browser console errors');
});

test('a module created from the Modules page, then edited: listed under Modules only', async () => {
  const { page } = browser!;
  await page.getByRole('link', { name: 'Modules' }).click();
  await page.locator('h1', { hasText: 'Modules' }).waitFor();
  await page.getByRole('link', { name: 'New module' }).click();
  await page.locator('h1', { hasText: 'New module' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('vpc-module');
  await page.getByLabel('Worker pool').selectOption({ label: 'rack-4' });
  await page.getByLabel('Phase 1 name').fill('test');
  await page.getByLabel('Phase 1 script').fill('echo module test');
  await page.getByRole('button', { name: 'Create module' }).click();
  await page.locator('h1', { hasText: 'Module vpc-module' }).waitFor();
  const made = (await srv.admin('GET', '/v1/stacks/vpc-module')).body.stack;
  assert.is(made.kind, 'module');
  assert.is(made.pool, ids.pool);
  assert.equal(made.phases.map((p: { name: string; script: string }) => [p.name, p.script]), [['test', 'echo module test']]);

  await page.getByLabel('Phase 1 script').fill('echo module test, edited');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.locator('[role=status]', { hasText: 'Saved.' }).waitFor();
  assert.is((await srv.admin('GET', '/v1/stacks/vpc-module')).body.stack.phases[0].script, 'echo module test, edited');

  await page.getByRole('link', { name: 'Modules' }).click();
  await page.locator('tr[data-stack]', { hasText: 'vpc-module' }).waitFor();
  await page.getByRole('link', { name: 'Stacks' }).click();
  await page.locator('tr[data-stack]', { hasText: 'infra' }).waitFor();
  assert.is(await page.locator('tr[data-stack]', { hasText: 'vpc-module' }).count(), 0, 'not among the stacks');
  assert.equal(browser!.errors, [], 'browser console errors');
});

test('every page of the console, visited in turn, logs no error', async () => {
  const { page } = browser!;
  const pages = ['/pools', '/pools/new', `/pools/${ids.pool}`, '/workers', `/workers?pool=${ids.pool}&tag=rack=4`, '/stacks', '/stacks/new',
    `/stacks/${ids.stack}`, '/modules', '/runs', `/runs?state=CANCELED&pool=${ids.pool}`, '/audit', '/backup', '/retention'];
  for (const p of pages) {
    await page.goto(`${srv.url}${p}`);
    await settled(page);
    assert.equal(browser!.errors, [], `browser console errors on ${p}`);
  }
  assert.equal(browser!.requests.filter((r) => !r.startsWith(`${srv.url}/`)), [], 'no request to any other host');
});

test.run();
