// The server's certificate authority: its own CA, the server's TLS
// certificate, and pool certificates issued from users' CSRs.
//
// node:crypto signs, verifies and reads keys and certificates; node-forge only
// lays out certificate ASN.1 (node:crypto cannot build certificates). CSRs are
// checked with a small strict DER reader before anything else touches them,
// because they come from users and must fail with a clear CSR_INVALID.
import * as crypto from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { LauncherError } from './errors.ts';
import { MAX_POOL_KEY_BITS, MIN_POOL_KEY_BITS, decodeBase64Strict, publicKeyPem, signSha256Rsa } from './keys.ts';

export interface CertificateAuthority { keyPem: string; certPem: string }

/** Default validity, in days. Documented in docs/pki.md. */
export const CA_VALIDITY_DAYS = 3650;
export const SERVER_VALIDITY_DAYS = 730;
export const POOL_VALIDITY_DAYS = 365;
/** Certificates start this long before "now" so a worker whose clock lags a little still accepts them. */
const BACKDATE_MS = 5 * 60_000;
/** Largest CSR (PEM text) we read; a 16384-bit RSA CSR is about 5 KiB. */
export const MAX_CSR_BYTES = 64 * 1024;

// ---------------------------------------------------------------- DER reading

interface Tlv { tag: number; start: number; headerLength: number; end: number }

class DerError extends Error {}

/** One DER TLV at `pos` in `buf` (definite lengths, minimal encodings only). */
function readTlv(buf: Buffer, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('it ends in the middle of a DER element');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('it uses a multi-byte DER tag');
  let len = buf[pos + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('it uses an indefinite length, which DER forbids');
    if (n > 4) throw new DerError('it has a DER length that is too large');
    if (pos + 2 + n > limit) throw new DerError('it ends in the middle of a DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i]!;
    if (buf[pos + 2]! === 0 || len < 0x80) throw new DerError('it has a non-minimal DER length');
    header += n;
  }
  const end = pos + header + len;
  if (end > limit) throw new DerError('it is truncated: a DER element runs past its end');
  return { tag, start: pos, headerLength: header, end };
}

/** The children of a constructed element. */
function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.start + parent.headerLength; p < parent.end;) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new DerError(`its ${what} is missing or malformed`);
  return t;
}

const content = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start + t.headerLength, t.end);
const whole = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start, t.end);

function oidToString(b: Buffer): string {
  if (b.length === 0) throw new DerError('it has an empty object identifier');
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    if (v === 0 && b[i] === 0x80) throw new DerError('it has a non-minimal object identifier');
    v = v * 128 + (b[i]! & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) throw new DerError('it has an object identifier component that is too large');
    if (!(b[i]! & 0x80)) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    } else if (i === b.length - 1) throw new DerError('it has a truncated object identifier');
  }
  return parts.join('.');
}

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OID = 0x06;

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

// ---------------------------------------------------------------- CSR checks

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

interface ParsedCsr extends CsrFacts { key: crypto.KeyObject }

function parseCsr(csrPem: string): ParsedCsr {
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

// --------------------------------------------------------- issuing certificates

function randomSerialHex(): string {
  // 16 random bytes, positive and without a leading zero byte, so the DER
  // INTEGER is exactly these bytes and the hex form is stable everywhere.
  const b = crypto.randomBytes(16);
  b[0] = (b[0]! & 0x7f) || 0x01;
  return b.toString('hex');
}

/** Lowercase hex serial number of a certificate, as issue* return it. */
export function certificateSerial(certPem: string): string {
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(certPem);
  } catch (e) {
    throw new LauncherError('CERT_INVALID', 'Cannot read the certificate: it is not a PEM X.509 certificate', { cause: e });
  }
  return cert.serialNumber.toLowerCase().replace(/^(00)+(?=.)/, '');
}

