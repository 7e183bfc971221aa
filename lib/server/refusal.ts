// The server's domain errors: a request asks for something that cannot be
// done (unknown run, wrong state, bad field, too large), said in the user's
// words with a stable code. Service and the API ops throw these; only the HTTP
// edge (http.ts) decides which status each kind becomes.

/**
 * `busy`: too much at once, retry later; `full`: the server's disk is at its
 * floor; `broken`: the server's own data is damaged (a recorded file is
 * missing); the others are the request's fault.
 */
export type RefusalKind = 'invalid' | 'unauthenticated' | 'forbidden' | 'not-found' | 'conflict' | 'too-large' | 'busy' | 'full' | 'broken';

export class Refusal extends Error {
  readonly kind: RefusalKind;
  readonly code: string;
  /** Extra top-level fields of the error answer (e.g. nextSeq). */
  readonly extra: Record<string, unknown> | undefined;
  constructor(kind: RefusalKind, code: string, message: string, extra?: Record<string, unknown>) {
    super(message);
    this.name = 'Refusal';
    this.kind = kind;
    this.code = code;
    this.extra = extra;
  }
}

export const badField = (name: string, expected: string): Refusal =>
  new Refusal('invalid', 'INVALID_FIELD', `Invalid field "${name}": expected ${expected}`);
