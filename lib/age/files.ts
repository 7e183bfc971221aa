// Reading recipients and identities from the files users already have: the
// pool's PEM key, its certificate or public key, ssh-rsa lines, and age's own
// identity and recipient files.
import { AgeError } from './errors.ts';
import { sshRsaIdentity, sshRsaRecipient } from './sshrsa.ts';
import { x25519Identity, x25519Recipient } from './x25519.ts';
import type { Identity, Recipient } from './recipient.ts';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** A PEM RSA private key, or an age identity file (AGE-SECRET-KEY-1… lines, # comments). */
export function parseIdentityFile(text: string, source = 'identity file'): Identity[] {
  if (text.includes('-----BEGIN')) {
    const blocks = [...text.matchAll(PEM_BLOCK)].filter((m) => m[1]!.endsWith('PRIVATE KEY'));
    if (blocks.length === 0) throw new AgeError('AGE_KEY_INVALID', `Invalid ${source}: no PEM private key block found (expected "PRIVATE KEY" or "RSA PRIVATE KEY")`);
    return blocks.map((m) => sshRsaIdentity(m[0]));
  }
  const out: Identity[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (!line.startsWith('AGE-SECRET-KEY-1')) {
      throw new AgeError('AGE_KEY_INVALID', `Invalid ${source}: line ${i + 1} is not an "AGE-SECRET-KEY-1…" identity or a PEM RSA private key`);
    }
    out.push(x25519Identity(line));
  });
  if (out.length === 0) throw new AgeError('AGE_KEY_INVALID', `Invalid ${source}: it holds no identities (expected a PEM RSA private key or AGE-SECRET-KEY-1… lines)`);
  return out;
}

/** One recipient per age1… or ssh-rsa line, plus every PEM public key or certificate block. */
export function parseRecipientsFile(text: string, source = 'recipients file'): Recipient[] {
  const out: Recipient[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const label = m[1]!;
    if (label === 'CERTIFICATE' || label === 'PUBLIC KEY' || label === 'RSA PUBLIC KEY') out.push(sshRsaRecipient(m[0]));
    else throw new AgeError('AGE_KEY_INVALID', `Invalid ${source}: a "${label}" block is not a recipient (expected a CERTIFICATE or PUBLIC KEY block)`);
  }
  const rest = text.replace(PEM_BLOCK, '');
  rest.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('age1')) out.push(x25519Recipient(line));
    else if (line.startsWith('ssh-rsa ')) out.push(sshRsaRecipient(line));
    else throw new AgeError('AGE_KEY_INVALID', `Invalid ${source}: line ${i + 1} is not an age1… or ssh-rsa recipient, a PEM public key or a certificate`);
  });
  if (out.length === 0) throw new AgeError('AGE_KEY_INVALID', `Invalid ${source}: it holds no recipients`);
  return out;
}

/** One -r argument: an age1… key or an ssh-rsa line. */
export function parseRecipient(arg: string): Recipient {
  const s = arg.trim();
  if (s.startsWith('age1')) return x25519Recipient(s);
  if (s.startsWith('ssh-rsa ') || s.includes('-----BEGIN')) return sshRsaRecipient(s);
  throw new AgeError('AGE_KEY_INVALID', `Invalid recipient "${s.slice(0, 24)}…": expected an age1… public key or an "ssh-rsa AAAA…" line`);
}
