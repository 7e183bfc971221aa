// `launcher admin stack …`: create, list, show, update, delete, attach, detach.
// Secret values are sealed here to the pool's active keys before the request
// is made: the server stores and forwards only the sealed bytes.
import { ConfigError } from '../errors.ts';
import { STACK_KINDS, type StackKind, type StackList, type StackReply, type StackRequest, type StackView } from '../protocol.ts';
import { seg, type AdminClient } from './client.ts';
import { keyValues } from '../key-values.ts';
import { list, need, phases, str, write, type Args, type Command, type Noun, type OptionSpec } from './command.ts';
import { ago, cell, fields, json, table, tags } from './format.ts';
import { activeKeyPems, getPool } from './pool.ts';
import { recipientsFor, sealSecretEnv } from './seal.ts';

const KINDS: readonly string[] = STACK_KINDS;

const STACK_OPTIONS: Record<string, OptionSpec> = {
  pool: { type: 'string', arg: 'ID', help: 'the worker pool that runs it (id or name)' },
  kind: { type: 'string', arg: 'stack|module', help: 'what it is (default stack)' },
  image: { type: 'string', arg: 'IMG', help: 'runner image; without it the launcher\'s default image' },
  env: { type: 'string', multiple: true, arg: 'K=V', help: 'plain environment variable (repeatable)' },
  secret: { type: 'string', multiple: true, arg: 'K=V', help: 'secret variable, sealed locally to the pool\'s keys (repeatable)' },
  phase: { type: 'string', multiple: true, arg: 'NAME=SCRIPT', help: 'a phase, run with sh -c, in the order given (repeatable)' },
  confirm: { type: 'string', multiple: true, arg: 'PHASE', help: 'the phase waits for run confirm before it starts (repeatable)' },
  name: { type: 'string', arg: 'NAME', help: 'new name (update only)' },
};

/** Seal `secrets` to every active key of `poolRef`, fetched fresh from the server. */
export async function sealForPool(client: AdminClient, poolRef: string, secrets: Record<string, string>): Promise<string> {
  const pool = await getPool(client, poolRef);
  return sealSecretEnv(secrets, recipientsFor(pool.id, activeKeyPems(pool)));
}

function kindOf(args: Args): StackKind | undefined {
  const kind = str(args, 'kind');
  if (kind !== undefined && !KINDS.includes(kind)) throw new ConfigError(`Cannot use --kind ${kind}: expected stack or module`);
  return kind as StackKind | undefined;
}

/** Fields common to create and update, from flags that were given; no I/O. */
function fieldsFromFlags(args: Args, usage: string): { fields: StackRequest; secrets: Record<string, string> | undefined } {
  const out: StackRequest = {};
  const kind = kindOf(args);
  if (kind !== undefined) out.kind = kind;
  const image = str(args, 'image');
  if (image !== undefined) out.image = image;
  if (args.values.env !== undefined) out.env = keyValues(list(args, 'env'), 'env', { envNames: true });
  const secrets = args.values.secret === undefined ? undefined : keyValues(list(args, 'secret'), 'secret', { envNames: true, secret: true });
  if (args.values.phase !== undefined) out.phases = phases(list(args, 'phase'), list(args, 'confirm'));
  else if (args.values.confirm !== undefined) throw new ConfigError(`Cannot use --confirm without --phase: give the phases too (usage: launcher admin ${usage})`);
  return { fields: out, secrets };
}

export function stackFields(s: StackView, now: number): string {
  const ph = s.phases;
  return fields([
    ['id', cell(s.id)],
    ['name', cell(s.name)],
    ['kind', cell(s.kind)],
    ['pool', cell(s.pool)],
    ['image', s.image == null ? '(launcher default)' : cell(s.image)],
    ['env', tags(s.env)],
    ['secret env', s.secretEnv ? 'sealed' : '-'],
    ['created', ago(s.createdAt, now)],
    ['updated', ago(s.updatedAt, now)],
  ]) + '\n' + table(['#', 'PHASE', 'CONFIRM', 'SCRIPT'], ph.map((p, i) => [String(i), cell(p.name), p.confirm ? 'yes' : 'no', cell(p.script).replace(/\n/g, '⏎')]));
}

const create: Command = {
  usage: 'stack create NAME --pool ID [--kind stack|module] [--image IMG] [--env K=V]… [--secret K=V]… --phase NAME=SCRIPT… [--confirm PHASE]…',
  summary: 'create a stack or module; --secret values are sealed locally',
  positionals: ['NAME'],
  options: Object.fromEntries(Object.entries(STACK_OPTIONS).filter(([k]) => k !== 'name')),
  async run(ctx, args) {
    const pool = need(args, 'pool', 'the worker pool that runs it', this.usage);
    if (list(args, 'phase').length === 0) throw new ConfigError(`Missing --phase: give at least one NAME=SCRIPT, e.g. --phase plan='terraform plan' (usage: launcher admin ${this.usage})`);
    const { fields: given, secrets } = fieldsFromFlags(args, this.usage);
    if (secrets !== undefined) given.secretEnv = await sealForPool(ctx.client(), pool, secrets);
    const request: StackRequest = { name: args.positionals[0]!, pool, ...given };
    const answer = await ctx.client().post<StackReply>('/v1/stacks', request);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `${cell(answer.stack?.id)}\n`);
  },
};

