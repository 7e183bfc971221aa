// The age layer's error type. Codes are stable so callers, the CLI and the
// test vectors can tell a header failure from a payload failure without
// parsing messages.
import { LauncherError } from '../errors.ts';

export type AgeErrorCode =
  | 'AGE_NO_IDENTITY' // no identity unwrapped the file key ("no match")
  | 'AGE_HEADER_INVALID' // header does not follow the format or a stanza is malformed
  | 'AGE_VERSION_UNSUPPORTED' // a version line other than v1
  | 'AGE_MAC_MISMATCH' // header MAC does not verify under the unwrapped file key
  | 'AGE_PAYLOAD_TRUNCATED' // the payload ended before a final chunk
  | 'AGE_PAYLOAD_INVALID' // a chunk failed to authenticate or is not canonical
  | 'AGE_TRAILING_DATA' // bytes after the final chunk
  | 'AGE_ARMOR_INVALID' // ASCII armor is not strict PEM
  | 'AGE_KEY_INVALID' // a recipient or identity could not be parsed
  | 'AGE_INPUT_CHANGED' // the input file changed size while it was being read
  | 'AGE_STATE_ERROR'; // API misuse, e.g. no recipients

export class AgeError extends LauncherError {
  declare readonly code: AgeErrorCode;
  constructor(code: AgeErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(code, message, { exitCode: 1, cause: opts.cause });
    this.name = 'AgeError';
  }
}

/** The failure classes used by the C2SP test vectors, for tests and logs. */
export function failureKind(code: string): string {
  switch (code) {
    case 'AGE_NO_IDENTITY': return 'no match';
    case 'AGE_MAC_MISMATCH': return 'HMAC failure';
    case 'AGE_HEADER_INVALID': case 'AGE_VERSION_UNSUPPORTED': return 'header failure';
    case 'AGE_PAYLOAD_TRUNCATED': case 'AGE_PAYLOAD_INVALID': case 'AGE_TRAILING_DATA': return 'payload failure';
    case 'AGE_ARMOR_INVALID': return 'armor failure';
    default: return code;
  }
}
