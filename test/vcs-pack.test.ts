// Git packs and the smart HTTP framing without sockets: packs made by the
// host's git (with ofs-deltas and with ref-deltas) read back object by object
// and compared with `git cat-file`; damaged packs and deltas refused; pkt-lines,
// ref advertisements and side-band frames split at every byte.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDelta, indexPack, PackIndexer, parseCommit, parseTree, PackError } from '../lib/vcs/pack.ts';
import { FLUSH, parseAdvertisement, parsePktLines, pktLine, readPackResponse, SmartHttpError } from '../lib/vcs/smart-http.ts';

const dirs: string[] = [];
function repoWithSimilarFiles(): { dir: string; git: (...a: string[]) => string; raw: (...a: string[]) => Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-pack-test-'));
  dirs.push(dir);
  const env = { ...process.env, GIT_AUTHOR_NAME: 'Ada', GIT_AUTHOR_EMAIL: 'ada@example.test', GIT_COMMITTER_NAME: 'Ada', GIT_COMMITTER_EMAIL: 'ada@example.test', GIT_CONFIG_NOSYSTEM: '1', HOME: dir };
  const git = (...a: string[]) => execFileSync('git', ['-C', dir, ...a], { env, encoding: 'utf8', maxBuffer: 1 << 28 }).trim();
  const raw = (...a: string[]) => execFileSync('git', ['-C', dir, ...a], { env, maxBuffer: 1 << 28 });
  git('init', '-q', '-b', 'main');
  // Forty 20 KiB text files that differ in one line: pack-objects stores most as deltas.
  const body = Array.from({ length: 800 }, (_, i) => `line ${i} of a long configuration file with some words in it\n`).join('');
  for (let f = 0; f < 40; f++) writeFileSync(join(dir, `file-${f}.tf`), body.replace('line 400 ', `line 400 changed in file ${f} `));
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  git('add', '.');
  git('commit', '-q', '-m', 'Similar files\n\nbody');
  return { dir, git, raw };
}

function packOf(r: ReturnType<typeof repoWithSimilarFiles>, ofs: boolean): { pack: Buffer; oids: string[]; deltas: number } {
  const oids = r.git('rev-list', '--objects', '--all').split('\n').map((l) => l.split(' ')[0]!);
  const base = join(r.dir, ofs ? 'ofs' : 'ref');
  execFileSync('git', ['-C', r.dir, 'pack-objects', '-q', ...(ofs ? ['--delta-base-offset'] : []), base], { input: oids.join('\n') + '\n' });
  const name = execFileSync('sh', ['-c', `ls ${base}-*.pack`], { encoding: 'utf8' }).trim();
  // verify-pack -v lists a delta's depth and base: lines with 7 fields.
  const verify = execFileSync('git', ['verify-pack', '-v', name.replace(/\.pack$/, '.idx')], { encoding: 'utf8' });
  const deltas = verify.split('\n').filter((l) => /^[0-9a-f]{40} \w+ +\d+ \d+ \d+ \d+ [0-9a-f]{40}$/.test(l)).length;
  return { pack: readFileSync(name), oids, deltas };
}

for (const ofs of [true, false]) {
  test(`a pack with ${ofs ? 'ofs' : 'ref'}-deltas from git pack-objects: every object reads back as git cat-file shows it`, () => {
    const r = repoWithSimilarFiles();
    const { pack, oids, deltas } = packOf(r, ofs);
    assert.ok(deltas >= 20, `the pack should hold deltas (it holds ${deltas})`);
    const idx = indexPack(pack);
    assert.is(idx.count, oids.length);
    for (const oid of oids) {
      assert.ok(idx.has(oid), oid);
      const obj = idx.read(oid);
      assert.is(obj.type, r.git('cat-file', '-t', oid));
      assert.ok(obj.data.equals(r.raw('cat-file', obj.type, oid)), `${obj.type} ${oid} differs`);
    }
    const head = r.git('rev-parse', 'HEAD');
    const c = parseCommit(idx.read(head).data);
    assert.is(c.tree, r.git('rev-parse', 'HEAD^{tree}'));
    assert.is(c.author, 'Ada <ada@example.test>');
    assert.is(c.message, 'Similar files\n\nbody\n');
    const entries = parseTree(idx.read(c.tree).data);
    assert.is(entries.length, 41);
    assert.equal(entries.find((e) => e.name === 'run.sh')?.mode, '100755');
    assert.is(entries.find((e) => e.name === 'file-7.tf')?.oid, r.git('rev-parse', 'HEAD:file-7.tf'));
  });
}

