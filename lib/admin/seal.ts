// Sealing on the admin's machine, before anything leaves it: stack secrets (one
// age file holding the JSON object {NAME: VALUE}) and trigger workspaces (a tar
// of the directory), both to every active key of the pool. The server only ever
// sees the sealed bytes.
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { ConfigError, LauncherError } from '../errors.ts';
import { createSealStream } from '../age/seal.ts';
import { sshRsaRecipient } from '../age/sshrsa.ts';
import type { Recipient } from '../age/recipient.ts';
import { packDirectory } from '../workspace.ts';

export function recipientsFor(poolId: string, publicKeyPems: string[]): Recipient[] {
  if (publicKeyPems.length === 0) {
    throw new ConfigError(`Cannot seal to pool ${poolId}: it has no active key; add one with launcher admin pool key add ${poolId} --csr FILE`);
  }
  return publicKeyPems.map((pem) => sshRsaRecipient(pem));
}

/** Secret env as base64 of an age file, the API's `secretEnv` field. */
export function sealSecretEnv(secrets: Record<string, string>, recipients: Recipient[]): Promise<string> {
  return sealText(JSON.stringify(secrets), recipients);
}

/** A small text (a JSON document) as base64 of an age file sealed to `recipients`. */
export async function sealText(text: string, recipients: Recipient[]): Promise<string> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from([Buffer.from(text, 'utf8')]),
    createSealStream(recipients),
    new Writable({ write(chunk: Buffer, _enc, cb) { parts.push(chunk); cb(); } }),
  );
  return Buffer.concat(parts).toString('base64');
}

/** The directory as a tar, sealed on the fly: constant memory for any size. */
export function sealedWorkspace(dir: string, recipients: Recipient[]): Readable {
  const sealed = createSealStream(recipients);
  const tar = packDirectory(dir);
  // Say it was the directory, not the server, when reading it fails mid-upload.
  tar.on('error', (e) => sealed.destroy(new LauncherError('WORKSPACE_UNREADABLE', `Cannot pack --workspace ${dir}: ${e.message}`, { cause: e })));
  return tar.pipe(sealed);
}
