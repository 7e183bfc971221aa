// POST /v1/backup (admin token): an online backup streamed as the answer, a
// tar archive (lib/backup/format.ts). One at a time; the server keeps serving
// while the database is copied and the files are streamed.
import type { DatabaseSync } from 'node:sqlite';
import { pipeline } from 'node:stream/promises';
import { writeArchive } from '../backup/archive.ts';
import { takeSnapshot } from '../backup/snapshot.ts';
import type { BlobStore } from './blobs.ts';
import type { DataPaths } from './datadir.ts';
import { HttpError, type Router } from './http.ts';
import type { Logger } from './log.ts';
import type { ServerMetrics } from '../metrics/server.ts';

export function addBackupRoutes(r: Router, o: { db: DatabaseSync; paths: DataPaths; blobs: BlobStore; log: Logger; metrics?: Pick<ServerMetrics, 'backupFinished'> }): void {
  let running = false;
  r.add('POST', '/v1/backup', async (ctx) => {
    if (running) throw new HttpError(409, 'BACKUP_RUNNING', 'A backup is already running: wait for it to finish, then try again');
    running = true;
    const started = performance.now();
    try {
      const snap = await takeSnapshot({ db: o.db, paths: o.paths, blobs: o.blobs });
      try {
        const m = snap.manifest;
        ctx.audit = { ...ctx.audit, runs: m.counts.runs };
        ctx.res.writeHead(200, {
          'content-type': 'application/x-tar',
          'cache-control': 'no-store',
          'content-disposition': `attachment; filename="launcher-backup-${m.createdAt.replace(/[:.]/g, '-')}.tar"`,
        });
        try {
          await pipeline(writeArchive(snap), ctx.res);
        } catch (e) {
          // The client went away or a read failed: the archive ends without its
          // SHA256SUMS, which every reader refuses as incomplete.
          o.log.warn('Backup not completed', { error: (e as Error).message });
          o.metrics?.backupFinished(false, (performance.now() - started) / 1000);
          ctx.res.destroy();
          return;
        }
        o.metrics?.backupFinished(true, (performance.now() - started) / 1000);
        o.log.info('Backup written', { runs: m.counts.runs, workspaces: m.counts.workspaces, logs: m.counts.logs, ms: Math.round(performance.now() - started) });
      } finally {
        await snap.dispose();
      }
    } finally {
      running = false;
    }
  });
}
