// Tar headers written in the browser, byte for byte as tar-stream writes them
// for `launcher admin run trigger --workspace` (lib/workspace.ts packDirectory):
// ustar with the name split into prefix/name when it is over 100 bytes, and a
// pax header carrying the path when the name is not ASCII or too long for
// ustar. The launcher reads either with the same checks.

const te = new TextEncoder();
const BLOCK = 512;

export interface TarHeader {
  name: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
  /** Milliseconds since the epoch; the archive keeps whole seconds. */
  mtimeMs: number;
}

function put(buf: Uint8Array, text: string, offset: number): void {
  buf.set(te.encode(text), offset);
}

/** `n` octal digits then a space, or sevens when the value does not fit (as tar-stream does). */
function oct(value: number, n: number): string {
  const s = value.toString(8);
  return s.length > n ? '7'.repeat(n) + ' ' : '0'.repeat(n - s.length) + s + ' ';
}

function putSize(buf: Uint8Array, size: number): void {
  if (size.toString(8).length <= 11) { put(buf, oct(size, 11), 124); return; }
  // Over 8 GiB: base-256, as GNU tar and tar-stream write it.
  buf[124] = 0x80;
  let v = size;
  for (let i = 11; i > 0; i--) { buf[124 + i] = v % 256; v = Math.floor(v / 256); }
}

function checksum(buf: Uint8Array): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += buf[i]!;
  for (let i = 156; i < BLOCK; i++) sum += buf[i]!;
  return sum;
}

const byteLength = (s: string): number => te.encode(s).length;

/** One ustar block, or null when the name cannot be said in ustar (then a pax header carries it). */
function ustar(h: { name: string; mode: number; size: number; mtimeMs: number; typeflag: number }): Uint8Array | null {
  let name = h.name;
  let prefix = '';
  if (byteLength(name) !== name.length) return null;
  while (name.length > 100) {
    const i = name.indexOf('/');
    if (i === -1) return null;
    prefix += prefix ? '/' + name.slice(0, i) : name.slice(0, i);
    name = name.slice(i + 1);
  }
  if (name.length > 100 || prefix.length > 155) return null;
  const buf = new Uint8Array(BLOCK);
  put(buf, name, 0);
  put(buf, oct(h.mode & 0o7777, 6), 100);
  put(buf, oct(0, 6), 108); // uid
  put(buf, oct(0, 6), 116); // gid
  putSize(buf, h.size);
  put(buf, oct(Math.trunc(h.mtimeMs / 1000), 11), 136);
  buf[156] = 0x30 + h.typeflag;
  put(buf, 'ustar\0', 257);
  put(buf, '00', 263);
  put(buf, oct(0, 6), 329); // devmajor
  put(buf, oct(0, 6), 337); // devminor
  if (prefix) put(buf, prefix, 345);
  put(buf, oct(checksum(buf), 6), 148);
  return buf;
}

/** A pax record: "LEN key=value\n", LEN counting itself. */
function paxRecord(text: string): string {
  const len = byteLength(text);
  let digits = Math.floor(Math.log(len) / Math.log(10)) + 1;
  if (len + digits >= Math.pow(10, digits)) digits++;
  return `${len + digits}${text}`;
}

export const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** The header blocks of one entry (one block, or three-plus for a pax path). */
export function headerBlocks(h: TarHeader): Uint8Array {
  const typeflag = h.type === 'directory' ? 5 : 0;
  const plain = ustar({ ...h, typeflag });
  if (plain) return plain;
  const pax = te.encode(paxRecord(` path=${h.name}\n`));
  const paxHead = ustar({ name: 'PaxHeader', mode: h.mode, size: pax.length, mtimeMs: h.mtimeMs, typeflag: 72 })!;
  const real = ustar({ name: 'PaxHeader', mode: h.mode, size: h.size, mtimeMs: h.mtimeMs, typeflag })!;
  const out = new Uint8Array(BLOCK + pax.length + padding(pax.length) + BLOCK);
  out.set(paxHead, 0);
  out.set(pax, BLOCK);
  out.set(real, out.length - BLOCK);
  return out;
}

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = new Uint8Array(2 * BLOCK);
