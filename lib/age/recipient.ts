// What a recipient and an identity are to the file format: a recipient wraps
// the file key into stanzas, an identity recognises its stanzas and unwraps.
// `unwrap` returns null for "not mine / wrong key" and throws AgeError
// (AGE_HEADER_INVALID) for a stanza of its type that is malformed.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Stanza } from './format.ts';
import { AgeError } from './errors.ts';

export interface Recipient {
  wrap(fileKey: Uint8Array): Stanza[];
}

export interface Identity {
  unwrap(stanzas: Stanza[]): Uint8Array | null;
}

export const FILE_KEY_SIZE = 16;
const ZERO_NONCE = Buffer.alloc(12);

/** ChaCha20-Poly1305 with the all-zero nonce, as the native stanzas use it. */
export function aeadWrap(key: Uint8Array, fileKey: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: 16 });
  return Buffer.concat([c.update(fileKey), c.final(), c.getAuthTag()]);
}

/** Opens a wrapped file key; null when it does not authenticate (wrong key). */
export function aeadUnwrap(key: Uint8Array, body: Uint8Array, type: string): Buffer | null {
  // Length is checked before decrypting to avoid partitioning oracles (spec).
  if (body.length !== FILE_KEY_SIZE + 16) {
    throw new AgeError('AGE_HEADER_INVALID', `Invalid age header: the ${type} stanza body must be ${FILE_KEY_SIZE + 16} bytes, not ${body.length}`);
  }
  const d = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: 16 });
  d.setAuthTag(body.subarray(FILE_KEY_SIZE));
  const out = d.update(body.subarray(0, FILE_KEY_SIZE));
  try {
    d.final();
  } catch {
    return null;
  }
  return out;
}
