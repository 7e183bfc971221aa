// Reading users' certificate signing requests: PEM shape, size, strict DER
// structure, an RSA key of the accepted size and a SHA-2 signature by that
// key, checked before anything else touches them, each failure a clear
// CSR_INVALID. Issuing certificates from them is lib/pki/certificates.ts.
import * as crypto from 'node:crypto';
import { LauncherError } from '../errors.ts';
import { MAX_POOL_KEY_BITS, MIN_POOL_KEY_BITS, decodeBase64Strict, publicKeyPem } from '../keys.ts';
import { BIT_STRING, DerError, INTEGER, OID, SEQUENCE, SET, children, content, expectTag, oidToString, readTlv, whole, type Tlv } from '../der.ts';

/** Largest CSR (PEM text) we read; a 16384-bit RSA CSR is about 5 KiB. */
export const MAX_CSR_BYTES = 64 * 1024;

const SIGNATURE_HASHES: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};
const WEAK_SIGNATURES: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
};
const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU', '1.2.840.113549.1.9.1': 'emailAddress',
};

/** Readable one-line subject ("CN=x, O=y"); values are sanitised for messages and logs. */
function subjectString(buf: Buffer, name: Tlv): string {
  const out: string[] = [];
  for (const rdn of children(buf, name)) {
    expectTag(rdn, SET, 'subject');
    for (const atv of children(buf, rdn)) {
      const [type, value] = children(buf, expectTag(atv, SEQUENCE, 'subject'));
      const oid = oidToString(content(buf, expectTag(type, OID, 'subject')));
      if (value === undefined) throw new DerError('its subject is missing or malformed');
      const text = content(buf, value).toString('utf8').replace(/[^\x20-\x7e]/g, '?').slice(0, 128);
      out.push(`${ATTRIBUTE_NAMES[oid] ?? oid}=${text}`);
    }
  }
  return out.join(', ');
}

export interface CsrFacts { publicKeyPem: string; bits: number; subject: string }

function csrError(problem: string, cause?: unknown): LauncherError {
  return new LauncherError('CSR_INVALID', `Cannot accept the CSR: ${problem}`, { exitCode: 2, cause });
}

function csrDer(csrPem: string): Buffer {
  if (typeof csrPem !== 'string') throw csrError('expected PEM text ("-----BEGIN CERTIFICATE REQUEST-----")');
  if (Buffer.byteLength(csrPem) > MAX_CSR_BYTES) throw csrError(`it is larger than ${MAX_CSR_BYTES / 1024} KiB`);
  const text = csrPem.trim();
  const labels = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((b) => b[1]!);
  if (labels.length > 1) {
    const key = labels.some((l) => /PRIVATE KEY/.test(l));
    throw csrError(`it holds ${labels.length} PEM blocks (${labels.map((l) => `"${l}"`).join(', ')}), expected exactly one "CERTIFICATE REQUEST"${key ? '; one is a private key, which must never leave your hosts: send only the .csr file' : ': send a file with only the request'}`);
  }
  const m = /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----$/.exec(text);
  if (m === null) {
    if (text === '') throw csrError('it is empty');
    if (!text.startsWith('-----BEGIN ')) throw csrError('it is not PEM: expected a file starting with "-----BEGIN CERTIFICATE REQUEST-----" (as openssl req -new writes)');
    throw csrError('it is not one complete PEM block: expected "-----BEGIN CERTIFICATE REQUEST-----" … "-----END CERTIFICATE REQUEST-----"');
  }
  const [, label, body, endLabel] = m as unknown as [string, string, string, string];
  if (label !== 'CERTIFICATE REQUEST' && label !== 'NEW CERTIFICATE REQUEST') {
    throw csrError(`its PEM block is labelled "${label}", expected "CERTIFICATE REQUEST"`);
  }
  if (endLabel !== label) throw csrError(`its PEM block starts as "${label}" but ends as "${endLabel}"`);
  const der = decodeBase64Strict(body.replace(/\s+/g, ''));
  if (der === null) throw csrError('its PEM body is not valid base64');
  return der;
}

export interface ParsedCsr extends CsrFacts { key: crypto.KeyObject }

/** The CSR's facts and its public key (for issuing); throws CSR_INVALID. */
export function parseCsr(csrPem: string): ParsedCsr {
  const der = csrDer(csrPem);
  let info: Buffer, algOid: string, signature: Buffer, spki: Buffer, subject: string;
  try {
    const top = readTlv(der, 0, der.length);
    if (top.end !== der.length) throw new DerError('it has trailing bytes after the request');
    const [cri, alg, sig, extra] = children(der, expectTag(top, SEQUENCE, 'outer structure'));
    if (extra !== undefined) throw new DerError('it has unexpected extra fields');
    info = whole(der, expectTag(cri, SEQUENCE, 'request info'));
    const [version, name, pki] = children(der, cri!);
    const v = content(der, expectTag(version, INTEGER, 'version'));
    if (v.length !== 1 || v[0] !== 0) throw new DerError('its version is not 1 (the only PKCS#10 version)');
    subject = subjectString(der, expectTag(name, SEQUENCE, 'subject'));
    spki = whole(der, expectTag(pki, SEQUENCE, 'public key'));
    const [algId] = children(der, expectTag(alg, SEQUENCE, 'signature algorithm'));
    algOid = oidToString(content(der, expectTag(algId, OID, 'signature algorithm')));
    const bits = content(der, expectTag(sig, BIT_STRING, 'signature'));
    if (bits.length < 2 || bits[0] !== 0) throw new DerError('its signature is malformed');
    signature = bits.subarray(1);
  } catch (e) {
    if (e instanceof DerError) throw csrError(`it is not a well-formed PKCS#10 request: ${e.message}`);
    throw e;
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (e) {
    throw csrError('its public key cannot be read', e);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw csrError(`its key is ${key.asymmetricKeyType ?? 'of an unknown type'}, expected RSA (openssl req -new -newkey rsa:4096)`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_POOL_KEY_BITS) throw csrError(`its RSA key has ${bits} bits, expected at least ${MIN_POOL_KEY_BITS} (4096 recommended)`);
  if (bits > MAX_POOL_KEY_BITS) throw csrError(`its RSA key has ${bits} bits, expected at most ${MAX_POOL_KEY_BITS}`);
  // 65537 is what every current tool generates; small exponents such as 3
  // have a history of signature-forgery and broadcast attacks, so only F4 is accepted.
  const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n;
  if (exponent !== 65537n) throw csrError(`its RSA public exponent is ${exponent}, expected 65537 (make the key with openssl req -newkey rsa:4096 or launcher keygen, which use 65537)`);
  const hash = SIGNATURE_HASHES[algOid];
  if (hash === undefined) {
    const weak = WEAK_SIGNATURES[algOid];
    throw csrError(weak ? `it is signed with ${weak}, expected SHA-256 or stronger` : `its signature algorithm ${algOid} is not supported, expected sha256WithRSAEncryption`);
  }
  let ok = false;
  try {
    ok = crypto.verify(hash, info, key, signature);
  } catch (e) {
    throw csrError('its signature cannot be checked', e);
  }
  if (!ok) throw csrError('its signature does not verify: the request was changed after signing, or was not signed with the key it holds');
  return { key, bits, subject, publicKeyPem: publicKeyPem(key) };
}

/**
 * Checks a user's CSR: PEM shape, size, DER structure, RSA key of 2048..16384
 * bits, and a SHA-2 signature by that key. Throws CSR_INVALID saying what is wrong.
 */
export function inspectCsr(csrPem: string): CsrFacts {
  const { key: _key, ...facts } = parseCsr(csrPem);
  return facts;
}
