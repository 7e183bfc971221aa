// The pool's CSR (keygen). Apart from lib/keys.ts because it is the one key
// operation that needs node-forge (node:crypto cannot build a CSR): the
// launcher daemon imports lib/keys.ts to parse its key and must not load
// forge's ~11 MB of JavaScript just for that.
import forge from 'node-forge';
import { DEFAULT_CSR_COMMON_NAME, parsePoolPrivateKey, publicKeyPem, signSha256Rsa } from './keys.ts';

/**
 * A PKCS#10 CSR (PEM) for the key, signed with SHA-256. forge lays out the
 * ASN.1; node:crypto signs it (native and fast even for 4096-bit keys).
 */
export function createCsr(privateKeyPem: string, subject: { commonName?: string; organization?: string } = {}): string {
  const key = parsePoolPrivateKey(privateKeyPem, 'the private key');
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(publicKeyPem(key));
  // UTF8String, not forge's default PrintableString, so any name encodes correctly.
  const utf8 = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;
  const attrs: forge.pki.CertificateField[] = [{ name: 'commonName', value: subject.commonName ?? DEFAULT_CSR_COMMON_NAME, valueTagClass: utf8 }];
  if (subject.organization) attrs.push({ name: 'organizationName', value: subject.organization, valueTagClass: utf8 });
  csr.setSubject(attrs);
  const oid = forge.pki.oids['sha256WithRSAEncryption']!;
  csr.signatureOid = oid;
  csr.siginfo.algorithmOid = oid;
  const cri = (forge.pki as unknown as { getCertificationRequestInfo(c: forge.pki.CertificateSigningRequest): forge.asn1.Asn1 }).getCertificationRequestInfo(csr);
  csr.certificationRequestInfo = cri;
  csr.signature = signSha256Rsa(forge.asn1.toDer(cri).getBytes(), key);
  return forge.pki.certificationRequestToPem(csr);
}
