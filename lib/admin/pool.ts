// `launcher admin pool …`: create from a CSR (prints only the token, so
// `TOKEN=$(launcher admin pool create …)` works), list, show, reset, cycle,
// delete, and key rotation.
import { ConfigError } from '../errors.ts';
import type { CreatePoolRequest, CsrRequest, UpdatePoolRequest, KeyReply, KeyTokenReply, KeyView, PoolList, PoolReply, PoolTokenReply, PoolView } from '../protocol.ts';
import { seg, type AdminClient } from './client.ts';
import { need, str, write, type AdminContext, type Args, type Command, type Noun } from './command.ts';
import { ago, cell, fields, json, table } from './format.ts';

const CSR_OPTION = { csr: { type: 'string', arg: 'FILE', help: 'the pool\'s CSR (PEM), from launcher keygen or openssl req' } } as const;

function readCsr(ctx: AdminContext, args: Args, usage: string): string {
  const path = need(args, 'csr', 'the pool\'s certificate signing request (PEM file, from launcher keygen or openssl req -new -newkey rsa:4096 -nodes)', usage);
  const text = ctx.readFile(path, '--csr');
  if (!text.includes('-----BEGIN CERTIFICATE REQUEST-----') && !text.includes('-----BEGIN NEW CERTIFICATE REQUEST-----')) {
    throw new ConfigError(`Cannot use --csr ${path}: it holds no PEM certificate request; expected the .csr file from launcher keygen or openssl req`);
  }
  return text;
}

/** Public PEMs of the active keys: what secrets and workspaces are sealed to. */
export function activeKeyPems(pool: { keys: Pick<KeyView, 'state' | 'publicKeyPem'>[] }): string[] {
  return pool.keys.filter((k) => k.state === 'active').map((k) => k.publicKeyPem);
}

export async function getPool(client: AdminClient, id: string): Promise<PoolView> {
  const { pool } = await client.get<PoolReply>(`/v1/pools/${seg(id)}`);
  return pool;
}

function poolFields(p: PoolView, now: number): string {
  const keys = p.keys;
  return fields([
    ['id', cell(p.id)],
    ['name', cell(p.name)],
    ['description', p.description ? cell(p.description) : '-'],
    ['workers', cell(p.workers)],
    ['busy', cell(p.busy)],
    ['pending', cell(p.pending)],
    ['cycle', cell(p.cycle)],
    ['created', ago(p.createdAt, now)],
  ]) + '\n' + table(['KEY', 'STATE', 'SERIAL'], keys.map((k) => [k.id, cell(k.state), cell(k.serial)]));
}

async function printToken(ctx: AdminContext, answer: { token: string }): Promise<void> {
  if (ctx.json) return write(ctx.out, json(answer));
  if (typeof answer.token !== 'string') throw new ConfigError('The server answered without a token');
  return write(ctx.out, answer.token + '\n');
}

const create: Command = {
  usage: 'pool create NAME --csr FILE [--description TEXT]',
  summary: 'create a pool from a CSR; prints only its token',
  positionals: ['NAME'],
  options: { ...CSR_OPTION, description: { type: 'string', arg: 'TEXT', help: 'what the pool is for (shown by pool show and in the console)' } },
  async run(ctx, args) {
    const [name] = args.positionals;
    const csr = readCsr(ctx, args, this.usage);
    const description = str(args, 'description');
    const request: CreatePoolRequest = { name: name!, csr, ...(description !== undefined ? { description } : {}) };
    const answer = await ctx.client().post<PoolTokenReply>('/v1/pools', request);
    await printToken(ctx, answer);
    const pool = answer.pool;
    if (!ctx.json && pool) ctx.err.write(`Created pool ${cell(pool.id)} (${cell(pool.name)}); the token above goes into SPACELIFT_TOKEN\n`);
  },
};

const listCmd: Command = {
  usage: 'pool list',
  summary: 'pools with their worker, busy and pending-run counts',
  async run(ctx) {
    const answer = await ctx.client().get<PoolList>('/v1/pools');
    if (ctx.json) return write(ctx.out, json(answer));
    const rows = (answer.pools ?? []).map((p) => [cell(p.id), cell(p.name), cell(p.workers), cell(p.busy), cell(p.pending), String(activeKeyPems(p).length)]);
    return write(ctx.out, table(['ID', 'NAME', 'WORKERS', 'BUSY', 'PENDING', 'KEYS'], rows));
  },
};

