// Reading an age file. `Opener` is the pure core: it takes input bytes in any
// split, finds the header, unwraps the file key with the first identity that
// matches, checks the header MAC and then opens the payload chunk by chunk,
// emitting each chunk's plaintext only after it authenticated. Input is held
// only up to one header (≤ 1 MiB) or one encrypted chunk, so memory is constant.
import type { Transform } from 'node:stream';
import { AgeError } from './errors.ts';
import { parseHeader, verifyHeaderMac, type Header } from './format.ts';
import { ENC_CHUNK_SIZE, NONCE_SIZE, PayloadOpener, payloadKey } from './stream.ts';
import type { Identity } from './recipient.ts';
import { ArmorDecoder } from './armor.ts';
import { transformOf, type Emit } from './seal.ts';

export interface OpenOptions {
  /** 'auto' (default) detects "-----BEGIN AGE ENCRYPTED FILE-----" after optional whitespace. */
  armor?: boolean | 'auto';
}

function unwrapFileKey(header: Header, identities: Identity[]): Uint8Array {
  const { stanzas } = header;
  if (stanzas.some((s) => s.type === 'scrypt') && stanzas.length !== 1) {
    throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: an scrypt stanza must be the only stanza in the header');
  }
  for (const id of identities) {
    const key = id.unwrap(stanzas);
    if (key) return key;
  }
  const types = [...new Set(stanzas.map((s) => s.type))].join(', ');
  throw new AgeError('AGE_NO_IDENTITY',
    `No identity matches any of the file's ${stanzas.length} recipient stanza${stanzas.length === 1 ? '' : 's'} (${types}): ` +
    `tried ${identities.length} identit${identities.length === 1 ? 'y' : 'ies'}; the file was sealed to other keys`);
}

/** Holds no reference to a chunk passed to write() once it returns. */
export class Opener {
  #identities: Identity[];
  #armorMode: boolean | 'auto';
  #armor: ArmorDecoder | null = null;
  #head: Buffer = Buffer.alloc(0); // header bytes until the payload starts
  #payload: PayloadOpener | null = null;
  #queue: Buffer[] = [];
  #queued = 0;
  #header: Header | null = null;

  constructor(identities: Identity[], opts: OpenOptions = {}) {
    this.#identities = identities;
    this.#armorMode = opts.armor ?? 'auto';
    if (this.#armorMode === true) this.#armor = new ArmorDecoder();
  }

  /**
   * Once the header and nonce are read and nothing was opened yet, hands the
   * payload over to another driver (the parallel file pump): returns the
   * payload key and the payload bytes already received. The Opener is then spent.
   */
  detachPayload(): { key: Buffer; pending: Buffer } | null {
    if (!this.#payload || this.#payload.chunks > 0 || this.#payload.done || this.#armor) return null;
    const pending = this.#take(this.#queued);
    const key = this.#payload.key;
    this.#payload = null;
    this.#identities = [];
    return { key, pending: Buffer.from(pending) };
  }

  /** True once the input was found to be ASCII-armored. */
  get armored(): boolean {
    return this.#armor !== null;
  }

  /** The parsed header, once known (for tools that list stanzas). */
  get header(): Header | null {
    return this.#header;
  }

  write(chunk: Buffer, emit: Emit): void {
    if (this.#armorMode === 'auto') {
      let i = 0;
      while (i < chunk.length && (chunk[i] === 0x20 || chunk[i] === 0x09 || chunk[i] === 0x0a || chunk[i] === 0x0d)) i++;
      if (i === chunk.length) {
        // Only whitespace so far: hold it until the first other byte decides.
        this.#head = Buffer.concat([this.#head, chunk]);
        if (this.#head.length > 4096) this.#decide(false, emit);
        return;
      }
      this.#decide(chunk[i] === 0x2d /* '-' */, emit);
    }
    this.#consume(this.#armor ? this.#armor.push(chunk) : chunk, emit);
  }

  #decide(armored: boolean, emit: Emit): void {
    this.#armorMode = armored;
    if (armored) this.#armor = new ArmorDecoder();
    const held = this.#head;
    this.#head = Buffer.alloc(0);
    if (held.length) this.#consume(this.#armor ? this.#armor.push(held) : held, emit);
  }

  end(emit: Emit): void {
    if (this.#armorMode === 'auto') this.#decide(false, emit);
    if (this.#armor) this.#consume(this.#armor.end(), emit);
    if (!this.#payload) {
      if (!this.#header) this.#fileKey = this.#afterHeader(parseHeader(this.#head, true)!);
      throw new AgeError('AGE_HEADER_INVALID', 'Invalid age file: it ends before the 16-byte payload nonce');
    }
    const rest = this.#take(this.#queued);
    if (this.#payload.done) {
      if (rest.length) throw new AgeError('AGE_TRAILING_DATA', 'Invalid age payload: data follows the final chunk');
      return;
    }
    emit(this.#payload.next(rest, false, emit));
  }

  #afterHeader(header: Header): Buffer {
    this.#header = header;
    const fileKey = unwrapFileKey(header, this.#identities);
    verifyHeaderMac(fileKey, header);
    return Buffer.from(fileKey);
  }

  #consume(bytes: Buffer, emit: Emit): void {
    if (bytes.length === 0) return;
    if (!this.#payload) {
      this.#head = Buffer.concat([this.#head, bytes]); // a copy: callers may reuse their buffers
      const header = this.#header ?? parseHeader(this.#head, false);
      if (!header) return;
      if (!this.#header) this.#fileKey = this.#afterHeader(header);
      if (this.#head.length < header.length + NONCE_SIZE) return;
      const nonce = this.#head.subarray(header.length, header.length + NONCE_SIZE);
      this.#payload = new PayloadOpener(payloadKey(this.#fileKey!, nonce));
      this.#fileKey = null;
      bytes = this.#head.subarray(header.length + NONCE_SIZE);
      this.#head = Buffer.alloc(0);
      if (bytes.length === 0) return;
    }
    if (this.#payload.done) throw new AgeError('AGE_TRAILING_DATA', 'Invalid age payload: data follows the final chunk');
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    // A chunk is known to be non-final only when at least one byte follows it.
    while (this.#queued > ENC_CHUNK_SIZE) {
      emit(this.#payload.next(this.#take(ENC_CHUNK_SIZE), true, emit));
    }
    // Keep our own copy of the (< 1 chunk) remainder so the caller may reuse
    // its input buffer as soon as write() returns.
    if (this.#queued > 0) this.#queue = [Buffer.concat(this.#queue, this.#queued)];
  }

  #fileKey: Buffer | null = null;

  #take(n: number): Buffer {
    const first = this.#queue[0];
    let out: Buffer;
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#queue.shift();
      else this.#queue[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const b = this.#queue[0]!;
        const k = Math.min(b.length, n - filled);
        b.copy(out, filled, 0, k);
        filled += k;
        if (k === b.length) this.#queue.shift();
        else this.#queue[0] = b.subarray(k);
      }
    }
    this.#queued -= n;
    return out;
  }
}

export function createOpenStream(identities: Identity[], opts: OpenOptions = {}): Transform {
  return transformOf(new Opener(identities, opts));
}
