// Writing an age file: header for the recipients, 16-byte payload nonce, then
// the plaintext in sealed 64 KiB chunks. `Sealer` is the pure core (bytes in,
// bytes out through `emit`); createSealStream wraps it in a Transform so
// backpressure keeps memory constant for any size.
import { randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import { AgeError } from './errors.ts';
import { encodeHeader, type Stanza } from './format.ts';
import { CHUNK_SIZE, NONCE_SIZE, payloadKey, sealChunk } from './stream.ts';
import { FILE_KEY_SIZE, type Recipient } from './recipient.ts';
import { ArmorEncoder } from './armor.ts';
import { GarbageMeter } from './memory.ts';

export type Emit = (b: Buffer) => void;

export class Sealer {
  #key: Buffer;
  #prefix: Buffer | null;
  #staging = Buffer.allocUnsafe(CHUNK_SIZE);
  #fill = 0;
  #counter = 0;

  constructor(recipients: Recipient[]) {
    if (recipients.length === 0) throw new AgeError('AGE_STATE_ERROR', 'Cannot seal: no recipients were given (expected at least one ssh-rsa or age1… recipient)');
    const fileKey = randomBytes(FILE_KEY_SIZE);
    const stanzas: Stanza[] = recipients.flatMap((r) => r.wrap(fileKey));
    if (stanzas.some((s) => s.type === 'scrypt') && stanzas.length > 1) {
      throw new AgeError('AGE_STATE_ERROR', 'Cannot seal: a passphrase (scrypt) recipient must be the only recipient');
    }
    const nonce = randomBytes(NONCE_SIZE);
    this.#key = payloadKey(fileKey, nonce);
    this.#prefix = Buffer.concat([encodeHeader(fileKey, stanzas), nonce]);
  }

  /**
   * Hands the whole payload over to another driver (the parallel file pump)
   * before any plaintext was written: returns the header + nonce to write
   * first and the payload key. The Sealer is then spent.
   */
  detachPayload(): { prefix: Buffer; key: Buffer } | null {
    if (!this.#prefix || this.#counter > 0 || this.#fill > 0) return null;
    const out = { prefix: this.#prefix, key: this.#key };
    this.#prefix = null;
    this.#counter = -1;
    return out;
  }

  #start(emit: Emit): void {
    if (this.#prefix) {
      emit(this.#prefix);
      this.#prefix = null;
    }
  }

  #seal(plain: Uint8Array, last: boolean, emit: Emit): void {
    const [ct, tag] = sealChunk(this.#key, this.#counter++, plain, last);
    emit(ct);
    emit(tag);
  }

  write(chunk: Buffer, emit: Emit): void {
    this.#start(emit);
    let off = 0;
    while (off < chunk.length) {
      // A full chunk is sealed as non-final only once we know more follows,
      // so a payload of exactly k·64 KiB ends in a full final chunk.
      if (this.#fill === CHUNK_SIZE) {
        this.#seal(this.#staging, false, emit);
        this.#fill = 0;
      }
      if (this.#fill === 0 && chunk.length - off > CHUNK_SIZE) {
        this.#seal(chunk.subarray(off, off + CHUNK_SIZE), false, emit);
        off += CHUNK_SIZE;
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.#fill, chunk.length - off);
      chunk.copy(this.#staging, this.#fill, off, off + n);
      this.#fill += n;
      off += n;
    }
  }

  end(emit: Emit): void {
    this.#start(emit);
    this.#seal(this.#staging.subarray(0, this.#fill), true, emit);
    this.#fill = 0;
  }
}

export interface SealOptions {
  /** ASCII-armor the output (PEM "AGE ENCRYPTED FILE"). */
  armor?: boolean;
}

/** A Sealer whose output is ASCII-armored. */
export class ArmoredSealer {
  #sealer: Sealer;
  #armor = new ArmorEncoder();
  constructor(recipients: Recipient[]) {
    this.#sealer = new Sealer(recipients);
  }
  write(chunk: Buffer, emit: Emit): void {
    const parts: Buffer[] = [];
    this.#sealer.write(chunk, (b) => parts.push(b));
    emit(Buffer.from(this.#armor.push(Buffer.concat(parts)), 'latin1'));
  }
  end(emit: Emit): void {
    const parts: Buffer[] = [];
    this.#sealer.end((b) => parts.push(b));
    emit(Buffer.from(this.#armor.push(Buffer.concat(parts)) + this.#armor.end(), 'latin1'));
  }
}

/** Wraps a pure core (Sealer, ArmoredSealer, Opener) as a Transform with backpressure. */
export function transformOf(core: { write(chunk: Buffer, emit: Emit): void; end(emit: Emit): void }): Transform {
  const meter = new GarbageMeter(1 << 20);
  return new Transform({
    // Room for a few chunks each side so reading, crypto and writing overlap.
    readableHighWaterMark: 1 << 20,
    writableHighWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      try {
        core.write(chunk, (b) => { if (b.length) this.push(b); });
        meter.add(chunk.length);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        core.end((b) => { if (b.length) this.push(b); });
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

export function createSealStream(recipients: Recipient[], opts: SealOptions = {}): Transform {
  return transformOf(opts.armor ? new ArmoredSealer(recipients) : new Sealer(recipients));
}
