// Public API of the sealed-state format (age v1). Other modules import from here.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createSealStream, type SealOptions } from './seal.ts';
import { createOpenStream, type OpenOptions } from './open.ts';
import type { Identity, Recipient } from './recipient.ts';

export type { Identity, Recipient } from './recipient.ts';
export type { Stanza, Header } from './format.ts';
export { AgeError, type AgeErrorCode } from './errors.ts';
export { sshRsaRecipient, sshRsaIdentity, sshRsaPublicLine, sshRsaTag } from './sshrsa.ts';
export { x25519Recipient, x25519Identity, generateX25519Identity, x25519RecipientOf } from './x25519.ts';
export { scryptRecipient, scryptIdentity } from './scrypt.ts';
export { parseIdentityFile, parseRecipientsFile, parseRecipient } from './files.ts';
export { createSealStream, Sealer, ArmoredSealer, transformOf, type SealOptions } from './seal.ts';
export { pumpFile } from './pump.ts';
export { createOpenStream, Opener, type OpenOptions } from './open.ts';

async function collect(input: Uint8Array, through: NodeJS.ReadWriteStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(Readable.from([Buffer.from(input.buffer, input.byteOffset, input.byteLength)]), through, new Writable({
    write(chunk: Buffer, _e, cb) { parts.push(chunk); cb(); },
  }));
  return Buffer.concat(parts);
}

export function sealBuffer(data: Uint8Array, recipients: Recipient[], opts: SealOptions = {}): Promise<Buffer> {
  return collect(data, createSealStream(recipients, opts));
}

/** Opens a whole age file; resolves only if every chunk authenticated. */
export function openBuffer(data: Uint8Array, identities: Identity[], opts: OpenOptions = {}): Promise<Buffer> {
  return collect(data, createOpenStream(identities, opts));
}
