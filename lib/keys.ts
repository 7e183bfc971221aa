// The pool's RSA key: parsing it from the launcher's environment and
// generating one (keygen), all with node:crypto. The CSR, the one part that
// needs node-forge, is in lib/csr.ts so the launcher daemon never loads forge.
import * as crypto from 'node:crypto';
import { LauncherError } from './errors.ts';
import { DerError, children, readTlv, type Tlv } from './der.ts';

const DEFAULT_SOURCE = 'SPACELIFT_POOL_PRIVATE_KEY';
const ACCEPTED =
  'expected the key file as one-line base64 (base64 -w 0 spacelift.key), as wrapped base64 (base64 spacelift.key) ' +
  'or as raw PEM, holding an unencrypted RSA key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")';
/** Smallest pool key we accept, matching what the server accepts in a CSR. */
export const MIN_POOL_KEY_BITS = 2048;
export const MAX_POOL_KEY_BITS = 16384;
const MAX_KEY_CHARS = 64 * 1024;

function keyError(source: string, problem: string, cause?: unknown): LauncherError {
  // The message names the variable and the problem, never the value.
  return new LauncherError('KEY_INVALID', `Cannot use ${source}: ${problem}; ${ACCEPTED}`, { exitCode: 2, cause });
}

export interface PemBlock {
  label: string;
  /** Header lines such as "Proc-Type: 4,ENCRYPTED" (legacy encrypted PKCS#1). */
  headers: string[];
  der: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64 without whitespace; null when it is not that. */
export function decodeBase64Strict(text: string): Buffer | null {
  if (text.length === 0 || text.length % 4 !== 0 || !BASE64.test(text)) return null;
  const buf = Buffer.from(text, 'base64');
  // Non-canonical padding bits would decode silently; refuse them.
  if (buf.toString('base64') !== text) return null;
  return buf;
}

/**
 * Every PEM block in `text`, in order. Bodies are decoded here instead of by
 * OpenSSL so one-line bodies, CRLF line ends and indentation all work.
 * Throws a plain Error describing the fault (callers wrap it).
 */
export function readPemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const [, label, inner, endLabel] = m as unknown as [string, string, string, string];
    if (label !== endLabel) throw new Error(`the PEM block "${label}" ends with "${endLabel}"`);
    const lines = inner.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l !== '');
    const headers = lines.filter((l) => l.includes(':'));
    const body = lines.filter((l) => !l.includes(':')).join('');
    const der = decodeBase64Strict(body);
    if (der === null) throw new Error(`the PEM block "${label}" does not hold valid base64`);
    blocks.push({ label, headers, der });
  }
  return blocks;
}

/** Reads leniently (non-minimal lengths pass): the point is to find the modulus size, not to judge the encoding. */
const LENIENT = { minimal: false };

function derAt(b: Buffer, pos: number, limit: number): Tlv | null {
  try { return readTlv(b, pos, limit, LENIENT); } catch (e) { if (e instanceof DerError) return null; throw e; }
}

function derChildren(b: Buffer, t: Tlv): Tlv[] | null {
  try { return children(b, t, LENIENT); } catch (e) { if (e instanceof DerError) return null; throw e; }
}

function integerBits(b: Buffer, t: Tlv): number {
  let i = t.start + t.headerLength;
  while (i < t.end && b[i] === 0) i++;
  return i === t.end ? 0 : (t.end - i - 1) * 8 + (32 - Math.clz32(b[i]!));
}

/**
 * Bit length of the RSA modulus in a PKCS#1 or PKCS#8 private key or an SPKI
 * public key, read from the DER without OpenSSL; null when `der` is not laid
 * out that way (not RSA, or malformed: OpenSSL then gives the verdict).
 * Why: querying the size of a key above 16384 bits through node:crypto leaves
 * an OpenSSL error queued that makes the process's next, unrelated crypto
 * call fail ("too small buffer"), so such keys must be refused before that.
 */
