// The `ssh-rsa` recipient type from age's agessh package: the file key is
// encrypted with RSA-OAEP-SHA-256 (label "age-encryption.org/v1/ssh-rsa") and
// the stanza carries a 4-byte tag of the SSH wire-format public key, so an
// identity can skip stanzas for other keys without trying to decrypt them.
// A pool's key is an RSA key in PEM, its public half may come as a PEM public
// key, the pool certificate, or an OpenSSH `ssh-rsa AAAA…` line.
import { constants, createHash, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt, X509Certificate, type KeyObject } from 'node:crypto';
import { AgeError } from './errors.ts';
import { encodeRaw } from './base64.ts';
import { FILE_KEY_SIZE, type Identity, type Recipient } from './recipient.ts';

const LABEL = Buffer.from('age-encryption.org/v1/ssh-rsa');
const MIN_BITS = 2048;

function sshString(b: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function mpint(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  const v = unsigned.subarray(i);
  return sshString(v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** SSH wire encoding of an RSA public key (RFC 4253 §6.6). */
export function sshWireKey(pub: KeyObject): Buffer {
  const jwk = pub.export({ format: 'jwk' });
  return Buffer.concat([sshString(Buffer.from('ssh-rsa')), mpint(Buffer.from(jwk.e!, 'base64url')), mpint(Buffer.from(jwk.n!, 'base64url'))]);
}

/** The OpenSSH authorized_keys line (`ssh-rsa AAAA…`) for a public key. */
export function sshRsaPublicLine(key: KeyObject | string): string {
  return 'ssh-rsa ' + sshWireKey(toRsaPublicKey(key)).toString('base64');
}

export function sshRsaTag(pub: KeyObject): string {
  return encodeRaw(createHash('sha256').update(sshWireKey(pub)).digest().subarray(0, 4));
}

function readSshString(b: Buffer, pos: number): [Buffer, number] {
  if (pos + 4 > b.length) throw new Error('short');
  const n = b.readUInt32BE(pos);
  if (pos + 4 + n > b.length) throw new Error('short');
  return [b.subarray(pos + 4, pos + 4 + n), pos + 4 + n];
}

function fromSshLine(line: string): KeyObject {
  const parts = line.trim().split(/\s+/);
  const wire = Buffer.from(parts[1] ?? '', 'base64');
  try {
    const [type, p1] = readSshString(wire, 0);
    if (type.toString() !== 'ssh-rsa') throw new Error('type');
    const [e, p2] = readSshString(wire, p1);
    const [n, p3] = readSshString(wire, p2);
    if (p3 !== wire.length) throw new Error('trailing');
    const strip = (x: Buffer): string => (x[0] === 0 ? x.subarray(1) : x).toString('base64url');
    return createPublicKey({ key: { kty: 'RSA', n: strip(n), e: strip(e) }, format: 'jwk' });
  } catch (e) {
    throw new AgeError('AGE_KEY_INVALID', 'Invalid ssh-rsa public key: the "ssh-rsa AAAA…" line does not hold an RSA key', { cause: e });
  }
}

const ACCEPTED = 'expected a PEM public key, a PEM certificate or an "ssh-rsa AAAA…" line';

/** Any accepted form of an RSA public key (or a private key) → public KeyObject. */
export function toRsaPublicKey(input: KeyObject | string): KeyObject {
  let key: KeyObject;
  if (typeof input !== 'string') {
    key = input.type === 'private' ? createPublicKey(input) : input;
  } else if (input.trimStart().startsWith('ssh-rsa ')) {
    key = fromSshLine(input);
  } else if (input.includes('-----BEGIN CERTIFICATE-----')) {
    try {
      key = new X509Certificate(input).publicKey;
    } catch (e) {
      throw new AgeError('AGE_KEY_INVALID', `Invalid ssh-rsa recipient: the PEM certificate does not parse: ${ACCEPTED}`, { cause: e });
    }
  } else if (input.includes('-----BEGIN')) {
    try {
      key = createPublicKey(input);
    } catch (e) {
      throw new AgeError('AGE_KEY_INVALID', `Invalid ssh-rsa recipient: the PEM block does not parse: ${ACCEPTED}`, { cause: e });
    }
  } else {
    throw new AgeError('AGE_KEY_INVALID', `Invalid ssh-rsa recipient: ${ACCEPTED}`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new AgeError('AGE_KEY_INVALID', `Invalid ssh-rsa recipient: the key is ${key.asymmetricKeyType ?? 'not asymmetric'}, not RSA`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_BITS) throw new AgeError('AGE_KEY_INVALID', `Invalid ssh-rsa recipient: the RSA key has ${bits} bits, at least ${MIN_BITS} are required`);
  return key;
}

export function sshRsaRecipient(publicKey: KeyObject | string): Recipient {
  const pub = toRsaPublicKey(publicKey);
  const tag = sshRsaTag(pub);
  return {
    wrap(fileKey) {
      const body = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: LABEL }, fileKey);
      return [{ type: 'ssh-rsa', args: [tag], body }];
    },
  };
}

export function toRsaPrivateKey(input: KeyObject | string): KeyObject {
  let key: KeyObject;
  if (typeof input !== 'string') {
    key = input;
  } else {
    if (input.includes('ENCRYPTED PRIVATE KEY') || input.includes('Proc-Type: 4,ENCRYPTED')) {
      throw new AgeError('AGE_KEY_INVALID', 'Invalid RSA identity: the private key is passphrase-protected; expected an unencrypted PEM key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")');
    }
    try {
      key = createPrivateKey(input);
    } catch (e) {
      throw new AgeError('AGE_KEY_INVALID', 'Invalid RSA identity: expected a PEM private key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")', { cause: e });
    }
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
    throw new AgeError('AGE_KEY_INVALID', 'Invalid RSA identity: expected an RSA private key');
  }
  return key;
}

export function sshRsaIdentity(privateKey: KeyObject | string): Identity {
  const priv = toRsaPrivateKey(privateKey);
  const tag = sshRsaTag(createPublicKey(priv));
  return {
    unwrap(stanzas) {
      for (const s of stanzas) {
        if (s.type !== 'ssh-rsa') continue;
        if (s.args.length !== 1) throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: an ssh-rsa stanza must have exactly one argument');
        if (s.args[0] !== tag) continue;
        let fileKey: Buffer;
        try {
          fileKey = privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: LABEL }, s.body);
        } catch {
          continue; // tag collision or a stanza for another key with the same tag
        }
        if (fileKey.length !== FILE_KEY_SIZE) throw new AgeError('AGE_HEADER_INVALID', 'Invalid age header: the ssh-rsa stanza wraps a key that is not 16 bytes');
        return fileKey;
      }
      return null;
    },
  };
}
