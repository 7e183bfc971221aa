// The few bytes of the tar format the backup writer needs: a ustar header for
// a regular file, the padding after its data and the two zero blocks that end
// an archive. Written by hand because the backup holds hundreds of thousands
// of small files, and a header here costs a Buffer, where a general tar
// library costs several stream hand-offs per entry. GNU tar, bsdtar and
// tar-stream read the result (the tests check GNU tar).
const BLOCK = 512;

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'ascii');
}

/** Splits a long name into ustar's prefix (155) and name (100) at a slash. */
function splitName(name: string): { prefix: string; name: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name };
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return { prefix, name: rest };
  }
  throw new Error(`Name too long for a tar header: ${name}`);
}

/** A ustar header for a regular file (sizes from 8 GiB up in GNU's base-256 form). */
export function fileHeader(name: string, size: number, mode: number, mtime: Date): Buffer {
  const h = Buffer.alloc(BLOCK);
  const n = splitName(name);
  h.write(n.name, 0, 100, 'utf8');
  octal(h, 100, 8, mode & 0o7777);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  if (size < 8 ** 11) octal(h, 124, 12, size);
  else {
    h[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) { h[i] = Number(v & 0xffn); v >>= 8n; }
  }
  octal(h, 136, 12, Math.floor(mtime.getTime() / 1000));
  h.write('        ', 148, 8, 'ascii');
  h.write('0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(n.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

const ZEROS = Buffer.alloc(BLOCK * 2);

/** The zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? ZEROS.subarray(0, 0) : ZEROS.subarray(0, BLOCK - r);
}

/** Two zero blocks: the end of the archive. */
export const END_OF_ARCHIVE = ZEROS;

export interface TarEntry { name: string; size: number; type: string }

/** What a tar reader hands each part to; a returned promise is awaited before reading on. */
export interface TarHandlers {
  entry(e: TarEntry): void | Promise<void>;
  data(chunk: Buffer): void | Promise<void>;
  /** The current entry's data is complete. */
  entryEnd(): void | Promise<void>;
}

function readOctal(h: Buffer, off: number, len: number): number {
  if ((h[off]! & 0x80) !== 0) {
    // GNU base-256: big-endian after the marker bit.
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + h[i]!;
    return v;
  }
  const s = h.toString('ascii', off, off + len).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]*$/.test(s)) throw new Error('a tar header field is not octal');
  return s === '' ? 0 : parseInt(s, 8);
}

function cString(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

const TYPES: Record<string, string> = { '0': 'file', '\0': 'file', '1': 'link', '2': 'symlink', '3': 'character-device', '4': 'block-device', '5': 'directory', '6': 'fifo', 'x': 'pax-header', 'g': 'pax-global-header', 'L': 'gnu-long-path', 'K': 'gnu-long-link-path' };

/**
 * Reads a tar stream, calling `h` for each entry, its data and its end, in
 * order. Checks every header's checksum; throws when the stream ends in the
 * middle of an entry or before the two zero blocks that close an archive.
 */
export async function readTar(input: AsyncIterable<unknown>, h: TarHandlers): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  // State: reading a header, or `left` data bytes then `pad` padding bytes of the current entry.
  let left = 0;
  let pad = 0;
  let inEntry = false;
  let ended = false;
  for await (const raw of input) {
    let chunk = raw as Buffer;
    if (ended) continue;
    while (chunk.length > 0) {
      if (inEntry) {
        if (left > 0) {
          const n = Math.min(left, chunk.length);
          const r = h.data(chunk.subarray(0, n));
          if (r) await r;
          left -= n;
          chunk = chunk.subarray(n);
          if (left > 0) break;
        }
        if (pad > 0) {
          const n = Math.min(pad, chunk.length);
          pad -= n;
          chunk = chunk.subarray(n);
          if (pad > 0) break;
        }
        inEntry = false;
        const r = h.entryEnd();
        if (r) await r;
        continue;
      }
      // A header: gather 512 bytes.
      const need = BLOCK - pending.length;
      if (chunk.length < need) { pending = Buffer.concat([pending, chunk]); break; }
      const block = pending.length > 0 ? Buffer.concat([pending, chunk.subarray(0, need)]) : chunk.subarray(0, BLOCK);
      pending = Buffer.alloc(0);
      chunk = chunk.subarray(need);
      if (block.every((b) => b === 0)) { ended = true; break; }
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
      if (readOctal(block, 148, 8) !== sum) throw new Error('a tar header checksum does not match');
      const magic = block.toString('ascii', 257, 262);
      const prefix = magic === 'ustar' ? cString(block, 345, 155) : '';
      const base = cString(block, 0, 100);
      const name = prefix ? `${prefix}/${base}` : base;
      const size = readOctal(block, 124, 12);
      const type = TYPES[String.fromCharCode(block[156]!)] ?? 'unknown';
      left = size;
      pad = (BLOCK - (size % BLOCK)) % BLOCK;
      inEntry = true;
      const r = h.entry({ name, size, type });
      if (r) await r;
      if (left === 0 && pad === 0) {
        inEntry = false;
        const e = h.entryEnd();
        if (e) await e;
      }
    }
  }
  if (!ended) throw new Error(inEntry ? 'the archive ends in the middle of an entry' : 'the archive ends without its closing blocks');
}