export function rsaModulusBits(der: Buffer, layout: 'pkcs1' | 'pkcs8' | 'spki'): number | null {
  const top = derAt(der, 0, der.length);
  const kids = top && top.tag === 0x30 ? derChildren(der, top) : null;
  if (!kids) return null;
  if (layout === 'pkcs1') {
    return kids[0]?.tag === 0x02 && kids[1]?.tag === 0x02 ? integerBits(der, kids[1]) : null;
  }
  if (layout === 'pkcs8') {
    const inner = kids[2];
    if (kids[0]?.tag !== 0x02 || kids[1]?.tag !== 0x30 || inner?.tag !== 0x04) return null;
    return rsaModulusBits(der.subarray(inner.start + inner.headerLength, inner.end), 'pkcs1');
  }
  const bits = kids[1];
  const bitsStart = bits ? bits.start + bits.headerLength : 0;
  if (kids[0]?.tag !== 0x30 || bits?.tag !== 0x03 || der[bitsStart] !== 0) return null;
  const rsa = derAt(der, bitsStart + 1, bits.end);
  const nums = rsa && rsa.tag === 0x30 ? derChildren(der, rsa) : null;
  return nums && nums[0]?.tag === 0x02 ? integerBits(der, nums[0]) : null;
}

function tooLarge(bits: number): string {
  return `the RSA key has ${bits} bits, and at most ${MAX_POOL_KEY_BITS} are accepted`;
}

/** The PEM text inside the variable: raw PEM or base64 of it (wrapped or not). */
function pemText(value: string, source: string): string {
  let text = value.trim();
  if (text === '') throw keyError(source, 'it is empty');
  // Env files and secret stores often carry PEM with literal "\n" escapes.
  if (text.includes('-----BEGIN') && text.includes('\\n')) text = text.replace(/\\n/g, '\n');
  if (text.includes('-----BEGIN')) return text;
  const der = decodeBase64Strict(text.replace(/\s+/g, ''));
  if (der === null) throw keyError(source, 'it is neither PEM nor valid base64');
  const decoded = der.toString('latin1');
  if (!decoded.includes('-----BEGIN')) throw keyError(source, 'it is valid base64 but does not decode to a PEM file');
  return decoded;
}

const OTHER_LABELS: Record<string, string> = {
  'ENCRYPTED PRIVATE KEY': 'the key is encrypted with a passphrase (create it with openssl req -nodes, or decrypt it with openssl pkey)',
  'EC PRIVATE KEY': 'it holds an EC key, and pool keys are RSA',
  'OPENSSH PRIVATE KEY': 'it holds an OpenSSH-format key (convert it with ssh-keygen -p -m PEM, or create a new key with launcher keygen)',
  'CERTIFICATE': 'it holds a certificate, not the private key',
  'PUBLIC KEY': 'it holds a public key, not the private key',
  'RSA PUBLIC KEY': 'it holds a public key, not the private key',
  'CERTIFICATE REQUEST': 'it holds the CSR, not the private key',
};

const KEY_TYPE_NAMES: Record<string, string> = {
  'ec': 'an EC', 'ed25519': 'an Ed25519', 'ed448': 'an Ed448', 'x25519': 'an X25519', 'x448': 'an X448',
  'dsa': 'a DSA', 'dh': 'a DH', 'rsa-pss': 'an RSA-PSS (restricted)',
};
/** "an EC" etc., for messages. */
export function keyTypeName(type: string | undefined): string {
  return KEY_TYPE_NAMES[type ?? ''] ?? `a ${type ?? 'non-RSA'}`;
}

/**
 * Parses the pool's private key from an environment value (or a file's text).
 * `source` names where it came from in errors, e.g. a variable or a path.
 */
