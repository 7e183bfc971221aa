// `launcher server restore FILE --data DIR`: a backup from `launcher admin
// backup` becomes a new data directory (see lib/backup/restore.ts).
import { resolve } from 'node:path';
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { ConfigError } from '../errors.ts';
import { restoreBackup } from '../backup/restore.ts';
import { byteSize } from '../admin/format.ts';

const USAGE = `Usage: launcher server restore FILE --data DIR

Restores a backup made by 'launcher admin backup -o FILE' into DIR, which must
not exist or be empty. Every checksum and the database are checked before DIR
is created; then 'launcher server --data DIR' starts on it (same CA, so pool
tokens and worker certificates stay valid).

Options:
  --data DIR   the new data directory (required)
  --json       print the result as JSON
  -h, --help   show this help

Exit codes: 0 restored, 1 the backup is damaged or incomplete, 2 bad arguments
(missing FILE or --data, DIR not empty).
`;

export async function run(io: CommandIo): Promise<number> {
  let values;
  let positionals: string[];
  ({ values, positionals } = parseCommandArgs('server restore', {
    args: io.argv, allowPositionals: true,
    options: { data: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  }));
  if (values.help) { io.stdout.write(USAGE); return 0; }
  if (positionals.length !== 1) throw new ConfigError(positionals.length === 0 ? 'Missing FILE: expected launcher server restore FILE --data DIR' : `Unexpected argument "${positionals[1]}": expected launcher server restore FILE --data DIR`);
  if (!values.data) throw new ConfigError('Missing --data: the directory to restore into (it must not exist or be empty)');
  const r = await restoreBackup({ file: resolve(io.cwd, positionals[0]!), dataDir: resolve(io.cwd, values.data) });
  for (const p of r.problems) io.stderr.write(`Warning: the backup lacks a file its database refers to (it was missing when the backup was taken): ${p}\n`);
  if (values.json) {
    io.stdout.write(JSON.stringify({ dataDir: r.dataDir, pools: r.pools, runs: r.runs, files: r.files, bytes: r.bytes, manifest: r.manifest }, null, 2) + '\n');
    return 0;
  }
  const c = r.manifest.counts;
  io.stdout.write(`Restored ${r.dataDir} from a backup taken ${r.manifest.createdAt}: ${r.pools} pools, ${c.stacks} stacks, ${r.runs} runs, ` +
    `${c.workspaces} sealed workspaces, ${c.logs} log files (${byteSize(r.bytes)})\nStart it with: launcher server --data ${r.dataDir}\n`);
  return 0;
}
