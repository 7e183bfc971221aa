// Git packfiles without a Git binary, without sockets: index a received pack
// (every object's id, by inflating it once with node:zlib and hashing it with
// node:crypto), resolve deltas (ofs-delta and ref-delta), and read objects back
// by id. Both are native, which is what makes a depth-1 checkout of a large
// repository cost about what `git clone --depth 1` costs (docs/benchmarks.md);
// the pack itself stays one Buffer and objects are inflated again when read.
// Indexing runs while the pack arrives (PackIndexer), as git's index-pack does.
//
// Format: https://git-scm.com/docs/pack-format (version 2 and 3 headers).
import { createHash } from 'node:crypto';
import { inflateSync } from 'node:zlib';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';
const TYPES: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
const OFS_DELTA = 6;
const REF_DELTA = 7;

export class PackError extends Error {
  constructor(message: string) { super(message); this.name = 'PackError'; }
}

interface Entry {
  /** 1–4, or 6/7 for deltas. */
  kind: number;
  /** Inflated size (of the delta, for deltas). */
  size: number;
  /** Where the zlib stream starts. */
  data: number;
  baseOffset?: number;
  baseOid?: string;
}

export interface GitObject { type: ObjectType; data: Buffer }

export interface PackIndex {
  /** Object count from the pack header. */
  count: number;
  has(oid: string): boolean;
  read(oid: string): GitObject;
}

/** Inflates the zlib stream at `at` (not past `limit`); returns the data and the compressed length. */
function inflateAt(pack: Buffer, at: number, size: number, limit: number): { data: Buffer; used: number } {
  // A bound on the compressed length (stored blocks add 5 bytes per 16 KiB at
  // worst) so zlib is never handed the whole rest of the pack.
  const end = Math.min(limit, at + compressedBound(size));
  let r: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    r = inflateSync(pack.subarray(at, end), { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
  } catch (e) {
    throw new PackError(`Corrupt pack: the object data at offset ${at} does not inflate (${(e as Error).message})`);
  }
  if (r.buffer.length !== size) throw new PackError(`Corrupt pack: the object at offset ${at} inflates to ${r.buffer.length} bytes, its header says ${size}`);
  return { data: r.buffer, used: r.engine.bytesWritten };
}

const compressedBound = (size: number): number => size + Math.ceil(size / 16_000) * 5 + 64;

/** Applies a Git delta to its base. */
export function applyDelta(base: Buffer, delta: Buffer): Buffer {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    let c: number;
    do {
      if (i >= delta.length) throw new PackError('Corrupt delta: it ends inside a size');
      c = delta[i++]!;
      v += (c & 0x7f) * 2 ** shift;
      shift += 7;
    } while (c & 0x80);
    return v;
  };
  const srcSize = varint();
  if (srcSize !== base.length) throw new PackError(`Corrupt delta: made for a base of ${srcSize} bytes, the base has ${base.length}`);
  const out = Buffer.allocUnsafe(varint());
  let o = 0;
  while (i < delta.length) {
    const op = delta[i++]!;
    if (op & 0x80) {
      let off = 0;
      let len = 0;
      if (op & 0x01) off |= delta[i++]!;
      if (op & 0x02) off |= delta[i++]! << 8;
      if (op & 0x04) off |= delta[i++]! << 16;
      if (op & 0x08) off += delta[i++]! * 2 ** 24;
      if (op & 0x10) len |= delta[i++]!;
      if (op & 0x20) len |= delta[i++]! << 8;
      if (op & 0x40) len |= delta[i++]! << 16;
      if (len === 0) len = 0x10000;
      if (off + len > base.length || o + len > out.length) throw new PackError('Corrupt delta: a copy reaches past its base or result');
      base.copy(out, o, off, off + len);
      o += len;
    } else if (op !== 0) {
      if (i + op > delta.length || o + op > out.length) throw new PackError('Corrupt delta: an insert reaches past its end');
      delta.copy(out, o, i, i + op);
      i += op;
      o += op;
    } else {
      throw new PackError('Corrupt delta: opcode 0 is reserved');
    }
  }
  if (o !== out.length) throw new PackError(`Corrupt delta: it builds ${o} bytes, it says ${out.length}`);
  return out;
}

const oidOf = (type: ObjectType, data: Buffer): string =>
  createHash('sha1').update(`${type} ${data.length}\0`).update(data).digest('hex');

