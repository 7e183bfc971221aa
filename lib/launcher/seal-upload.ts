// Sealing a workspace (or a tool's state) while it is uploaded: one pass over
// the bytes feeds the upload and a file kept for a retry. Used by a phase's
// workspace upload (phase.ts) and a tool step's state upload (toolstep.ts).
import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createSealStream, type Recipient } from '../age/index.ts';
import { isTransient } from './api.ts';
import { retryTransient, type RetryOptions } from './retry.ts';

/**
 * Seals the workspace tar and uploads it while it is sealed, keeping a copy in
 * `file` at the same time: if the upload fails (the server restarted), it is
 * retried from the complete file, never from a half-sealed one. A sealing
 * failure is never retried: it is the phase's system error.
 */
export async function sealAndUpload(
  tar: Readable, file: string, recipients: Recipient[], upload: (body: Readable) => Promise<void>, retry: RetryOptions,
): Promise<void> {
  const sealer = createSealStream(recipients);
  const copy = createWriteStream(file, { mode: 0o600 });
  const body = new PassThrough();
  const sealed = pipeline(tar, sealer);
  const copied = new Promise<void>((resolve, reject) => { copy.once('finish', resolve); copy.once('error', reject); });
  sealer.pipe(copy);
  sealer.pipe(body);
  // A failed seal must end the upload and the copy too, or both would wait for the rest.
  sealed.catch((e) => {
    body.destroy(e as Error);
    copy.destroy(e as Error);
  });
  const first = upload(body).then(() => true, (e: unknown) => {
    // Let sealing go on into the file alone.
    sealer.unpipe(body);
    body.resume();
    if (!isTransient(e)) throw e;
    retry.onRetry?.(e, 0, 0);
    return false;
  });
  const [sealResult, uploadResult, copyResult] = await Promise.allSettled([sealed, first, copied]);
  if (sealResult.status === 'rejected') throw sealResult.reason;
  if (copyResult.status === 'rejected') throw copyResult.reason;
  if (uploadResult.status === 'rejected') throw uploadResult.reason;
  if (!uploadResult.value) await retryTransient(() => upload(createReadStream(file)), retry);
}
