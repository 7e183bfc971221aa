// The forms a secret takes when a tool re-encodes it: as written, standard
// base64 at the three byte alignments (the part of the encoding that does not
// depend on neighbouring bytes, so a secret inside a larger base64 blob is
// caught too), JSON string escaping, URL escaping, and for multi-line values
// each line on its own as well as the whole.
import { Buffer } from 'node:buffer';

const enc = new TextEncoder();

/** The byte strings to look for when masking `value`: the value and its encoded forms. */
export function maskForms(value: string): string[] {
  const forms = new Set<string>([value]);
  const addEncodings = (v: string, base64: boolean): void => {
    forms.add(v);
    if (base64) for (const b of base64Forms(enc.encode(v))) forms.add(b);
    const json = JSON.stringify(v).slice(1, -1);
    forms.add(json);
    // Some encoders also escape '/' and everything outside ASCII.
    forms.add(json.replace(/\//g, '\\/').replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    const url = encodeURIComponent(v);
    forms.add(url);
    forms.add(url.replace(/%[0-9A-F]{2}/g, (p) => p.toLowerCase()));
    forms.add(url.replace(/%20/g, '+')); // form encoding
  };
  addEncodings(value, true);
  // Lines on their own, as printed or escaped; a tool that base64-encodes a
  // multi-line value encodes it whole, which the forms above cover.
  if (/[\r\n]/.test(value)) {
    for (const line of value.split(/\r?\n|\r/)) if (line !== '') addEncodings(line, false);
  }
  return [...forms].filter((f) => f !== '');
}

/**
 * The part of the standard base64 encoding of `bytes` that is the same
 * whatever bytes surround it, for each of the three offsets the value can sit
 * at inside a larger encoded stream (padding never included).
 */
export function base64Forms(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const padded = new Uint8Array(k + bytes.length);
    padded.set(bytes, k);
    const b64 = Buffer.from(padded.buffer, padded.byteOffset, padded.length).toString('base64');
    // Character j covers bits [6j, 6j+6); keep those wholly inside the value.
    const from = Math.ceil((8 * k) / 6);
    const to = Math.floor((8 * (k + bytes.length)) / 6);
    if (to > from) out.push(b64.slice(from, to));
  }
  return out;
}
