// Writing and reading the backup archive (layout in format.ts). The writer
// streams a snapshot's files into a tar with the manifest first and SHA256SUMS
// last; the reader checks an archive as it streams (names, manifest first,
// every entry's SHA-256, the sums last and complete) and hands each file to a
// sink, so `launcher admin backup` can verify while it downloads and `server
// restore` while it extracts.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { END_OF_ARCHIVE, fileHeader, padding, readTar } from './tar.ts';
import {
  END_NAME, MANIFEST_NAME, SUMS_NAME, invalidBackup, isBackupEntryName, parseEnd, parseManifest, parseSums, sumsText,
  type BackupEnd, type BackupManifest,
} from './format.ts';
import type { Snapshot, SnapshotEntry } from './snapshot.ts';

/** Files up to this size are read whole, several at once ahead of the writer; larger ones are streamed. */
const SMALL = 1024 * 1024;
/** How many files are opened (and, when small, read) ahead of the writer: at most this many MiB held. */
const READ_AHEAD = 16;

type Opened =
  | { kind: 'missing' }
  | { kind: 'data'; data: Buffer; short: number | undefined }
  | { kind: 'stream'; fh: FileHandle; take: number; short: number | undefined };

/** Opens an entry's file: small ones are read at once, large ones left open to stream. */
async function openEntry(e: SnapshotEntry): Promise<Opened> {
  let fh: FileHandle;
  try { fh = await open(e.path, 'r'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  try {
    // A small log's length is known from the database: read it without a stat.
    const actual = e.size !== undefined && e.size <= SMALL ? e.size : (await fh.stat()).size;
    const want = e.size ?? actual;
    const take = Math.min(want, actual);
    const short = actual < want ? want : undefined;
    if (take > SMALL) return { kind: 'stream', fh, take, short };
    const data = Buffer.allocUnsafe(take);
    let got = 0;
    while (got < take) {
      const { bytesRead } = await fh.read(data, got, take - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    await fh.close();
    return { kind: 'data', data: data.subarray(0, got), short: got < want ? want : undefined };
  } catch (err) {
    await fh.close().catch(() => {});
    throw err;
  }
}

/**
 * The snapshot as a tar stream: manifest, files (a log cut at the length the
 * database copy records), the end record, SHA256SUMS. Pull-based: nothing is
 * read faster than the consumer takes it, beyond a bounded read-ahead.
 */
export function writeArchive(snap: Pick<Snapshot, 'manifest' | 'entries' | 'problems'>): Readable {
  const mtime = new Date();
  const entries = snap.entries;
  const problems = [...snap.problems];
  async function* chunks(): AsyncGenerator<Buffer> {
    const sums = new Map<string, string>();
    let files = 0;
    let bytes = 0;
    const whole = function* (name: string, data: Buffer): Generator<Buffer> {
      sums.set(name, createHash('sha256').update(data).digest('hex'));
      yield fileHeader(name, data.length, 0o600, mtime);
      yield data;
      yield padding(data.length);
    };
    yield* whole(MANIFEST_NAME, Buffer.from(JSON.stringify(snap.manifest, null, 2) + '\n'));
    const ahead: Promise<Opened>[] = [];
    let next = 0;
    try {
      for (let i = 0; i < entries.length; i++) {
        while (next < entries.length && ahead.length < READ_AHEAD) {
          const p = openEntry(entries[next++]!);
          p.catch(() => {});
          ahead.push(p);
        }
        const e = entries[i]!;
        const got = await ahead.shift()!;
        if (got.kind === 'missing') { problems.push(`${e.name}: missing`); continue; }
        if (got.short !== undefined) problems.push(`${e.name}: shorter on disk than the ${got.short} bytes the database records`);
        files++;
        if (got.kind === 'data') {
          bytes += got.data.length;
          yield* whole(e.name, got.data);
          continue;
        }
        const h = createHash('sha256');
        yield fileHeader(e.name, got.take, 0o600, mtime);
        let n = 0;
        for await (const c of got.fh.createReadStream({ start: 0, end: got.take - 1, highWaterMark: 1024 * 1024 })) {
          h.update(c as Buffer);
          n += (c as Buffer).length;
          yield c as Buffer;
        }
        if (n !== got.take) throw new Error(`${e.path} shrank while it was being read`);
        yield padding(got.take);
        bytes += got.take;
        sums.set(e.name, h.digest('hex'));
      }
    } finally {
      // Files opened ahead of a writer that stopped early.
      for (const p of ahead) p.then((o) => { if (o.kind === 'stream') void o.fh.close().catch(() => {}); }, () => {});
    }
    const end: BackupEnd = { files, bytes, problems: problems.sort() };
    yield* whole(END_NAME, Buffer.from(JSON.stringify(end, null, 2) + '\n'));
    const text = Buffer.from(sumsText(sums));
    yield fileHeader(SUMS_NAME, text.length, 0o600, mtime);
    yield text;
    yield padding(text.length);
    yield END_OF_ARCHIVE;
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** Receives the files of an archive as they stream (a returned promise is awaited). */
export interface EntrySink {
  open(name: string, size: number): void | Promise<void>;
  write(chunk: Buffer): void | Promise<void>;
  close(): void | Promise<void>;
}

export interface ReadResult { manifest: BackupManifest; end: BackupEnd; files: number; bytes: number }

const RECORD_LIMITS: Record<string, number> = { [MANIFEST_NAME]: 1024 * 1024, [END_NAME]: 64 * 1024 * 1024, [SUMS_NAME]: 64 * 1024 * 1024 };

/**
 * Reads a backup archive from `input`, checking it entry by entry; `sink`
 * (optional) receives each file. Throws BACKUP_INVALID naming the first fault:
 * an unexpected name, a missing manifest, a checksum that does not match, an
 * archive that ends early.
 */
export async function readArchive(input: AsyncIterable<unknown>, sink?: EntrySink): Promise<ReadResult> {
  let manifest: BackupManifest | undefined;
  let end: BackupEnd | undefined;
  let sums: Map<string, string> | undefined;
  const seen = new Map<string, string>();
  let bytes = 0;
  // The entry being read: a record kept in memory, or a file handed to the sink.
  let name = '';
  let hash = createHash('sha256');
  let record: Buffer[] | undefined;
  let recordSize = 0;
  try {
    await readTar(input, {
      entry(e) {
        name = e.name;
        if (sums) throw invalidBackup(`Damaged backup: entry "${name}" comes after ${SUMS_NAME}, which must be last`);
        if (e.type !== 'file' || !isBackupEntryName(name)) {
          throw invalidBackup(`Not a launcher backup: unexpected entry "${name}" (a backup holds ${MANIFEST_NAME}, launcher.db, keys, workspaces/ and logs/)`);
        }
        if (manifest === undefined && name !== MANIFEST_NAME) throw invalidBackup(`Not a launcher backup: the first entry is "${name}", expected ${MANIFEST_NAME}`);
        if (seen.has(name)) throw invalidBackup(`Damaged backup: entry "${name}" appears twice`);
        if (end && name !== SUMS_NAME) throw invalidBackup(`Damaged backup: entry "${name}" comes after ${END_NAME}`);
        hash = createHash('sha256');
        const limit = RECORD_LIMITS[name];
        if (limit !== undefined) {
          if (e.size > limit) throw invalidBackup(`Damaged backup: ${name} is larger than ${limit} bytes`);
          record = [];
          recordSize = 0;
          return;
        }
        record = undefined;
        bytes += e.size;
        return sink?.open(name, e.size);
      },
      data(chunk) {
        if (record) { record.push(chunk); recordSize += chunk.length; return; }
        hash.update(chunk);
        return sink?.write(chunk);
      },
      entryEnd() {
        if (record) {
          const buf = Buffer.concat(record, recordSize);
          record = undefined;
          if (name === SUMS_NAME) { sums = parseSums(buf.toString('utf8')); return; }
          hash.update(buf);
          if (name === MANIFEST_NAME) manifest = parseManifest(buf.toString('utf8'));
          else end = parseEnd(buf.toString('utf8'));
          seen.set(name, hash.digest('hex'));
          return;
        }
        seen.set(name, hash.digest('hex'));
        return sink?.close();
      },
    });
  } catch (e) {
    if ((e as { code?: string }).code === 'BACKUP_INVALID') throw e;
    throw invalidBackup(`Damaged backup: ${(e as Error).message} (the file may be cut short)`);
  }
  if (!manifest) throw invalidBackup(`Not a launcher backup: no ${MANIFEST_NAME} (the file is empty or not a tar archive)`);
  if (!sums) throw invalidBackup(`Incomplete backup: it ends before ${SUMS_NAME} (the file was cut short, or the server failed while writing it)`);
  for (const [n, hex] of seen) {
    const want = sums.get(n);
    if (want === undefined) throw invalidBackup(`Damaged backup: "${n}" is not listed in ${SUMS_NAME}`);
    if (want !== hex) throw invalidBackup(`Damaged backup: the SHA-256 of "${n}" does not match ${SUMS_NAME}`);
  }
  for (const n of sums.keys()) if (!seen.has(n)) throw invalidBackup(`Incomplete backup: "${n}" is listed in ${SUMS_NAME} but missing`);
  if (!end) throw invalidBackup(`Damaged backup: no ${END_NAME} before ${SUMS_NAME}`);
  const files = seen.size - 2;
  if (files !== end.files || bytes !== end.bytes) {
    throw invalidBackup(`Incomplete backup: ${files} files and ${bytes} bytes, ${END_NAME} says ${end.files} and ${end.bytes}`);
  }
  return { manifest, end, files, bytes };
}
