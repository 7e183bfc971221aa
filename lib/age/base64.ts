// Strict base64 as the age spec wants it: standard alphabet, canonical
// (unused trailing bits zero), and either unpadded (header) or padded (armor).
// Node's own decoder is lenient, so decode and re-encode to prove canonicity.

const RAW = /^[A-Za-z0-9+/]*$/;
const PADDED = /^[A-Za-z0-9+/]*={0,2}$/;

export function encodeRaw(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64').replace(/=+$/, '');
}

/** Unpadded canonical base64, or null if `s` is anything else. */
export function decodeRaw(s: string): Buffer | null {
  if (!RAW.test(s) || s.length % 4 === 1) return null;
  const b = Buffer.from(s, 'base64');
  return encodeRaw(b) === s ? b : null;
}

/** Padded canonical base64 (armor), or null. */
export function decodePadded(s: string): Buffer | null {
  if (!PADDED.test(s) || s.length % 4 !== 0) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}