function subjectKeyId(key: crypto.KeyObject): string {
  // RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the PKCS#1 key).
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return crypto.createHash('sha1').update(pub.export({ type: 'pkcs1', format: 'der' })).digest('binary');
}

function validDays(days: number | undefined, fallback: number, what: string): number {
  const d = days ?? fallback;
  if (!Number.isFinite(d) || d <= 0 || d > 100 * 366) {
    throw new LauncherError('VALIDITY_INVALID', `Cannot issue the ${what} certificate: validity of ${d} days is out of range, expected 1 to 36600 days`, { exitCode: 2 });
  }
  return d;
}

interface Draft {
  subject: forge.pki.CertificateField[];
  issuer: forge.pki.CertificateField[];
  publicKey: crypto.KeyObject;
  signer: crypto.KeyObject;
  issuerKey: crypto.KeyObject;
  days: number;
  extensions: object[];
}

function signCertificate(d: Draft): { certPem: string; serial: string; notAfter: Date } {
  const cert = forge.pki.createCertificate();
  const serial = randomSerialHex();
  cert.serialNumber = serial;
  const now = Date.now();
  const notBefore = new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now + d.days * 86_400_000) / 1000) * 1000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem(d.publicKey));
  cert.setSubject(d.subject);
  cert.setIssuer(d.issuer);
  cert.setExtensions([
    ...d.extensions,
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: forge.util.bytesToHex(subjectKeyId(d.publicKey)) },
    { name: 'authorityKeyIdentifier', keyIdentifier: subjectKeyId(d.issuerKey) },
  ]);
  const oid = forge.pki.oids['sha256WithRSAEncryption']!;
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  cert.tbsCertificate = tbs;
  cert.signature = signSha256Rsa(forge.asn1.toDer(tbs).getBytes(), d.signer);
  return { certPem: forge.pki.certificateToPem(cert), serial, notAfter };
}

/** A one-attribute name encoded as UTF8String (forge defaults to PrintableString, which forbids "_", "@" and more). */
function cn(value: string): forge.pki.CertificateField[] {
  return [{ name: 'commonName', value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class }];
}

function generateKey(bits: number): crypto.KeyObject {
  if (!Number.isInteger(bits) || bits < 2048 || bits > 16384) {
    throw new LauncherError('KEY_SIZE_INVALID', `Cannot generate a ${bits}-bit key: expected 2048 to 16384 bits`, { exitCode: 2 });
  }
  return crypto.generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 }).privateKey;
}

