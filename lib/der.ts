// A small strict DER reader (definite lengths, minimal encodings, single-byte
// tags), for data that comes from users and must fail with a clear message:
// CSRs (lib/pki/csr.ts) and pool keys (lib/keys.ts, which reads leniently:
// `minimal: false`). Errors are DerError with a sentence that completes
// "it …" ("it is truncated: …"); callers wrap them in their own error.

export interface Tlv { tag: number; start: number; headerLength: number; end: number }

export class DerError extends Error {}

export const SEQUENCE = 0x30;
export const SET = 0x31;
export const INTEGER = 0x02;
export const BIT_STRING = 0x03;
export const OCTET_STRING = 0x04;
export const OID = 0x06;

/** One DER TLV at `pos` in `buf` (definite lengths, minimal encodings only). */
export function readTlv(buf: Buffer, pos: number, limit: number, opts: { minimal?: boolean } = {}): Tlv {
  if (pos + 2 > limit) throw new DerError('it ends in the middle of a DER element');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('it uses a multi-byte DER tag');
  let len = buf[pos + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('it uses an indefinite length, which DER forbids');
    if (n > 4) throw new DerError('it has a DER length that is too large');
    if (pos + 2 + n > limit) throw new DerError('it ends in the middle of a DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i]!;
    if ((opts.minimal ?? true) && (buf[pos + 2]! === 0 || len < 0x80)) throw new DerError('it has a non-minimal DER length');
    header += n;
  }
  const end = pos + header + len;
  if (end > limit) throw new DerError('it is truncated: a DER element runs past its end');
  return { tag, start: pos, headerLength: header, end };
}

/** The children of a constructed element. */
export function children(buf: Buffer, parent: Tlv, opts: { minimal?: boolean } = {}): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.start + parent.headerLength; p < parent.end;) {
    const t = readTlv(buf, p, parent.end, opts);
    out.push(t);
    p = t.end;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new DerError(`its ${what} is missing or malformed`);
  return t;
}

export const content = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start + t.headerLength, t.end);
export const whole = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start, t.end);

export function oidToString(b: Buffer): string {
  if (b.length === 0) throw new DerError('it has an empty object identifier');
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    if (v === 0 && b[i] === 0x80) throw new DerError('it has a non-minimal object identifier');
    v = v * 128 + (b[i]! & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) throw new DerError('it has an object identifier component that is too large');
    if (!(b[i]! & 0x80)) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    } else if (i === b.length - 1) throw new DerError('it has a truncated object identifier');
  }
  return parts.join('.');
}
