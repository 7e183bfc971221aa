// The age v1 header: version line, recipient stanzas, MAC line. Parsing is
// strict (canonical base64, 64-column body lines, LF only, VCHAR arguments)
// because a lenient parser would make files malleable. Pure functions only.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { AgeError } from './errors.ts';
import { decodeRaw, encodeRaw } from './base64.ts';

export interface Stanza {
  type: string;
  args: string[];
  body: Uint8Array;
}

export interface Header {
  stanzas: Stanza[];
  /** The header bytes the MAC covers: everything up to and including "---". */
  macInput: Buffer;
  mac: Buffer;
  /** Total header length including the MAC line's LF; the payload starts here. */
  length: number;
}

export const VERSION_LINE = 'age-encryption.org/v1';
const VERSION_PREFIX = 'age-encryption.org/';
const COLUMNS = 64;
/** A header larger than this is refused rather than buffered without end. */
export const MAX_HEADER_BYTES = 1 << 20;

const bad = (detail: string): AgeError => new AgeError('AGE_HEADER_INVALID', `Invalid age header: ${detail}`);

function isArgument(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Parses a header from the start of `buf`. Returns null when `buf` holds only
 * a prefix of a header that may still be valid and more bytes are needed;
 * with `atEnd` the input is complete and a partial header is an error.
 */
export function parseHeader(buf: Buffer, atEnd: boolean): Header | null {
  let pos = 0;
  // Each line is returned without its LF; undefined means "need more input".
  const nextLine = (): string | undefined => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) {
      if (buf.length > MAX_HEADER_BYTES) throw bad(`header is larger than ${MAX_HEADER_BYTES} bytes`);
      if (atEnd) throw bad(buf.length === 0 ? 'the file is empty' : 'the file ends inside the header');
      return undefined;
    }
    // Also when the whole header arrived in one buffer: the limit must not
    // depend on how the input was split (it bounds stanza count and work).
    if (nl >= MAX_HEADER_BYTES) throw bad(`header is larger than ${MAX_HEADER_BYTES} bytes`);
    const line = buf.toString('latin1', pos, nl);
    pos = nl + 1;
    return line;
  };

  const version = nextLine();
  if (version === undefined) {
    // Fail fast on input that cannot become a header (e.g. plaintext by mistake).
    const head = buf.toString('latin1', 0, Math.min(buf.length, VERSION_PREFIX.length));
    if (!VERSION_PREFIX.startsWith(head)) throw bad('it does not start with "age-encryption.org/v1"');
    return null;
  }
  if (version !== VERSION_LINE) {
    if (version.endsWith('\r')) {
      // A binary age header is LF-only; CRLF means a text-mode transfer or an
      // editor rewrote the file, and that damage is what the user must hear about.
      throw bad('its lines end in CRLF (\\r\\n), but a binary age file uses LF only: the file was converted as text (a Windows editor, git autocrlf, FTP ASCII mode); copy the original bytes, or use armored (-a) files for text channels');
    }
    if (version.startsWith(VERSION_PREFIX)) {
      throw new AgeError('AGE_VERSION_UNSUPPORTED', `Unsupported age format version: "${version.slice(0, 64)}" (only v1 is supported)`);
    }
    throw bad('it does not start with "age-encryption.org/v1"');
  }

  const stanzas: Stanza[] = [];
  for (;;) {
    const lineStart = pos;
    const line = nextLine();
    if (line === undefined) return null;
    if (line.startsWith('-> ')) {
      const args = line.slice(3).split(' ');
      if (!args.every(isArgument)) throw bad(`stanza ${stanzas.length + 1} has an empty or non-printable argument`);
      const lines: string[] = [];
      for (;;) {
        const body = nextLine();
        if (body === undefined) return null;
        if (body.length > COLUMNS) throw bad(`stanza ${stanzas.length + 1} has a body line longer than ${COLUMNS} columns`);
        lines.push(body);
        if (body.length < COLUMNS) break;
      }
      const body = decodeRaw(lines.join(''));
      if (body === null) throw bad(`stanza ${stanzas.length + 1} body is not canonical unpadded base64`);
      stanzas.push({ type: args[0]!, args: args.slice(1), body });
    } else if (line.startsWith('---')) {
      if (stanzas.length === 0) throw bad('it has no recipient stanzas');
      if (!line.startsWith('--- ')) throw bad('the MAC line must be "--- " followed by the MAC');
      const mac = decodeRaw(line.slice(4));
      if (mac === null || mac.length !== 32) throw bad('the MAC is not 32 bytes of canonical unpadded base64');
      return { stanzas, macInput: buf.subarray(0, lineStart + 3), mac, length: pos };
    } else {
      throw bad('expected a stanza ("-> ") or the MAC line ("--- ")');
    }
  }
}

/** Encodes everything the MAC covers: version, stanzas and the "---" mark. */
export function encodeHeaderWithoutMac(stanzas: Stanza[]): string {
  let out = VERSION_LINE + '\n';
  for (const s of stanzas) {
    const args = [s.type, ...s.args];
    if (!args.every(isArgument)) throw new AgeError('AGE_STATE_ERROR', `Cannot encode stanza "${s.type}": arguments must be non-empty printable ASCII`);
    out += '-> ' + args.join(' ') + '\n';
    const b64 = encodeRaw(s.body);
    // Full 64-column lines, then a final shorter (possibly empty) line.
    let i = 0;
    for (; i + COLUMNS <= b64.length; i += COLUMNS) out += b64.slice(i, i + COLUMNS) + '\n';
    out += b64.slice(i) + '\n';
  }
  return out + '---';
}

export function headerMac(fileKey: Uint8Array, macInput: Uint8Array): Buffer {
  const key = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
  return createHmac('sha256', key).update(macInput).digest();
}

export function encodeHeader(fileKey: Uint8Array, stanzas: Stanza[]): Buffer {
  const head = Buffer.from(encodeHeaderWithoutMac(stanzas), 'latin1');
  const mac = headerMac(fileKey, head);
  return Buffer.concat([head, Buffer.from(' ' + encodeRaw(mac) + '\n', 'latin1')]);
}

export function verifyHeaderMac(fileKey: Uint8Array, header: Header): void {
  if (!timingSafeEqual(headerMac(fileKey, header.macInput), header.mac)) {
    throw new AgeError('AGE_MAC_MISMATCH', 'Invalid age header: the header MAC does not match (the header was modified or is corrupt)');
  }
}
