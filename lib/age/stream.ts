// The age payload: ChaCha20-Poly1305 in the STREAM construction. Plaintext is
// cut into 64 KiB chunks; chunk i is sealed under the nonce
// (11-byte big-endian i || last-chunk flag). These are pure chunk operations;
// seal.ts and open.ts drive them from streams.
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { AgeError } from './errors.ts';

export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
export const ENC_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
export const NONCE_SIZE = 16;

export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 88-bit counter; 2^53 chunks (512 EiB) is beyond any file we will see.
  n.writeUIntBE(Math.floor(counter / 2 ** 32), 3, 4);
  n.writeUInt32BE(counter >>> 0, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** Seals one chunk; returns ciphertext and tag as two buffers (no copy). */
export function sealChunk(key: Buffer, counter: number, plain: Uint8Array, last: boolean): [Buffer, Buffer] {
  const c = createCipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG_SIZE });
  const ct = c.update(plain);
  c.final();
  return [ct, c.getAuthTag()];
}

/** Opens one chunk, or returns null if it does not authenticate. */
export function openChunk(key: Buffer, counter: number, enc: Buffer, last: boolean): Buffer | null {
  if (enc.length < TAG_SIZE) return null;
  const d = createDecipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG_SIZE });
  d.setAuthTag(enc.subarray(enc.length - TAG_SIZE));
  const pt = d.update(enc.subarray(0, enc.length - TAG_SIZE));
  try {
    d.final();
  } catch {
    return null;
  }
  return pt;
}

/**
 * The reading side of STREAM as a state machine over whole encrypted chunks.
 * The driver calls `next(enc, more)` with ENC_CHUNK_SIZE bytes while more
 * input follows, and once with the remainder (≤ ENC_CHUNK_SIZE) at the end.
 * Every plaintext it returns has authenticated; `release` is called before a
 * failure with plaintext that authenticated on its own (the same bytes the
 * reference implementation releases) so callers can choose to keep it.
 */
export class PayloadOpener {
  #key: Buffer;
  #counter = 0;
  #done = false;
  constructor(key: Buffer, counter = 0) {
    this.#key = key;
    this.#counter = counter;
  }
  get key(): Buffer {
    return this.#key;
  }
  get done(): boolean {
    return this.#done;
  }
  get chunks(): number {
    return this.#counter;
  }

  next(enc: Buffer, more: boolean, release: (plain: Buffer) => void): Buffer {
    const at = `chunk ${this.#counter + 1}`;
    if (this.#done) throw new AgeError('AGE_TRAILING_DATA', 'Invalid age payload: data follows the final chunk');
    if (more) {
      const plain = openChunk(this.#key, this.#counter, enc, false);
      if (plain) {
        this.#counter++;
        return plain;
      }
      const final = openChunk(this.#key, this.#counter, enc, true);
      if (final) {
        release(final);
        this.#done = true;
        throw new AgeError('AGE_TRAILING_DATA', `Invalid age payload: data follows the final chunk (${at})`);
      }
      throw new AgeError('AGE_PAYLOAD_INVALID', `Invalid age payload: ${at} does not authenticate (the file was modified, reordered or corrupted)`);
    }
    if (enc.length === 0) {
      throw new AgeError('AGE_PAYLOAD_TRUNCATED', this.#counter === 0
        ? 'Invalid age payload: the payload has no chunks (the file is truncated)'
        : 'Invalid age payload: the file ends without a final chunk (it is truncated)');
    }
    if (enc.length < TAG_SIZE) {
      throw new AgeError('AGE_PAYLOAD_TRUNCATED', `Invalid age payload: ${at} is shorter than its authentication tag (the file is truncated)`);
    }
    const final = openChunk(this.#key, this.#counter, enc, true);
    if (final) {
      if (final.length === 0 && this.#counter > 0) {
        throw new AgeError('AGE_PAYLOAD_INVALID', `Invalid age payload: the final chunk is empty, which only an empty file may have (${at})`);
      }
      this.#counter++;
      this.#done = true;
      return final;
    }
    const plain = enc.length === ENC_CHUNK_SIZE ? openChunk(this.#key, this.#counter, enc, false) : null;
    if (plain) {
      release(plain);
      this.#counter++;
      throw new AgeError('AGE_PAYLOAD_TRUNCATED', 'Invalid age payload: the file ends without a final chunk (it is truncated)');
    }
    throw new AgeError('AGE_PAYLOAD_INVALID', `Invalid age payload: ${at} does not authenticate (the file was modified or truncated)`);
  }
}
