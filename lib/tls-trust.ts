// When a TLS connection fails because the server's certificate is not from the
// CA the client pins (the token's CA for launchers, --ca for admins): one list
// of those failures and one error code, SERVER_UNTRUSTED, for both clients.

export const SERVER_UNTRUSTED = 'SERVER_UNTRUSTED';

const TRUST_FAILURES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE',
]);

/** The TLS error code of a connection error (undici puts it on the error or its cause). */
export function connectionErrorCode(e: unknown): string {
  const err = e as { code?: string; cause?: { code?: string } } | null;
  return err?.code ?? err?.cause?.code ?? '';
}

/** True when `code` means the peer's certificate does not chain to the pinned CA (or is expired or for another name). */
export function isTrustFailure(code: string): boolean {
  return TRUST_FAILURES.has(code);
}
