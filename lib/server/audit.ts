// Reading the audit log back (GET /v1/audit): the newest lines of
// DATA/audit.log, newest first. Only the file's tail is read, so a long-lived
// server's large log costs the same as a new one.
import { open } from 'node:fs/promises';
import type { AuditEntry } from '../protocol.ts';

const TAIL_BYTES = 4 * 1024 * 1024;

/** A parsed line that has the fields every audit line is written with. */
function isAuditEntry(v: unknown): v is AuditEntry {
  const o = v as Partial<AuditEntry> | null;
  return typeof o === 'object' && o !== null && typeof o.time === 'string' && typeof o.action === 'string' && typeof o.status === 'number';
}

export async function auditTail(path: string, limit: number): Promise<AuditEntry[]> {
  let fh;
  try { fh = await open(path, 'r'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    let lines = buf.toString('utf8').split('\n');
    if (start > 0) lines = lines.slice(1); // the first line may be cut
    const out: AuditEntry[] = [];
    for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
      const l = lines[i]!.trim();
      if (!l) continue;
      let entry: unknown;
      try { entry = JSON.parse(l); } catch { continue; /* a torn line after a crash */ }
      if (isAuditEntry(entry)) out.push(entry);
    }
    return out;
  } finally {
    await fh.close();
  }
}
