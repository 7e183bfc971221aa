// Reading the audit log back (GET /v1/audit): the newest lines of
// DATA/audit.log, newest first. Only the file's tail is read, so a long-lived
// server's large log costs the same as a new one.
import { open } from 'node:fs/promises';

const TAIL_BYTES = 4 * 1024 * 1024;

export async function auditTail(path: string, limit: number): Promise<Record<string, unknown>[]> {
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
    const out: Record<string, unknown>[] = [];
    for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
      const l = lines[i]!.trim();
      if (!l) continue;
      try { out.push(JSON.parse(l) as Record<string, unknown>); } catch { /* a torn line after a crash */ }
    }
    return out;
  } finally {
    await fh.close();
  }
}