/** Indexes a whole pack held in memory (its trailer checksum verified). */
export function indexPack(pack: Buffer): PackIndex {
  const ix = new PackIndexer();
  ix.push(pack);
  return ix.end();
}

/**
 * Indexes a pack while it arrives: each object is inflated and hashed as soon
 * as all of its bytes can be there, so the work overlaps the download (as
 * git's index-pack does) instead of following it. Deltas are resolved as they
 * come when their base is known (always, for ofs-deltas), else at the end.
 */
export class PackIndexer {
  #buf = Buffer.allocUnsafe(1 << 20);
  #len = 0;
  #hash = createHash('sha1');
  #hashed = 0;
  #at = 12;
  #n = 0;
  #count = -1;
  #entries = new Map<number, Entry>();
  #byOid = new Map<string, number>();
  #deferred: number[] = [];
  // Resolved objects kept as delta bases; bounded, then simply cleared.
  #cache = new Map<number, GitObject>();
  #cached = 0;
  #budget = 64 * 1024 * 1024;
  readonly #onObject: ((oid: string, obj: GitObject) => void) | undefined;

  /** `onObject` hears of every object as soon as its id is known (a checkout can start early). */
  constructor(onObject?: (oid: string, obj: GitObject) => void) {
    this.#onObject = onObject;
  }

