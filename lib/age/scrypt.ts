// Passphrase recipients (the native `scrypt` stanza). Offered so the reader
// runs every scrypt test vector and for completeness of the format; pools use
// ssh-rsa. The work factor is capped because scrypt cost doubles per step.
import { randomBytes, scryptSync } from 'node:crypto';
import { AgeError } from './errors.ts';
import { decodeRaw, encodeRaw } from './base64.ts';
import { aeadUnwrap, aeadWrap, type Identity, type Recipient } from './recipient.ts';

const SALT_LABEL = 'age-encryption.org/v1/scrypt';
export const MAX_WORK_FACTOR = 22;

function derive(passphrase: string, salt: Uint8Array, logN: number): Buffer {
  const N = 2 ** logN;
  return scryptSync(Buffer.from(passphrase, 'utf8'), Buffer.concat([Buffer.from(SALT_LABEL), salt]), 32, { N, r: 8, p: 1, maxmem: 128 * 8 * N + (32 << 20) });
}

const bad = (d: string): AgeError => new AgeError('AGE_HEADER_INVALID', `Invalid age header: ${d}`);

export function scryptRecipient(passphrase: string, logN = 18): Recipient {
  if (!Number.isInteger(logN) || logN < 1 || logN > MAX_WORK_FACTOR) throw new AgeError('AGE_KEY_INVALID', `Invalid scrypt work factor: ${logN} (expected 1 to ${MAX_WORK_FACTOR})`);
  return {
    wrap(fileKey) {
      const salt = randomBytes(16);
      return [{ type: 'scrypt', args: [encodeRaw(salt), String(logN)], body: aeadWrap(derive(passphrase, salt, logN), fileKey) }];
    },
  };
}

export function scryptIdentity(passphrase: string, maxWorkFactor = MAX_WORK_FACTOR): Identity {
  return {
    unwrap(stanzas) {
      for (const s of stanzas) {
        if (s.type !== 'scrypt') continue;
        if (stanzas.length !== 1) throw bad('an scrypt stanza must be the only stanza in the header');
        if (s.args.length !== 2) throw bad('an scrypt stanza must have exactly two arguments');
        const salt = decodeRaw(s.args[0]!);
        if (!salt || salt.length !== 16) throw bad('the scrypt salt is not 16 bytes of canonical base64');
        if (!/^[1-9][0-9]*$/.test(s.args[1]!)) throw bad('the scrypt work factor is not a decimal number without leading zeros');
        const logN = Number(s.args[1]);
        if (logN > maxWorkFactor) throw bad(`the scrypt work factor ${s.args[1]!.slice(0, 20)} is above the limit of ${maxWorkFactor}`);
        if (s.body.length !== 32) throw bad(`the scrypt stanza body must be 32 bytes, not ${s.body.length}`);
        const fileKey = aeadUnwrap(derive(passphrase, salt, logN), s.body, 'scrypt');
        if (fileKey) return fileKey;
      }
      return null;
    },
  };
}
