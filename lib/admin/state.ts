// `launcher admin stack state list|pull|push|rollback STACK`: a managed-state
// stack's versions. pull writes the sealed file exactly as stored (open it with
// `age -d -i spacelift.key FILE`); push reads a terraform.tfstate, takes its
// serial and lineage from the plaintext here, seals it to the pool's active
// keys and uploads it naming the current version (refused if that moved, or
// while a run holds the state). The server never sees the plaintext.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { StackReply, StateList, StateRollbackRequest, StateVersionReply, StateVersionView } from '../protocol.ts';
import { fsyncDir } from '../atomic-file.ts';
import { readStateHead } from '../tool/state.ts';
import { createSealStream } from '../age/seal.ts';
import { seg } from './client.ts';
import { need, str, write, type Command } from './command.ts';
import { ago, byteSize, cell, json, table } from './format.ts';
import { activeKeyPems, getPool } from './pool.ts';
import { recipientsFor } from './seal.ts';

const ACTIONS = ['list', 'pull', 'push', 'rollback'];

function versionArg(v: string | undefined, flagName: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,9}$/.test(v)) throw new ConfigError(`Cannot use --${flagName} ${v}: expected a state version number from 1 (see launcher admin stack state list STACK)`);
  return Number(v);
}

function versionRows(list: StateVersionView[], current: number | null, now: number): string {
  return table(
    ['VERSION', 'SERIAL', 'LINEAGE', 'RUN', 'SOURCE', 'CREATED', 'SIZE', 'SHA256'],
    list.map((v) => [
      `${v.version}${v.version === current ? ' (current)' : ''}`, cell(v.serial), cell(v.lineage), cell(v.run), cell(v.source),
      ago(v.createdAt, now), byteSize(v.size), v.sha256,
    ]),
  );
}

export const state: Command = {
  usage: 'stack state list|pull|push|rollback STACK [FILE] [--version N] [-o FILE]',
  summary: 'a stack\'s sealed state versions: list; pull [--version N] -o FILE; push FILE (a terraform.tfstate, sealed here); rollback --version N',
  positionals: ['ACTION', 'STACK', 'FILE?'],
  options: {
    version: { type: 'string', arg: 'N', help: 'the state version (pull: default the current one; rollback: the one to restore)' },
    output: { type: 'string', short: 'o', arg: 'FILE', help: 'pull: where to write the sealed state (mode 0600, replaced atomically)' },
  },
  async run(ctx, args) {
    const [action, stackRef, file] = args.positionals as [string, string, string | undefined];
    if (!ACTIONS.includes(action)) throw new ConfigError(`Unknown state action "${action}": expected one of ${ACTIONS.join(', ')} (usage: launcher admin ${this.usage})`);
    if (file !== undefined && action !== 'push') throw new ConfigError(`Unexpected argument "${file}": only state push takes a FILE (pull writes to -o FILE)`);
    const base = `/v1/stacks/${seg(stackRef)}/state`;
    if (action === 'list') {
      const answer = await ctx.client().get<StateList>(base);
      if (ctx.json) return write(ctx.out, json(answer));
      const head = answer.holder ? `Held by run ${answer.holder}\n` : '';
      if (answer.versions.length === 0) return write(ctx.out, `${head}No state versions yet (keeps the last ${answer.history})\n`);
      return write(ctx.out, head + versionRows(answer.versions, answer.current, ctx.now()));
    }
    if (action === 'pull') {
      const out = resolve(ctx.cwd, need(args, 'output', 'the file to write the sealed state to', this.usage));
      const v = versionArg(str(args, 'version'), 'version');
      const body = await ctx.client().stream(`${base}/${v ?? 'current'}`, ctx.signal ? { signal: ctx.signal } : {});
      const tmp = `${out}.tmp-${randomBytes(4).toString('hex')}`;
      const fh = await open(tmp, 'wx', 0o600);
      let size = 0;
      let ok = false;
      try {
        for await (const c of body) { await fh.write(c as Buffer); size += (c as Buffer).length; }
        await fh.sync();
        await fh.close();
        await rename(tmp, out);
        await fsyncDir(dirname(out));
        ok = true;
      } finally {
        if (!ok) { await fh.close().catch(() => {}); await rm(tmp, { force: true }); }
      }
      if (ctx.json) return write(ctx.out, json({ file: out, size }));
      return write(ctx.out, `Sealed state written to ${out} (${byteSize(size)}); open it with: age -d -i spacelift.key ${out} > terraform.tfstate\n`);
    }
    if (action === 'push') {
      if (file === undefined) throw new ConfigError(`Missing FILE: the terraform.tfstate to import (usage: launcher admin ${this.usage})`);
      const path = resolve(ctx.cwd, file);
      let text: string;
      try { text = await readFile(path, 'utf8'); } catch (e) { throw new ConfigError(`Cannot read ${file}: ${(e as Error).message}; expected a terraform.tfstate file`); }
      const h = readStateHead(text.slice(0, 64 * 1024));
      if (!h) throw new ConfigError(`Cannot push ${file}: it is not a Terraform state file (no "serial" and "lineage" near the start); expected a terraform.tfstate`);
      try { JSON.parse(text); } catch (e) { throw new ConfigError(`Cannot push ${file}: it is not valid JSON (${(e as Error).message})`); }
      const { stack } = await ctx.client().get<StackReply>(`/v1/stacks/${seg(stackRef)}`);
      if (stack.pool == null) throw new ConfigError(`Cannot seal state for ${stackRef}: it is not attached to a pool (launcher admin stack attach ${stackRef} --pool ID)`);
      const pool = await getPool(ctx.client(), stack.pool);
      const recipients = recipientsFor(pool.id, activeKeyPems(pool));
      const cur = await ctx.client().get<StateList>(base);
      const sealed = createReadStream(path).pipe(createSealStream(recipients));
      const answer = await ctx.client().call<StateVersionReply>('PUT', base, {
        query: { base: cur.current === null ? 'none' : String(cur.current), serial: String(h.serial), lineage: h.lineage },
        body: sealed,
      });
      if (ctx.json) return write(ctx.out, json(answer));
      return write(ctx.out, `State version ${answer.version.version} stored for ${stack.name} (serial ${h.serial}, sealed here to ${recipients.length} pool key(s))\n`);
    }
    const v = versionArg(need(args, 'version', 'the state version to restore', this.usage), 'version')!;
    const answer = await ctx.client().post<StateVersionReply>(`${base}/rollback`, { version: v } satisfies StateRollbackRequest);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `State version ${answer.version.version} is now current: a copy of version ${v}\n`);
  },
};
