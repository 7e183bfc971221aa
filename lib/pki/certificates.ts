// The server's certificate authority: its own CA, the server's TLS
// certificate, and pool certificates issued from users' CSRs (read and
// checked by lib/pki/csr.ts). node:crypto signs, verifies and reads keys and
// certificates; node-forge only lays out certificate ASN.1 (node:crypto
// cannot build certificates).
import * as crypto from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { LauncherError } from '../errors.ts';
import { publicKeyPem, signSha256Rsa } from '../keys.ts';
import { parseCsr } from './csr.ts';

export interface CertificateAuthority { keyPem: string; certPem: string }

/** Default validity, in days. Documented in docs/pki.md. */
export const CA_VALIDITY_DAYS = 3650;
export const SERVER_VALIDITY_DAYS = 730;
export const POOL_VALIDITY_DAYS = 365;
/** Certificates start this long before "now" so a worker whose clock lags a little still accepts them. */
const BACKDATE_MS = 5 * 60_000;

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
