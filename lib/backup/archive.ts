// Writing and reading the backup archive (layout in format.ts). The writer
// streams a snapshot's files into a tar with the manifest first and SHA256SUMS
// last; the reader checks an archive as it streams (names, manifest first,
// every entry's SHA-256, the sums last and complete) and hands each file to a
// sink, so `launcher admin backup` can verify while it downloads and `server
// restore` while it extracts.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { extract, pack, type Pack } from 'tar-stream';
import {
  MANIFEST_NAME, SUMS_NAME, invalidBackup, isBackupEntryName, parseManifest, parseSums, sumsText, type BackupManifest,
} from './format.ts';
import type { Snapshot } from './snapshot.ts';
import { feedEntry } from '../tar-feed.ts';

function addEntry(out: Pack, name: string, size: number, body: AsyncIterable<unknown> | Iterable<unknown>, onChunk?: (c: Buffer) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = out.entry({ name, size, mode: 0o600, mtime: new Date() }, (err) => (err ? reject(err) : resolve()));
    sink.on('error', reject);
    feedEntry(body, sink, () => new Error('the archive stream closed'), onChunk).catch(reject);
  });
}

/** The snapshot as a tar stream: manifest, files (each cut at its recorded size), SHA256SUMS. */
export function writeArchive(snap: Pick<Snapshot, 'manifest' | 'entries'>): Readable {
  const out = pack();
  (async () => {
    const sums = new Map<string, string>();
    const add = async (name: string, size: number, body: AsyncIterable<unknown> | Iterable<unknown>): Promise<void> => {
      const h = createHash('sha256');
      await addEntry(out, name, size, body, (c) => h.update(c));
      sums.set(name, h.digest('hex'));
    };
    const manifest = Buffer.from(JSON.stringify(snap.manifest, null, 2) + '\n');
    await add(MANIFEST_NAME, manifest.length, [manifest]);
    for (const e of snap.entries) {
      const body = e.size === 0 ? [] : createReadStream(e.path, { start: 0, end: e.size - 1 });
      await add(e.name, e.size, body);
    }
    const text = Buffer.from(sumsText(sums));
    await addEntry(out, SUMS_NAME, text.length, [text]);
    out.finalize();
  })().catch((e: unknown) => out.destroy(e as Error));
  return Readable.from(out, { objectMode: false });
}

async function collect(entry: AsyncIterable<unknown>, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of entry) {
    n += (c as Buffer).length;
    if (n > limit) throw invalidBackup(`Damaged backup: ${what} is larger than ${limit} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** Receives one file of the archive; must consume `data`. */
export type EntrySink = (name: string, size: number, data: AsyncIterable<Buffer>) => Promise<void>;

export interface ReadResult { manifest: BackupManifest; files: number; bytes: number }

/**
 * Reads a backup archive from `input`, checking it entry by entry; `sink`
 * (optional) receives each file. Throws BACKUP_INVALID naming the first fault:
 * an unexpected name, a missing manifest, a checksum that does not match, an
 * archive that ends early.
 */
export async function readArchive(input: AsyncIterable<unknown>, sink?: EntrySink): Promise<ReadResult> {
  const ex = extract();
  const feeding = feedEntry(input, ex, () => new Error('the archive stream closed'));
  feeding.catch(() => {});
  let manifest: BackupManifest | undefined;
  const seen = new Map<string, string>();
  let sums: Map<string, string> | undefined;
  let bytes = 0;
  try {
    for await (const entry of ex) {
      const name = entry.header.name;
      const size = entry.header.size ?? 0;
      if (sums) throw invalidBackup(`Damaged backup: entry "${name}" comes after ${SUMS_NAME}, which must be last`);
      if (entry.header.type !== 'file' || !isBackupEntryName(name)) {
        throw invalidBackup(`Not a launcher backup: unexpected entry "${name}" (a backup holds ${MANIFEST_NAME}, launcher.db, keys, workspaces/ and logs/)`);
      }
      if (manifest === undefined && name !== MANIFEST_NAME) throw invalidBackup(`Not a launcher backup: the first entry is "${name}", expected ${MANIFEST_NAME}`);
      if (name === SUMS_NAME) { sums = parseSums((await collect(entry, 64 * 1024 * 1024, SUMS_NAME)).toString('utf8')); continue; }
      if (seen.has(name)) throw invalidBackup(`Damaged backup: entry "${name}" appears twice`);
      const h = createHash('sha256');
      if (name === MANIFEST_NAME) {
        const buf = await collect(entry, 1024 * 1024, MANIFEST_NAME);
        h.update(buf);
        manifest = parseManifest(buf.toString('utf8'));
      } else {
        const hashed = (async function* () { for await (const c of entry) { h.update(c as Buffer); yield c as Buffer; } })();
        if (sink) await sink(name, size, hashed);
        else for await (const _ of hashed) { /* verify only */ }
        bytes += size;
      }
      seen.set(name, h.digest('hex'));
    }
    await feeding;
  } catch (e) {
    ex.destroy();
    if ((e as { code?: string }).code === 'BACKUP_INVALID') throw e;
    throw invalidBackup(`Damaged backup: ${(e as Error).message} (the file may be cut short)`);
  }
  if (!manifest) throw invalidBackup(`Not a launcher backup: no ${MANIFEST_NAME} (the file is empty or not a tar archive)`);
  if (!sums) throw invalidBackup(`Incomplete backup: it ends before ${SUMS_NAME} (the file was cut short, or the server failed while writing it)`);
  for (const [name, hex] of seen) {
    const want = sums.get(name);
    if (want === undefined) throw invalidBackup(`Damaged backup: "${name}" is not listed in ${SUMS_NAME}`);
    if (want !== hex) throw invalidBackup(`Damaged backup: the SHA-256 of "${name}" does not match ${SUMS_NAME}`);
  }
  for (const name of sums.keys()) if (!seen.has(name)) throw invalidBackup(`Incomplete backup: "${name}" is listed in ${SUMS_NAME} but missing`);
  const files = seen.size - 1;
  if (files !== manifest.files || bytes !== manifest.bytes) {
    throw invalidBackup(`Incomplete backup: ${files} files and ${bytes} bytes, the manifest says ${manifest.files} and ${manifest.bytes}`);
  }
  return { manifest, files, bytes };
}
