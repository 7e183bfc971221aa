// Hand-built DER for tests that need keys and CSRs no tool will make: RSA
// keys larger than OpenSSL generates in reasonable time. The numbers are
// random, not working keys; only their layout and sizes matter.
import { randomBytes } from 'node:crypto';

function derLength(n: number): Buffer {
  if (n < 128) return Buffer.from([n]);
  const hex = n.toString(16);
  const b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  return Buffer.concat([Buffer.from([0x80 | b.length]), b]);
}

export function tlv(tag: number, ...body: Buffer[]): Buffer {
  const content = Buffer.concat(body);
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/** A non-negative DER INTEGER from big-endian magnitude bytes. */
export function derInt(magnitude: Buffer): Buffer {
  return tlv(0x02, magnitude[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude);
}

/** `bits` random bits with the top bit set (so the bit length is exact) and odd. */
export function randomOdd(bits: number): Buffer {
  const b = randomBytes(bits / 8);
  b[0]! |= 0x80;
  b[b.length - 1]! |= 1;
  return b;
}

const RSA_ENCRYPTION = Buffer.from('06092a864886f70d0101010500', 'hex'); // OID rsaEncryption, NULL
const SHA256_WITH_RSA = Buffer.from('06092a864886f70d01010b0500', 'hex');
const E_65537 = derInt(Buffer.from([1, 0, 1]));

/** A PKCS#1 "RSA PRIVATE KEY" PEM with a `bits`-bit modulus. */
export function oversizedRsaPrivateKeyPem(bits: number): string {
  const der = tlv(0x30, derInt(Buffer.from([0])), derInt(randomOdd(bits)), E_65537, derInt(randomOdd(bits - 8)),
    ...Array.from({ length: 5 }, () => derInt(randomOdd(bits / 2 - 8))));
  return pem('RSA PRIVATE KEY', der);
}

/** A CSR (signature not valid) whose public key is a `bits`-bit RSA key. */
export function oversizedRsaCsrPem(bits: number): string {
  const spki = tlv(0x30, tlv(0x30, RSA_ENCRYPTION), tlv(0x03, Buffer.from([0]), tlv(0x30, derInt(randomOdd(bits)), E_65537)));
  const cri = tlv(0x30, derInt(Buffer.from([0])), tlv(0x30), spki, tlv(0xa0));
  return pem('CERTIFICATE REQUEST', tlv(0x30, cri, tlv(0x30, SHA256_WITH_RSA), tlv(0x03, Buffer.from([0]), randomBytes(bits / 8))));
}

function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}
