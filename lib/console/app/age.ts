// Sealing in the browser: the age v1 format (age-encryption.org/v1) with
// `ssh-rsa` recipient stanzas, byte for byte what lib/age seals on the CLI, so
// `age -d -i spacelift.key` and the launcher open it. RSA-OAEP-SHA256, HKDF and
// HMAC come from WebCrypto; ChaCha20-Poly1305 (which WebCrypto lacks) from
// @noble/ciphers. The plaintext never leaves this page unsealed.
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';

const subtle = (): SubtleCrypto => {
  if (!globalThis.crypto?.subtle) throw new Error('This browser cannot seal: WebCrypto needs a secure (https) page');
  return globalThis.crypto.subtle;
};
const te = new TextEncoder();
/** A copy in a plain ArrayBuffer: what WebCrypto's typings accept in every environment. */
const ab = (u: Uint8Array): ArrayBuffer => u.slice().buffer as ArrayBuffer;
const CHUNK = 64 * 1024;
const LABEL = te.encode('age-encryption.org/v1/ssh-rsa');

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Standard base64 without padding, as age writes stanza bodies and the MAC. */
export function b64raw(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return btoa(s).replace(/=+$/, '');
}

export function b64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromB64url(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function pemBody(pem: string): Uint8Array {
  const m = /-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/.exec(pem);
  if (!m) throw new Error('The pool key is not a PEM public key ("-----BEGIN PUBLIC KEY-----")');
  return Uint8Array.from(atob(m[1]!.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
}

function sshString(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, 4);
  return out;
}

function mpint(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const t = v.subarray(i);
  return sshString(t[0]! & 0x80 ? concat([new Uint8Array([0]), t]) : t);
}

/** The stanza tag: the first 4 bytes of SHA-256 of the SSH wire-format key. */
async function sshTag(key: CryptoKey): Promise<string> {
  const jwk = await subtle().exportKey('jwk', key);
  const wire = concat([sshString(te.encode('ssh-rsa')), mpint(fromB64url(jwk.e!)), mpint(fromB64url(jwk.n!))]);
  const digest = new Uint8Array(await subtle().digest('SHA-256', ab(wire)));
  return b64raw(digest.subarray(0, 4));
}

async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string): Promise<Uint8Array> {
  const k = await subtle().importKey('raw', ab(ikm), 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle().deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: ab(salt), info: te.encode(info) }, k, 256));
}

async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await subtle().importKey('raw', ab(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle().sign('HMAC', k, ab(data)));
}

function wrapLines(b: string): string {
  let out = '';
  let i = 0;
  for (; i + 64 <= b.length; i += 64) out += b.slice(i, i + 64) + '\n';
  return out + b.slice(i) + '\n';
}

/**
 * The payload STREAM of an age file: 64 KiB chunks, each sealed with nonce =
 * 11-byte big-endian counter || last flag. Only the final chunk carries the
 * flag, so a full chunk is held back until more plaintext (or the end) shows
 * whether it is the last one. Memory stays at one chunk for any size.
 */
export class PayloadStream {
  private readonly buf = new Uint8Array(CHUNK);
  private fill = 0;
  private counter = 0;
  private readonly key: Uint8Array;
  constructor(key: Uint8Array) { this.key = key; }

  private sealChunk(last: boolean): Uint8Array {
    const n = new Uint8Array(12);
    const dv = new DataView(n.buffer);
    dv.setUint32(3, Math.floor(this.counter / 2 ** 32));
    dv.setUint32(7, this.counter >>> 0);
    n[11] = last ? 1 : 0;
    this.counter++;
    const out = chacha20poly1305(this.key, n).encrypt(this.buf.subarray(0, this.fill));
    this.fill = 0;
    return out;
  }

  /** Takes more plaintext; returns the sealed chunks it completed. */
  write(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let o = 0;
    while (o < data.length) {
      if (this.fill === CHUNK) out.push(this.sealChunk(false));
      const n = Math.min(CHUNK - this.fill, data.length - o);
      this.buf.set(data.subarray(o, o + n), this.fill);
      this.fill += n;
      o += n;
    }
    return out;
  }

  /** The last chunk (empty only when the whole plaintext was). */
  end(): Uint8Array { return this.sealChunk(true); }
}

/** Starts an age file to every public key (PEM): its header (with the payload nonce) and the payload stream. */
export async function startSeal(publicKeyPems: string[]): Promise<{ head: Uint8Array; payload: PayloadStream; keys: number }> {
  if (publicKeyPems.length === 0) throw new Error('Cannot seal: the pool has no active key');
  const fileKey = crypto.getRandomValues(new Uint8Array(16));
  let header = 'age-encryption.org/v1\n';
  for (const pem of publicKeyPems) {
    const key = await subtle().importKey('spki', ab(pemBody(pem)), { name: 'RSA-OAEP', hash: 'SHA-256' }, true, ['encrypt']);
    const bits = (key.algorithm as CryptoKey['algorithm'] & { modulusLength: number }).modulusLength;
    if (bits < 2048) throw new Error(`Cannot seal to a ${bits}-bit RSA key: at least 2048 bits are required`);
    const body = new Uint8Array(await subtle().encrypt({ name: 'RSA-OAEP', label: LABEL }, key, fileKey));
    header += `-> ssh-rsa ${await sshTag(key)}\n` + wrapLines(b64raw(body));
  }
  header += '---';
  const mac = await hmac(await hkdf(fileKey, new Uint8Array(0), 'header'), te.encode(header));
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const payload = new PayloadStream(await hkdf(fileKey, nonce, 'payload'));
  return { head: concat([te.encode(`${header} ${b64raw(mac)}\n`), nonce]), payload, keys: publicKeyPems.length };
}

/** Seals `plain` to every public key (PEM); returns the age file's bytes. */
export async function seal(plain: Uint8Array, publicKeyPems: string[]): Promise<Uint8Array> {
  const { head, payload } = await startSeal(publicKeyPems);
  return concat([head, ...payload.write(plain), payload.end()]);
}

/** A stack's secret environment as the API's `secretEnv`: base64 of an age file holding {NAME: VALUE}. */
export async function sealSecretEnv(secrets: Record<string, string>, publicKeyPems: string[]): Promise<string> {
  return b64(await seal(te.encode(JSON.stringify(secrets)), publicKeyPems));
}

/** Any text sealed the same way (a repository credential `{"username", "password"}`), base64. */
export async function sealText(text: string, publicKeyPems: string[]): Promise<string> {
  return b64(await seal(te.encode(text), publicKeyPems));
}
