// The one atomic file writer (keys, certificates, tokens, state files): the
// mode is the one asked for whatever the umask, the old content is replaced
// whole, and nothing is left behind when a step fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempPathFor, writeFileAtomic, writeFileAtomicSync } from '../lib/atomic-file.ts';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'launcher-atomic-')); dirs.push(d); return d; };
test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

for (const [name, write] of [
  ['async', (p: string, d: string, m?: number) => writeFileAtomic(p, d, m)],
  ['sync', async (p: string, d: string, m?: number) => writeFileAtomicSync(p, d, m)],
] as const) {
  test(`${name}: writes with the requested mode even under a narrow umask, and replaces the old file whole`, async () => {
    const d = tmp();
    const p = join(d, 'key.pem');
    writeFileSync(p, 'old content that is longer than the new one');
    const old = process.umask(0o077);
    try {
      await write(p, 'new', 0o644);
    } finally {
      process.umask(old);
    }
    assert.is(readFileSync(p, 'utf8'), 'new');
    assert.is(statSync(p).mode & 0o777, 0o644);
    await write(p, 'secret');
    assert.is(statSync(p).mode & 0o777, 0o600, 'default mode is owner-only');
    assert.equal(readdirSync(d), ['key.pem'], 'no temporary file is left');
  });

  test(`${name}: a failed rename leaves no temporary file and keeps what was there`, async () => {
    const d = tmp();
    const target = join(d, 'taken');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'x');
    let err: unknown;
    try { await write(target, 'data'); } catch (e) { err = e; }
    assert.ok(err, 'writing over a non-empty directory fails');
    assert.equal(readdirSync(d), ['taken']);
    assert.equal(readdirSync(target), ['inside']);
  });
}

test('concurrent writers of one file each use their own temporary name', async () => {
  const d = tmp();
  const p = join(d, 'state.json');
  assert.is.not(tempPathFor(p), tempPathFor(p));
  await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(p, `writer ${i}`)));
  assert.match(readFileSync(p, 'utf8'), /^writer \d+$/);
  assert.equal(readdirSync(d), ['state.json']);
});

test.run();