test('damaged packs are refused with a reason', () => {
  const r = repoWithSimilarFiles();
  const { pack } = packOf(r, true);
  const flipped = Buffer.from(pack); flipped[200] ^= 0xff;
  // Found while the pack streams in (the object no longer inflates), or at its end (the trailer).
  assert.throws(() => indexPack(flipped), (e: Error) => e instanceof PackError && /^Corrupt pack/.test(e.message));
  const badTrailer = Buffer.from(pack); badTrailer[badTrailer.length - 1] ^= 0xff;
  assert.throws(() => indexPack(badTrailer), (e: Error) => e instanceof PackError && /trailer does not match/.test(e.message));
  assert.throws(() => indexPack(pack.subarray(0, pack.length - 100)), (e: Error) => e instanceof PackError);
  assert.throws(() => indexPack(Buffer.from('NOTAPACK'.repeat(8))), /does not start with "PACK"/);
  // Fed in small pieces, as it arrives from the network: the same objects.
  const ix = new PackIndexer();
  for (let i = 0; i < pack.length; i += 1000) ix.push(pack.subarray(i, i + 1000));
  const whole = indexPack(pack);
  const streamed = ix.end();
  const head = r.git('rev-parse', 'HEAD');
  assert.ok(streamed.read(head).data.equals(whole.read(head).data));
  assert.ok(streamed.read(r.git('rev-parse', 'HEAD:file-3.tf')).data.equals(r.raw('cat-file', 'blob', 'HEAD:file-3.tf')));
  assert.throws(() => indexPack(pack).read('f'.repeat(40)), /not in the pack/);
});

test('deltas: copy and insert opcodes, and every way a delta can be wrong', () => {
  const base = Buffer.from('0123456789abcdef');
  // src 16, dst 9: copy 4 bytes from offset 2, insert "XYZ", copy 2 from offset 14.
  const delta = Buffer.from([16, 9, 0x80 | 0x01 | 0x10, 2, 4, 3, 0x58, 0x59, 0x5a, 0x80 | 0x01 | 0x10, 14, 2]);
  assert.is(applyDelta(base, delta).toString(), '2345XYZef');
  assert.throws(() => applyDelta(Buffer.from('short'), delta), /base of 16 bytes/);
  assert.throws(() => applyDelta(base, Buffer.from([16, 9, 0x80 | 0x01 | 0x10, 15, 4])), /past its base/);
  assert.throws(() => applyDelta(base, Buffer.from([16, 2, 0])), /opcode 0/);
  assert.throws(() => applyDelta(base, Buffer.from([16, 5, 2, 0x41, 0x42])), /builds 2 bytes/);
  assert.throws(() => applyDelta(base, Buffer.from([0x80])), /ends inside a size/);
});

test('pkt-lines and the refs advertisement', () => {
  assert.is(pktLine('a\n').toString(), '0006a\n');
  const adv = Buffer.concat([
    pktLine('# service=git-upload-pack\n'), FLUSH,
    pktLine(`${'a'.repeat(40)} HEAD\0multi_ack shallow side-band-64k ofs-delta symref=HEAD:refs/heads/main\n`),
    pktLine(`${'a'.repeat(40)} refs/heads/main\n`),
    pktLine(`${'b'.repeat(40)} refs/heads/feature/x\n`),
    FLUSH,
  ]);
  const { refs, capabilities } = parseAdvertisement(adv);
  assert.is(refs.get('refs/heads/main'), 'a'.repeat(40));
  assert.is(refs.get('refs/heads/feature/x'), 'b'.repeat(40));
  assert.ok(capabilities.has('shallow') && capabilities.has('side-band-64k'));
  assert.equal(parsePktLines(Buffer.from('0000')), [null]);
  assert.throws(() => parsePktLines(Buffer.from('zzzz')), (e: Error) => e instanceof SmartHttpError);
  const empty = parseAdvertisement(Buffer.concat([pktLine('# service=git-upload-pack\n'), FLUSH, pktLine(`${'0'.repeat(40)} capabilities^{}\0shallow\n`), FLUSH]));
  assert.is(empty.refs.size, 0);
});

test('side-band frames: the pack comes out whole however the answer is split; errors from the server are named', async () => {
  const pack = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
  const frames = Buffer.concat([
    pktLine(`shallow ${'a'.repeat(40)}\n`), FLUSH, pktLine('NAK\n'),
    pktLine(Buffer.concat([Buffer.from([2]), Buffer.from('Counting objects\n')])),
    pktLine(Buffer.concat([Buffer.from([1]), pack.subarray(0, 1000)])),
    pktLine(Buffer.concat([Buffer.from([1]), pack.subarray(1000)])),
    FLUSH,
  ]);
  for (const size of [1, 7, 4096, frames.length]) {
    const chunks = [];
    for (let i = 0; i < frames.length; i += size) chunks.push(frames.subarray(i, i + size));
    assert.ok((await readPackResponse(chunks, true))!.equals(pack), `split every ${size} bytes`);
  }
  const err = Buffer.concat([pktLine('NAK\n'), pktLine(Buffer.concat([Buffer.from([3]), Buffer.from('fatal: out of memory')]))]);
  await readPackResponse([err], true).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /out of memory/));
  await readPackResponse([pktLine(`ERR upload-pack: not our ref ${'f'.repeat(40)}`)], true).then(() => assert.unreachable(), (e: SmartHttpError) => assert.is(e.code, 'SOURCE_COMMIT_NOT_FOUND'));
  await readPackResponse([FLUSH], true).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /without sending a pack/));
});

test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
test.run();