const show: Command = {
  usage: 'pool show ID',
  summary: 'one pool with its keys',
  positionals: ['ID'],
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const answer = await ctx.client().get<PoolReply>(`/v1/pools/${seg(id)}`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, poolFields(answer.pool, ctx.now()));
  },
};

const update: Command = {
  usage: 'pool update ID --description TEXT',
  summary: 'change what the pool is for (the description; "" clears it)',
  positionals: ['ID'],
  options: { description: { type: 'string', arg: 'TEXT', help: 'what the pool is for, at most 1024 characters ("" clears it)' } },
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const description = str(args, 'description');
    if (description === undefined) throw new ConfigError(`Missing --description: the pool's new description (usage: launcher admin ${this.usage})`);
    if (description.length > 1024) throw new ConfigError(`Cannot use --description: it has ${description.length} characters; expected at most 1024`);
    const answer = await ctx.client().call<PoolReply>('PATCH', `/v1/pools/${seg(id)}`, { json: { description } satisfies UpdatePoolRequest });
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, answer.pool.description ? `Updated pool ${cell(answer.pool.name)}: ${cell(answer.pool.description)}\n` : `Updated pool ${cell(answer.pool.name)}: no description\n`);
  },
};

const reset: Command = {
  usage: 'pool reset ID --csr FILE',
  summary: 'new certificate from a new CSR; prints the new token, older certificates are refused from now on',
  positionals: ['ID'],
  options: CSR_OPTION,
  async run(ctx, args) {
    const csr = readCsr(ctx, args, this.usage);
    const id = args.positionals[0]!;
    const answer = await ctx.client().post<PoolTokenReply>(`/v1/pools/${seg(id)}/reset`, { csr } satisfies CsrRequest);
    await printToken(ctx, answer);
    if (!ctx.json) ctx.err.write(`Reset pool ${id}: launchers need the new token and the new key; older certificates are refused from now on\n`);
  },
};

const cycle: Command = {
  usage: 'pool cycle ID',
  summary: 'every worker of the pool exits after its current run',
  positionals: ['ID'],
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const answer = await ctx.client().post<PoolReply>(`/v1/pools/${seg(id)}/cycle`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `Cycling pool ${id}: every worker exits after its current run (cycle ${cell(answer.pool?.cycle)})\n`);
  },
};

const del: Command = {
  usage: 'pool delete ID',
  summary: 'delete a pool (refused while runs are active)',
  positionals: ['ID'],
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const answer = await ctx.client().call<PoolReply>('DELETE', `/v1/pools/${seg(id)}`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `Deleted pool ${id}\n`);
  },
};

const key: Command = {
  usage: 'pool key add ID --csr FILE | pool key retire ID KEYID',
  summary: 'add a key for rotation (prints its token) or retire one',
  positionals: ['add|retire', 'ID', 'KEYID?'],
  options: CSR_OPTION,
  async run(ctx, args) {
    const [action, ref, keyId] = args.positionals;
    if (action === 'add') {
      if (keyId !== undefined) throw new ConfigError(`Cannot use "${keyId}" with pool key add: expected launcher admin pool key add ID --csr FILE`);
      const csr = readCsr(ctx, args, 'pool key add ID --csr FILE');
      const id = ref!;
      const answer = await ctx.client().post<KeyTokenReply>(`/v1/pools/${seg(id)}/keys`, { csr } satisfies CsrRequest);
      await printToken(ctx, answer);
      const k = answer.key;
      if (!ctx.json && k) ctx.err.write(`Added key ${cell(k.id)} to pool ${id}; sealing now uses every active key\n`);
      return;
    }
    if (action === 'retire') {
      if (keyId === undefined) throw new ConfigError('Missing KEYID: expected launcher admin pool key retire ID KEYID (key ids are in launcher admin pool show ID)');
      const id = ref!;
      const answer = await ctx.client().post<KeyReply>(`/v1/pools/${seg(id)}/keys/${seg(keyId)}/retire`);
      if (ctx.json) return write(ctx.out, json(answer));
      return write(ctx.out, `Retired key ${keyId} of pool ${id}: its certificate is refused and sealing no longer uses it\n`);
    }
    throw new ConfigError(`Unknown pool key action "${action}": expected add or retire`);
  },
};

export const pool: Noun = { create, list: listCmd, show, update, reset, cycle, delete: del, key };
