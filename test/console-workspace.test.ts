// A run started from a folder chosen in the console, in real Chromium against
// the built executable and a real launcher: the page packs the folder as
// `launcher admin run trigger --workspace` does, seals it in the browser to
// the pool's key and uploads only the sealed file. What the server stored
// opens with `age -d -i spacelift.key` and lists with `tar -t`; the server's
// data directory never holds a file's plaintext; the run's container sees the
// files. A folder of 3,000 files keeps the page painting progress while it is
// sealed, and a folder over --max-workspace-size is refused before anything
// is sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import type { RunList, RunReply, StackReply } from '../lib/protocol.ts';
import { createPool, startBinaryLauncher, startBinaryServer } from './helpers/binary.ts';
import { consoleE2e } from './helpers/console-e2e.ts';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { TEST_IMAGE, ensureTestImage } from './helpers/docker.ts';

const { work, data, shots, started, waitText, cleanup } = consoleE2e('launcher-console-ws-');
let browser: Browser | undefined;

test.after(async () => {
  await browser?.close();
  await cleanup();
});

function writeTree(dir: string, files: Record<string, string | Buffer>): void {
  for (const [p, body] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), body);
  }
}

test('a folder chosen in the browser: packed and sealed there, opened by age, seen by the run, never in plaintext on the server', async () => {
  await ensureTestImage(new DockerClient());
  const server = await startBinaryServer(started, data, ['--max-workspace-size', '4MiB']);
  const { url, adminToken, api: adminApi } = server;
  const { token, keyPath } = await createPool(server, work, 'ws-pool');
  await startBinaryLauncher(started, { token, keyPath, stateDir: join(work, 'state') });
  // The phase waits for confirmation, so the stored workspace is still the upload when the test reads it.
  const script = [
    'echo "files: $(find . -type f | wc -l)"',
    'if [ -f "docs/hello world.txt" ]; then cat "docs/hello world.txt"; cat a/b/c/deep.txt; md5sum secret/hidden.txt; fi',
  ].join('\n');
  const stack = await adminApi<StackReply>('POST', '/v1/stacks', { name: 'ws-stack', pool: 'ws-pool', image: TEST_IMAGE, phases: [{ name: 'show', script, confirm: true }] });
  assert.is(stack.status, 201, stack.text);

  // The folder: nested directories, a name with spaces, a non-ASCII name, and a
  // marker that is never printed (the log would hold anything printed).
  const hidden = `hidden-${randomBytes(16).toString('hex')}`;
  const site = join(work, 'site');
  writeTree(site, {
    'README.md': '# site\n',
    'docs/hello world.txt': 'hello from a folder chosen in the browser\n',
    'docs/ünïcode.txt': 'pax path\n',
    'a/b/c/deep.txt': 'three levels down\n',
    'secret/hidden.txt': `${hidden}\n`,
  });

  browser = await launchBrowser({ serverCertPem: readFileSync(join(data, 'server.crt'), 'utf8') });
  const { page } = browser;
  await page.goto(`${url}/signin?next=/stacks/ws-stack`);
  await page.getByLabel('Admin token').fill(adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitText(page, 'h1', 'Stack ws-stack');
  await page.getByLabel('Folder to start the next run with (optional)').setInputFiles(site);
  await waitText(page, '.folder-summary', /site: 5 files in 6 folders/);
  mkdirSync(shots, { recursive: true });
  await page.locator('section.workspace-pick').screenshot({ path: join(shots, 'stack-workspace.png') });
  await page.getByRole('button', { name: 'Trigger run', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  const runId = new URL(page.url()).pathname.split('/').pop()!;
  await waitText(page, 'p.ok', /Workspace site: 5 files, .*uploaded, sealed to 1 key in this browser/);
  await waitText(page, 'h1 .badge', 'UNCONFIRMED');

  // What the server stored opens with the pool key, and is the folder's tar.
  const stored = await adminApi('GET', `/v1/runs/${runId}/workspace`);
  assert.is(stored.status, 200);
  assert.ok(stored.raw.subarray(0, 22).equals(Buffer.from('age-encryption.org/v1\n')), 'stored as an age file');
  writeFileSync(join(work, 'ws.age'), stored.raw);
  const tarFile = join(work, 'ws.tar');
  execFileSync('age', ['-d', '-i', keyPath, '-o', tarFile, join(work, 'ws.age')]);
  const listed = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).trim().split('\n').sort();
  assert.equal(listed, ['README.md', 'a/', 'a/b/', 'a/b/c/', 'a/b/c/deep.txt', 'docs/', 'docs/hello world.txt', 'docs/ünïcode.txt', 'secret/', 'secret/hidden.txt']);
  const verbose = execFileSync('tar', ['-tvf', tarFile], { encoding: 'utf8' });
  assert.match(verbose, /^-rw-r--r-- 0\/0 +42 .* docs\/hello world\.txt$/m);
  assert.match(verbose, /^drwxr-xr-x 0\/0 +0 .* a\/b\/$/m);
  assert.is(execFileSync('tar', ['-xOf', tarFile, 'docs/ünïcode.txt'], { encoding: 'utf8' }), 'pax path\n');
  const leaks = () => spawnSync('grep', ['-r', '-F', '-l', hidden, data], { encoding: 'utf8' });
  assert.is(leaks().status, 1, `the marker is nowhere in the data directory: ${leaks().stdout}`);

  // Confirmed in the page, the run's container sees the files.
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitText(page, 'h1 .badge', 'FINISHED');
  await waitText(page, '.log .row', 'files: 5');
  await waitText(page, '.log .row', 'hello from a folder chosen in the browser');
  await waitText(page, '.log .row', 'three levels down');
  await waitText(page, '.log .row', `${createHash('md5').update(`${hidden}\n`).digest('hex')}  secret/hidden.txt`);
  await page.screenshot({ path: join(shots, 'run-workspace.png') });
  assert.is(leaks().status, 1, 'the marker is nowhere in the data directory after the run');

  // 3,000 files: the page paints progress while it packs and seals (it yields between slices).
  const many = join(work, 'many');
  const manyFiles: Record<string, string> = {};
  for (let d = 0; d < 30; d++) for (let f = 0; f < 100; f++) manyFiles[`d${d}/f${f}.txt`] = `${d}.${f}\n`;
  writeTree(many, manyFiles);
  await page.goto(`${url}/stacks/ws-stack`);
  await page.getByLabel('Folder to start the next run with (optional)').setInputFiles(many);
  await waitText(page, '.folder-summary', /many: 3,000 files in 31 folders/);
  await page.evaluate(`(() => {
    window.__progress = [];
    new MutationObserver(() => {
      for (const p of document.querySelectorAll('.workspace-pick [role=status]')) window.__progress.push(p.textContent);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  })()`);
  await page.getByRole('button', { name: 'Trigger proposed run' }).click();
  await page.waitForURL(/\/runs\/run_/);
  const progress = await page.evaluate('window.__progress') as string[] | undefined;
  const manyId = new URL(page.url()).pathname.split('/').pop()!;
  await waitText(page, 'p.ok', /Workspace many: 3,000 files/);
  // The observer lives in the page, so it is gone after the move only if the page reloaded: it did not.
  assert.ok(Array.isArray(progress), 'the page did not reload');
  const partial = (progress ?? []).filter((t) => /Packing and sealing: [\d,]+ of 3,000 files/.test(t) && !t.includes(': 3,000 of'));
  assert.ok(partial.length > 0, `progress painted before the end: ${JSON.stringify((progress ?? []).slice(0, 5))}`);
  const manyStored = await adminApi('GET', `/v1/runs/${manyId}/workspace`);
  writeFileSync(join(work, 'many.age'), manyStored.raw);
  const manyList = execFileSync('age', ['-d', '-i', keyPath, join(work, 'many.age')], { maxBuffer: 1 << 26 });
  writeFileSync(join(work, 'many.tar'), manyList);
  assert.is(execFileSync('tar', ['-tf', join(work, 'many.tar')], { encoding: 'utf8' }).trim().split('\n').filter((l) => !l.endsWith('/')).length, 3000);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitText(page, 'h1 .badge', 'FINISHED');
  await waitText(page, '.log .row', 'files: 3000');

  // Over --max-workspace-size: refused in the page before anything is sealed or sent.
  const big = join(work, 'big');
  writeTree(big, { 'blob.bin': randomBytes(5 * 1024 * 1024) });
  const before = (await adminApi<RunList>('GET', '/v1/runs?stack=ws-stack')).body.runs.length;
  await page.goto(`${url}/stacks/ws-stack`);
  await page.getByLabel('Folder to start the next run with (optional)').setInputFiles(big);
  await waitText(page, '.workspace-pick .error', /The folder seals to 5\.00 MiB \(\d+ bytes\), over the server's limit of 4\.00 MiB \(4194304 bytes, --max-workspace-size\)/);
  assert.is(await page.locator('.folder-summary').count(), 0, 'no folder is kept for the trigger');
  assert.is((await adminApi<RunList>('GET', '/v1/runs?stack=ws-stack')).body.runs.length, before, 'no run was queued');

  // The server's own refusal still reads clearly if the page's check is passed by: the raw endpoint.
  const raw = await adminApi<RunReply>('POST', '/v1/stacks/ws-stack/runs?proposed=1', Buffer.from('not sealed'));
  assert.is(raw.status, 400);
  assert.match(raw.text, /NOT_SEALED/);
  assert.equal(browser.errors, [], 'browser console errors');
  assert.equal(browser.requests.filter((r) => !r.startsWith(`${url}/`)), [], 'requests to other hosts');
});

test.run();
