// docs/vcs.md's walkthrough, run as it is written: the shell block between its
// walkthrough markers, with `launcher` on PATH being the built executable and
// RUNNER_IMAGE the busybox test image. If the documentation drifts from the
// product, this fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DockerClient } from '../lib/docker/client.ts';
import { ensureBuilt } from './helpers/build.ts';
import { TEST_IMAGE, ensureTestImage } from './helpers/docker.ts';
import { requireGit } from './helpers/git-server.ts';

const ROOT = new URL('..', import.meta.url).pathname;

test('the walkthrough in docs/vcs.md runs as written: a push by curl queues a run that fetches the commit', async () => {
  requireGit();
  await ensureTestImage(new DockerClient());
  const binary = ensureBuilt();
  const doc = readFileSync(join(ROOT, 'docs/vcs.md'), 'utf8');
  const m = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(doc);
  assert.ok(m, 'docs/vcs.md has no walkthrough block');
  const bin = mkdtempSync(join(tmpdir(), 'launcher-walkthrough-bin-'));
  symlinkSync(binary, join(bin, 'launcher'));
  const node = join(ROOT, 'node_modules/.bin');
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const p = spawn('bash', ['-euo', 'pipefail', '-c', m![1]!], {
      cwd: ROOT,
      env: { PATH: `${bin}:${node}:${dirname(process.execPath)}:/usr/bin:/bin`, HOME: process.env.HOME ?? '/root', SRC: ROOT, RUNNER_IMAGE: TEST_IMAGE, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 240_000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, text }); });
  });
  rmSync(bin, { recursive: true, force: true });
  assert.is(out.code, 0, out.text);
  assert.match(out.text, /"message":"queued 1 run\(s\)"/);
  assert.match(out.text, /^state: +FINISHED/m, out.text);
  assert.match(out.text, /^branch: +main/m);
  assert.match(out.text, /^commit: +[0-9a-f]{40}$/m);
  assert.match(out.text, /^author: +Ada <ada@example\.test>/m);
  assert.match(out.text, /^message: +Add hello/m);
  assert.match(out.text, /\[launcher\] Fetched http:\/\/127\.0\.0\.1:\d+\/infra\.git main at [0-9a-f]{40}/);
  assert.match(out.text, /^hello from Git$/m);
  assert.not.match(out.text, /^\.git$/m, 'no .git in the workspace listing');
  assert.not.ok(out.text.includes('s3cret\n'), out.text);
});

test.run();
