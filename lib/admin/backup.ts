// `launcher admin backup -o FILE`: an online backup of the running server,
// downloaded and checked as it arrives (manifest, every entry's SHA-256, the
// closing checksum list); FILE appears only once the whole archive is there
// and correct (temp file beside it, fsync, rename), so a cron job never keeps
// half a backup under the real name.
import { open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { readArchive } from '../backup/archive.ts';
import { fsyncDir, tempPathFor } from '../atomic-file.ts';
import { need, write, type Command } from './command.ts';
import { byteSize, json } from './format.ts';

export const backup: Command = {
  usage: 'backup -o FILE',
  summary: 'online backup of the running server (database, keys, sealed workspaces, logs) into FILE',
  options: {
    output: { type: 'string', short: 'o', arg: 'FILE', help: 'where to write the backup (a tar archive; replaced atomically, mode 0600)' },
  },
  async run(ctx, args) {
    const file = resolve(ctx.cwd, need(args, 'output', 'the file to write the backup to', 'backup -o FILE'));
    const started = Date.now();
    const tmp = tempPathFor(file);
    const fh = await open(tmp, 'wx', 0o600);
    let ok = false;
    try {
      const body = await ctx.client().stream('/v1/backup', { bodyTimeout: 0, ...(ctx.signal ? { signal: ctx.signal } : {}) }, 'POST');
      let size = 0;
      const teed = (async function* () {
        for await (const c of body) {
          await fh.write(c as Buffer);
          size += (c as Buffer).length;
          yield c as Buffer;
        }
      })();
      const got = await readArchive(teed);
      await fh.sync();
      await fh.close();
      await rename(tmp, file);
      await fsyncDir(dirname(file));
      ok = true;
      const m = got.manifest;
      for (const p of got.end.problems) ctx.err.write(`Warning: the server's data directory lacks a file its database refers to: ${p}\n`);
      if (ctx.json) return write(ctx.out, json({ file, size, seconds: (Date.now() - started) / 1000, manifest: m, files: got.end.files, problems: got.end.problems }));
      const c = m.counts;
      return write(ctx.out, `Backup written to ${file} (${byteSize(size)} in ${((Date.now() - started) / 1000).toFixed(1)}s): ` +
        `${c.pools} pools, ${c.stacks} stacks, ${c.runs} runs, ${c.workspaces} sealed workspaces, ${c.logs} log files\n`);
    } finally {
      if (!ok) {
        await fh.close().catch(() => {});
        await rm(tmp, { force: true });
      }
    }
  },
};
