// Pool and server certificates: reading users' CSRs (pki/csr.ts, over the
// strict DER reader in der.ts) and issuing certificates from the server's
// CA (pki/certificates.ts). This index keeps one import path for both.
export { MAX_CSR_BYTES, inspectCsr, type CsrFacts } from './pki/csr.ts';
export {
  CA_VALIDITY_DAYS, POOL_VALIDITY_DAYS, SERVER_VALIDITY_DAYS, certificateSerial, createCertificateAuthority,
  isIssuedBy, issuePoolCertificate, issueServerCertificate, type CertificateAuthority,
} from './pki/certificates.ts';
