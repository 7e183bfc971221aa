// Native X25519 recipients (age1…) and identities (AGE-SECRET-KEY-1…).
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { AgeError } from './errors.ts';
import { decodeRaw, encodeRaw } from './base64.ts';
import * as bech32 from './bech32.ts';
import { aeadUnwrap, aeadWrap, type Identity, type Recipient } from './recipient.ts';
import type { Stanza } from './format.ts';

const INFO = 'age-encryption.org/v1/X25519';
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const privateFromRaw = (raw: Uint8Array): KeyObject => createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
const publicFromRaw = (raw: Uint8Array): KeyObject => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
const rawPublic = (k: KeyObject): Buffer => Buffer.from(k.export({ format: 'jwk' }).x!, 'base64url');

function sharedSecret(priv: KeyObject, peer: Uint8Array): Buffer {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: priv, publicKey: publicFromRaw(peer) });
  } catch (e) {
    // OpenSSL refuses an all-zero result (low-order point) itself.
    throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: the X25519 share is a low-order point', { cause: e });
  }
  if (shared.every((b) => b === 0)) throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: the X25519 share is a low-order point');
  return shared;
}

function wrapKey(shared: Uint8Array, share: Uint8Array, recipient: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([share, recipient]), INFO, 32));
}

export function x25519Recipient(age1: string): Recipient {
  const d = bech32.decode(age1.trim());
  if (!d || d.hrp !== 'age' || d.data.length !== 32 || age1.trim() !== age1.trim().toLowerCase()) {
    throw new AgeError('AGE_KEY_INVALID', 'Invalid X25519 recipient: expected an "age1…" public key as age-keygen prints it');
  }
  const pub = d.data;
  publicFromRaw(pub);
  return {
    wrap(fileKey) {
      const eph = privateFromRaw(randomBytes(32));
      const share = rawPublic(createPublicKey(eph));
      const key = wrapKey(sharedSecret(eph, pub), share, pub);
      return [{ type: 'X25519', args: [encodeRaw(share)], body: aeadWrap(key, fileKey) }];
    },
  };
}

export function x25519Identity(secret: string): Identity {
  const d = bech32.decode(secret.trim());
  if (!d || d.hrp !== 'age-secret-key-' || d.data.length !== 32) {
    throw new AgeError('AGE_KEY_INVALID', 'Invalid X25519 identity: expected an "AGE-SECRET-KEY-1…" line as age-keygen writes it');
  }
  const priv = privateFromRaw(d.data);
  const ours = rawPublic(createPublicKey(priv));
  return {
    unwrap(stanzas: Stanza[]) {
      for (const s of stanzas) {
        if (s.type !== 'X25519') continue;
        if (s.args.length !== 1) throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: an X25519 stanza must have exactly one argument');
        const share = decodeRaw(s.args[0]!);
        if (!share || share.length !== 32) throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: the X25519 share is not 32 bytes of canonical base64');
        if (s.body.length !== 32) throw new AgeError('AGE_HEADER_INVALID', `Invalid age header: the X25519 stanza body must be 32 bytes, not ${s.body.length}`);
        const key = wrapKey(sharedSecret(priv, share), share, ours);
        const fileKey = aeadUnwrap(key, s.body, 'X25519');
        if (fileKey) return fileKey;
      }
      return null;
    },
  };
}

export function generateX25519Identity(): { identity: string; recipient: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  return { identity: bech32.encode('AGE-SECRET-KEY-', d, true), recipient: bech32.encode('age', rawPublic(publicKey)) };
}

/** The age1… recipient for an AGE-SECRET-KEY-1… identity (like `age-keygen -y`). */
export function x25519RecipientOf(secret: string): string {
  const d = bech32.decode(secret.trim());
  if (!d || d.hrp !== 'age-secret-key-' || d.data.length !== 32) throw new AgeError('AGE_KEY_INVALID', 'Invalid X25519 identity: expected an "AGE-SECRET-KEY-1…" line');
  return bech32.encode('age', rawPublic(createPublicKey(privateFromRaw(d.data))));
}