const pkcs8 = (k: crypto.KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;

/** A new self-signed CA (RSA, 4096 bits by default) for the server. */
export function createCertificateAuthority(opts: { commonName?: string; validityDays?: number; bits?: number } = {}): CertificateAuthority {
  const key = generateKey(opts.bits ?? 4096);
  const name = cn(opts.commonName ?? 'launcher server CA');
  const { certPem } = signCertificate({
    subject: name, issuer: name, publicKey: key, signer: key, issuerKey: key,
    days: validDays(opts.validityDays, CA_VALIDITY_DAYS, 'CA'),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { keyPem: pkcs8(key), certPem };
}

interface LoadedCa { key: crypto.KeyObject; cert: crypto.X509Certificate; subject: forge.pki.CertificateField[] }

// Parsing the CA for every issuance is a measurable share of its cost; the
// CA is immutable, so cache per PEM pair.
const loaded = new Map<string, LoadedCa>();

function loadCa(ca: CertificateAuthority): LoadedCa {
  const id = ca.certPem + ca.keyPem;
  const hit = loaded.get(id);
  if (hit) return hit;
  let v: LoadedCa;
  try {
    const key = crypto.createPrivateKey(ca.keyPem);
    const cert = new crypto.X509Certificate(ca.certPem);
    if (!cert.checkPrivateKey(key)) throw new Error('the CA key does not match the CA certificate');
    if (!cert.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:FALSE)');
    // The issuer name is copied attribute by attribute with its string type, so it matches the CA's subject exactly.
    const subject = forge.pki.certificateFromPem(ca.certPem).subject.attributes.map((a) =>
      (a.valueTagClass === undefined ? { type: a.type, value: a.value } : { type: a.type, value: a.value, valueTagClass: a.valueTagClass }) as forge.pki.CertificateField);
    v = { key, cert, subject };
  } catch (e) {
    throw new LauncherError('CA_INVALID', `Cannot use the certificate authority: ${(e as Error).message.replace(/\.$/, '')}`, { cause: e });
  }
  if (loaded.size > 16) loaded.clear();
  loaded.set(id, v);
  return v;
}

/** The server's TLS certificate: serverAuth, with DNS and IP SANs. */
export function issueServerCertificate(
  ca: CertificateAuthority,
  opts: { dnsNames: string[]; ipAddresses: string[]; validityDays?: number; bits?: number },
): { keyPem: string; certPem: string } {
  const issuer = loadCa(ca);
  const bad = (what: string) => new LauncherError('CERT_NAMES_INVALID', `Cannot issue the server certificate: ${what}`, { exitCode: 2 });
  for (const ip of opts.ipAddresses) {
    if (isIP(ip) === 0) throw bad(`"${ip}" is not an IP address`);
  }
  // An address given as a "DNS name" would never match a client connecting by IP: move it.
  const ips = [...new Set([...opts.ipAddresses, ...opts.dnsNames.filter((n) => isIP(n) !== 0)])];
  const dns = [...new Set(opts.dnsNames.filter((n) => isIP(n) === 0))];
  for (const n of dns) {
    if (!/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/.test(n) || n.length > 253) {
      throw bad(`"${n}" is not a DNS name (expected e.g. ci.example.com)`);
    }
  }
  const alt = [...dns.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))];
  if (alt.length === 0) throw new LauncherError('CERT_NAMES_MISSING', 'Cannot issue the server certificate: expected at least one DNS name or IP address', { exitCode: 2 });
  const key = generateKey(opts.bits ?? 2048);
  const { certPem } = signCertificate({
    // CN is informational (clients match SANs); keep it within X.520's 64 characters.
    subject: cn((dns[0] ?? ips[0]!).slice(0, 64)),
    issuer: issuer.subject, publicKey: key, signer: issuer.key, issuerKey: issuer.key,
    days: validDays(opts.validityDays, SERVER_VALIDITY_DAYS, 'server'),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: alt },
    ],
  });
  return { keyPem: pkcs8(key), certPem };
}


/**
 * A pool certificate for the key in `csrPem` (checked by inspectCsr): subject
 * CN = pool id, clientAuth, random 128-bit serial the server records so it can
 * refuse a reset pool's old certificate.
 */
export function issuePoolCertificate(
  ca: CertificateAuthority,
  csrPem: string,
  opts: { poolId: string; validityDays?: number },
): { certPem: string; serial: string; notAfter: Date; publicKeyPem: string } {
  if (typeof opts.poolId !== 'string' || opts.poolId === '' || opts.poolId.length > 64) {
    throw new LauncherError('POOL_ID_INVALID', 'Cannot issue the pool certificate: the pool id must be 1 to 64 characters', { exitCode: 2 });
  }
  const csr = parseCsr(csrPem);
  const issuer = loadCa(ca);
  const { certPem, serial, notAfter } = signCertificate({
    subject: cn(opts.poolId),
    issuer: issuer.subject, publicKey: csr.key, signer: issuer.key, issuerKey: issuer.key,
    days: validDays(opts.validityDays, POOL_VALIDITY_DAYS, 'pool'),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { certPem, serial, notAfter, publicKeyPem: csr.publicKeyPem };
}

/** True when `certPem` was issued (and signed) by the CA certificate. */
export function isIssuedBy(certPem: string, caCertPem: string): boolean {
  try {
    const cert = new crypto.X509Certificate(certPem);
    const ca = new crypto.X509Certificate(caCertPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}