export function parsePoolPrivateKey(value: string, source: string = DEFAULT_SOURCE): crypto.KeyObject {
  if (typeof value !== 'string') throw keyError(source, 'it is not set');
  // A 16384-bit PKCS#8 key is about 13 KiB as PEM, 17 KiB as base64 of it.
  if (value.length > MAX_KEY_CHARS) throw keyError(source, `it is longer than ${MAX_KEY_CHARS / 1024} KiB`);
  const text = pemText(value, source);
  let blocks: PemBlock[];
  try {
    blocks = readPemBlocks(text);
  } catch (e) {
    throw keyError(source, (e as Error).message);
  }
  if (blocks.length === 0) throw keyError(source, 'it holds no complete PEM block');
  const keyBlocks = blocks.filter((b) => b.label === 'PRIVATE KEY' || b.label === 'RSA PRIVATE KEY');
  if (keyBlocks.length === 0) {
    const first = blocks[0]!;
    throw keyError(source, OTHER_LABELS[first.label] ?? `it holds a PEM block labelled "${first.label}"`);
  }
  if (keyBlocks.length > 1) throw keyError(source, `it holds ${keyBlocks.length} private keys, and only one is allowed`);
  const block = keyBlocks[0]!;
  if (block.headers.some((h) => /^Proc-Type:.*ENCRYPTED/i.test(h))) throw keyError(source, OTHER_LABELS['ENCRYPTED PRIVATE KEY']!);
  const layout = block.label === 'PRIVATE KEY' ? 'pkcs8' : 'pkcs1';
  const declaredBits = rsaModulusBits(block.der, layout);
  if (declaredBits !== null && declaredBits > MAX_POOL_KEY_BITS) throw keyError(source, tooLarge(declaredBits));
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: block.der, format: 'der', type: layout });
  } catch (e) {
    throw keyError(source, `its "${block.label}" block is not a readable private key`, e);
  }
  if (key.asymmetricKeyType !== 'rsa') throw keyError(source, `it holds ${keyTypeName(key.asymmetricKeyType)} key, and pool keys are RSA`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_POOL_KEY_BITS) throw keyError(source, `the RSA key has ${bits} bits, and at least ${MIN_POOL_KEY_BITS} are required`);
  if (bits > MAX_POOL_KEY_BITS) throw keyError(source, tooLarge(bits));
  return key;
}

/** SPKI PEM of the key's public half (works for private or public keys). */
export function publicKeyPem(key: crypto.KeyObject): string {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'pem' }) as string;
}

function parseCertificate(certPem: string, what: string): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(certPem);
  } catch (e) {
    throw new LauncherError('CERT_INVALID', `Cannot read ${what}: it is not a PEM X.509 certificate`, { cause: e });
  }
}

/** SPKI PEM of a certificate's public key. */
export function certificatePublicKeyPem(certPem: string): string {
  return publicKeyPem(parseCertificate(certPem, 'the certificate').publicKey);
}

/** Short, non-secret fingerprint of a public key, for error messages. */
export function publicKeyFingerprint(key: crypto.KeyObject): string {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  return 'SHA256:' + crypto.createHash('sha256').update(der).digest('base64').replace(/=+$/, '').slice(0, 16);
}

/**
 * Throws KEY_MISMATCH when `key` is not the private half of the certificate's
 * public key. The message names both sides and their (public) fingerprints.
 */
export function assertKeyMatchesCertificate(
  key: crypto.KeyObject,
  certPem: string,
  names: { key: string; cert: string } = { key: DEFAULT_SOURCE, cert: 'the certificate in SPACELIFT_TOKEN' },
): void {
  const cert = parseCertificate(certPem, names.cert);
  let matches = false;
  try {
    matches = cert.checkPrivateKey(key);
  } catch {
    matches = false; // different key types end here
  }
  if (!matches) {
    throw new LauncherError(
      'KEY_MISMATCH',
      `${names.key} does not match ${names.cert}: the key's public half is ${publicKeyFingerprint(key)} ` +
        `but the certificate holds ${publicKeyFingerprint(cert.publicKey)} ` +
        '(use the key that made the CSR for this pool; after a pool reset, use the new token with the new key)',
      { exitCode: 2 },
    );
  }
}

/** A new RSA pool key (native generation), PKCS#8 private and SPKI public PEM. */
export function generatePoolKey(bits = 4096): { privateKeyPem: string; publicKeyPem: string } {
  if (!Number.isInteger(bits) || bits < MIN_POOL_KEY_BITS || bits > MAX_POOL_KEY_BITS) {
    throw new LauncherError('KEY_SIZE_INVALID', `Cannot generate a ${bits}-bit key: expected ${MIN_POOL_KEY_BITS} to ${MAX_POOL_KEY_BITS} bits`, { exitCode: 2 });
  }
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

export const DEFAULT_CSR_COMMON_NAME = 'worker-pool';

/** Signs `der` with the RSA key using SHA-256 (PKCS#1 v1.5), as a forge binary string. */
export function signSha256Rsa(der: string, key: crypto.KeyObject): string {
  return crypto.sign('sha256', Buffer.from(der, 'binary'), key).toString('binary');
}