const listCmd: Command = {
  usage: 'stack list [--pool ID] [--kind stack|module]',
  summary: 'stacks and modules',
  options: { pool: STACK_OPTIONS.pool!, kind: STACK_OPTIONS.kind! },
  async run(ctx, args) {
    const answer = await ctx.client().get<StackList>('/v1/stacks', { pool: str(args, 'pool'), kind: kindOf(args) });
    if (ctx.json) return write(ctx.out, json(answer));
    const rows = (answer.stacks ?? []).map((s) => [
      cell(s.id), cell(s.name), cell(s.kind), cell(s.pool), s.image == null ? '(default)' : cell(s.image),
      String(s.phases.length), s.secretEnv ? 'yes' : 'no',
    ]);
    return write(ctx.out, table(['ID', 'NAME', 'KIND', 'POOL', 'IMAGE', 'PHASES', 'SECRETS'], rows));
  },
};

const show: Command = {
  usage: 'stack show ID',
  summary: 'one stack with its phases (secret values are sealed and not shown)',
  positionals: ['ID'],
  async run(ctx, args) {
    const answer = await ctx.client().get<StackReply>(`/v1/stacks/${seg(args.positionals[0]!)}`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, stackFields(answer.stack, ctx.now()));
  },
};

const update: Command = {
  usage: 'stack update ID [--name NAME] [--pool ID] [--kind K] [--image IMG] [--env K=V]… [--secret K=V]… [--phase NAME=SCRIPT…] [--confirm PHASE]…',
  summary: 'change a stack; --env, --secret and --phase each replace the whole set',
  positionals: ['ID'],
  options: STACK_OPTIONS,
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const poolFlag = str(args, 'pool');
    const { fields: patch, secrets } = fieldsFromFlags(args, this.usage);
    const name = str(args, 'name');
    if (name !== undefined) patch.name = name;
    if (poolFlag !== undefined) patch.pool = poolFlag;
    if (Object.keys(patch).length === 0 && secrets === undefined) throw new ConfigError(`Nothing to update: give at least one of --name, --pool, --kind, --image, --env, --secret, --phase`);
    if (secrets !== undefined) {
      // Seal to the pool the stack will be attached to after this update.
      let pool = poolFlag;
      if (pool === undefined) {
        const { stack } = await ctx.client().get<StackReply>(`/v1/stacks/${seg(id)}`);
        if (stack.pool == null) throw new ConfigError(`Cannot seal --secret for ${id}: it is not attached to a pool; pass --pool ID`);
        pool = stack.pool;
      }
      patch.secretEnv = await sealForPool(ctx.client(), pool, secrets);
    }
    const answer = await ctx.client().call<StackReply>('PATCH', `/v1/stacks/${seg(id)}`, { json: patch });
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, stackFields(answer.stack, ctx.now()));
  },
};

const del: Command = {
  usage: 'stack delete ID',
  summary: 'delete a stack (refused while it has active runs)',
  positionals: ['ID'],
  async run(ctx, args) {
    const answer = await ctx.client().call<StackReply>('DELETE', `/v1/stacks/${seg(args.positionals[0]!)}`);
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `Deleted ${cell(answer.stack?.kind ?? 'stack')} ${cell(answer.stack?.id ?? args.positionals[0])}\n`);
  },
};

const attach: Command = {
  usage: 'stack attach ID --pool ID',
  summary: 'attach a stack to a pool',
  positionals: ['ID'],
  options: { pool: STACK_OPTIONS.pool! },
  async run(ctx, args) {
    const pool = need(args, 'pool', 'the pool to attach to', this.usage);
    const id = args.positionals[0]!;
    const answer = await ctx.client().call<StackReply>('PATCH', `/v1/stacks/${seg(id)}`, { json: { pool } satisfies StackRequest });
    if (answer.stack?.secretEnv) {
      // Secrets were sealed to the old pool's keys; the new pool cannot open them.
      ctx.err.write(`Warning: the secret env of ${id} is sealed to the keys of the pool it was created for; run launcher admin stack update ${id} --secret K=V… to seal it to this pool\n`);
    }
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `Attached ${cell(answer.stack?.id)} to pool ${cell(answer.stack?.pool)}\n`);
  },
};

const detach: Command = {
  usage: 'stack detach ID',
  summary: 'detach a stack from its pool (triggers are refused until attached)',
  positionals: ['ID'],
  async run(ctx, args) {
    const answer = await ctx.client().call<StackReply>('PATCH', `/v1/stacks/${seg(args.positionals[0]!)}`, { json: { pool: null } satisfies StackRequest });
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, `Detached ${cell(answer.stack?.id)}\n`);
  },
};

export const stack: Noun = { create, list: listCmd, show, update, delete: del, attach, detach };