  push(chunk: Buffer): void {
    if (this.#len + chunk.length > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.#len + chunk.length, Math.floor(this.#buf.length * 1.5)));
      this.#buf.copy(grown, 0, 0, this.#len);
      this.#buf = grown;
    }
    chunk.copy(this.#buf, this.#len);
    this.#len += chunk.length;
    // Everything but the last 20 bytes (which may be the trailer) is hashed now.
    if (this.#len - 20 > this.#hashed) {
      this.#hash.update(this.#buf.subarray(this.#hashed, this.#len - 20));
      this.#hashed = this.#len - 20;
    }
    this.#parse(false);
  }

  end(): PackIndex {
    const pack = this.#buf.subarray(0, this.#len);
    if (pack.length < 32 || pack.toString('latin1', 0, 4) !== 'PACK') throw new PackError('Not a Git pack: it does not start with "PACK"');
    if (this.#hash.digest('hex') !== pack.toString('hex', pack.length - 20)) {
      throw new PackError('Corrupt pack: its SHA-1 trailer does not match its content (truncated or damaged in transfer)');
    }
    this.#parse(true);
    if (this.#at !== pack.length - 20) throw new PackError(`Corrupt pack: ${pack.length - 20 - this.#at} bytes follow its last object`);
    for (const d of this.#deferred) {
      const obj = this.#resolve(d);
      const oid = oidOf(obj.type, obj.data);
      this.#byOid.set(oid, d);
      this.#onObject?.(oid, obj);
    }
    this.#deferred = [];
    this.#cache = new Map();
    this.#cached = 0;
    // Objects are now read one by one for a checkout, each used once.
    this.#budget = 4 * 1024 * 1024;
    const count = this.#count;
    return {
      count,
      has: (oid) => this.#byOid.has(oid),
      read: (oid) => {
        const off = this.#byOid.get(oid);
        if (off === undefined) throw new PackError(`Object ${oid} is not in the pack`);
        return this.#resolve(off);
      },
    };
  }

  #remember(at: number, obj: GitObject): void {
    if (obj.data.length > this.#budget) return;
    if (this.#cached + obj.data.length > this.#budget) { this.#cache = new Map(); this.#cached = 0; }
    this.#cache.set(at, obj);
    this.#cached += obj.data.length;
  }

  #resolve(at: number, depth = 0): GitObject {
    const hit = this.#cache.get(at);
    if (hit) return hit;
    const e = this.#entries.get(at);
    if (!e) throw new PackError(`Corrupt pack: a delta names a base at offset ${at}, where no object starts`);
    if (depth > 10_000) throw new PackError('Corrupt pack: a delta chain does not end');
    const { data } = inflateAt(this.#buf, e.data, e.size, this.#len);
    let obj: GitObject;
    if (e.kind === OFS_DELTA || e.kind === REF_DELTA) {
      const baseAt = e.kind === OFS_DELTA ? e.baseOffset! : this.#byOid.get(e.baseOid!);
      if (baseAt === undefined) throw new PackError(`Cannot resolve a delta: its base ${e.baseOid} is not in the pack (a thin pack?)`);
      const base = this.#resolve(baseAt, depth + 1);
      obj = { type: base.type, data: applyDelta(base.data, data) };
    } else {
      obj = { type: TYPES[e.kind]!, data };
    }
    this.#remember(at, obj);
    return obj;
  }

  #parse(final: boolean): void {
    const buf = this.#buf;
    if (this.#count < 0) {
      if (this.#len < 12) return;
      if (buf.toString('latin1', 0, 4) !== 'PACK') throw new PackError('Not a Git pack: it does not start with "PACK"');
      const version = buf.readUInt32BE(4);
      if (version !== 2 && version !== 3) throw new PackError(`Unsupported pack version ${version} (expected 2 or 3)`);
      this.#count = buf.readUInt32BE(8);
    }
    const limit = final ? this.#len - 20 : this.#len;
    while (this.#n < this.#count) {
      let at = this.#at;
      if (final ? at >= limit : limit - at < 32) {
        if (final) throw new PackError(`Corrupt pack: it ends after ${this.#n} of ${this.#count} objects`);
        return;
      }
      const start = at;
      let c = buf[at++]!;
      const kind = (c >> 4) & 7;
      let size = c & 15;
      let shift = 4;
      while (c & 0x80) {
        c = buf[at++]!;
        size += (c & 0x7f) * 2 ** shift;
        shift += 7;
      }
      const e: Entry = { kind, size, data: at };
      if (kind === OFS_DELTA) {
        c = buf[at++]!;
        let back = c & 0x7f;
        while (c & 0x80) {
          c = buf[at++]!;
          back = (back + 1) * 128 + (c & 0x7f);
        }
        e.baseOffset = start - back;
      } else if (kind === REF_DELTA) {
        e.baseOid = buf.toString('hex', at, at + 20);
        at += 20;
      } else if (!TYPES[kind]) {
        throw new PackError(`Corrupt pack: unknown object type ${kind} at offset ${start}`);
      }
      // Wait until the whole zlib stream is surely here (or the pack has ended).
      if (!final && limit < at + compressedBound(size)) return;
      e.data = at;
      const { data, used } = inflateAt(buf, at, size, limit);
      this.#entries.set(start, e);
      this.#at = at + used;
      this.#n++;
      if (kind === OFS_DELTA || kind === REF_DELTA) {
        const baseAt = kind === OFS_DELTA ? e.baseOffset! : this.#byOid.get(e.baseOid!);
        if (baseAt === undefined) { this.#deferred.push(start); continue; }
        const base = this.#resolve(baseAt);
        const obj = { type: base.type, data: applyDelta(base.data, data) };
        this.#remember(start, obj);
        const oid = oidOf(obj.type, obj.data);
        this.#byOid.set(oid, start);
        this.#onObject?.(oid, obj);
      } else {
        const oid = oidOf(TYPES[kind]!, data);
        this.#byOid.set(oid, start);
        this.#onObject?.(oid, { type: TYPES[kind]!, data });
      }
    }
  }
}

export interface TreeEntry { mode: string; name: string; oid: string }

/** The entries of a tree object. */
export function parseTree(data: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    const nul = data.indexOf(0, sp + 1);
    if (sp < 0 || nul < 0 || nul + 21 > data.length) throw new PackError('Corrupt tree object');
    out.push({ mode: data.toString('latin1', i, sp), name: data.toString('utf8', sp + 1, nul), oid: data.toString('hex', nul + 1, nul + 21) });
    i = nul + 21;
  }
  return out;
}

export interface CommitInfo { tree: string; parents: string[]; author: string | null; message: string }

/** The parts of a commit object a run records. */
export function parseCommit(data: Buffer): CommitInfo {
  const text = data.toString('utf8');
  const split = text.indexOf('\n\n');
  const head = split < 0 ? text : text.slice(0, split);
  const message = split < 0 ? '' : text.slice(split + 2);
  let tree = '';
  const parents: string[] = [];
  let author: string | null = null;
  for (const line of head.split('\n')) {
    if (line.startsWith('tree ')) tree = line.slice(5);
    else if (line.startsWith('parent ')) parents.push(line.slice(7));
    else if (line.startsWith('author ')) {
      // "author Name <email> 1700000000 +0000": drop the time.
      const m = /^author (.*?) (\d+) ([+-]\d{4})$/.exec(line);
      author = (m ? m[1]! : line.slice(7)).trim();
    }
  }
  if (!/^[0-9a-f]{40}$/.test(tree)) throw new PackError('Corrupt commit object: no tree');
  return { tree, parents, author, message };
}
