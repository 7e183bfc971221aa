// `launcher admin stack …`: create, list, show, update, delete, attach, detach.
// Secret values are sealed here to the pool's active keys before the request
// is made: the server stores and forwards only the sealed bytes.
import { ConfigError } from '../errors.ts';
import { STACK_KINDS, type StackKind, type StackList, type StackDeleteReply, type StackReply, type StackRequest, type StackView, type WebhookReply } from '../protocol.ts';
import { seg, type AdminClient } from './client.ts';
import { keyValues } from '../key-values.ts';
import { flag, list, need, phases, str, write, type AdminContext, type Args, type Command, type Noun, type OptionSpec } from './command.ts';
import { HOOK_POINTS, TOOL_NAMES, TOOL_STEPS as STEPS, type ToolConfig } from '../protocol.ts';

type ToolPatch = Partial<ToolConfig>;
import { DEFAULT_STATE_HISTORY } from '../tool/state.ts';
import { ago, cell, fields, json, table, tags } from './format.ts';
import { activeKeyPems, getPool } from './pool.ts';
import { recipientsFor, sealSecretEnv, sealText } from './seal.ts';
import { readFileSync } from 'node:fs';
import { state } from './state.ts';
import { schedule } from './schedule.ts';

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
  tool: { type: 'string', arg: 'terraform|tofu', help: 'run the tool workflow (init, plan, confirm, apply) instead of phases; "none" on update goes back to phases' },
  'tool-binary': { type: 'string', arg: 'NAME|PATH', help: 'the tool\'s executable in the runner image (default: the tool\'s name)' },
  'project-root': { type: 'string', arg: 'DIR', help: 'directory inside the source that phases and steps run in (default the root)' },
  var: { type: 'string', multiple: true, arg: 'K=V', help: 'a Terraform variable, sealed locally like --secret (as TF_VAR_K) (repeatable)' },
  'var-file': { type: 'string', multiple: true, arg: 'PATH', help: 'a -var-file for plan, relative to the project root (repeatable)' },
  hook: { type: 'string', multiple: true, arg: 'POINT=CMD', help: `a shell command at ${HOOK_POINTS.join('|')} (repeatable, in order)` },
  arg: { type: 'string', multiple: true, arg: 'STEP=ARG', help: `an extra argument for one step (${STEPS.join('|')}) (repeatable, in order)` },
  autodeploy: { type: 'boolean', help: 'tracked runs apply without waiting for confirmation' },
  'no-autodeploy': { type: 'boolean', help: 'tracked runs wait for confirmation before apply (update)' },
  'manage-state': { type: 'string', arg: 'true|false', help: 'keep the state sealed and versioned by the server (default true with --tool); false leaves your own backend' },
  'state-history': { type: 'string', arg: 'N', help: `state versions to keep (default ${DEFAULT_STATE_HISTORY})` },
  repo: { type: 'string', arg: 'URL', help: 'Git repository the workers fetch the run\'s commit from (https://, http:// or file:///path; "none" removes it)' },
  branch: { type: 'string', arg: 'BRANCH', help: 'the branch tracked runs come from (default main)' },
  'repo-credential': { type: 'string', arg: 'USER:TOKEN', help: 'credential for the repository, sealed locally to the pool\'s keys' },
  'repo-credential-file': { type: 'string', arg: 'FILE', help: 'the same, read from FILE ("-" for standard input)' },
  'trigger-path': { type: 'string', multiple: true, arg: 'GLOB', help: 'run on push only when a changed path matches (repeatable; replaces the set)' },
  'propose-branches': { type: 'string', arg: 'on|off', help: 'pushes to other branches queue proposed runs (default on)' },
};

const TOOL_FLAGS = ['tool-binary', 'var-file', 'hook', 'arg', 'autodeploy', 'no-autodeploy', 'manage-state'];

/** The tool object from flags, applied over `base` (the stack's current tool on update). */
export function toolFromFlags(args: Args, base: ToolPatch | null): ToolPatch | null | undefined {
  const name = str(args, 'tool');
  const touched = TOOL_FLAGS.some((f) => args.values[f] !== undefined);
  if (name === undefined && !touched) return undefined;
  if (name === 'none') {
    if (touched) throw new ConfigError('Cannot use --tool none with tool options: a stack without a tool has phases instead');
    return null;
  }
  if (name !== undefined && !(TOOL_NAMES as readonly string[]).includes(name)) throw new ConfigError(`Cannot use --tool ${name}: expected terraform or tofu${base === undefined ? '' : ' (or none)'}`);
  if (name === undefined && base === null) throw new ConfigError('Cannot use tool options without --tool: the stack has no tool (add --tool terraform|tofu)');
  const out: ToolPatch = { ...(base ?? {}), ...(name !== undefined ? { name: name as ToolConfig['name'] } : {}) };
  const bin = str(args, 'tool-binary');
  if (bin !== undefined) out.binary = bin;
  if (args.values['var-file'] !== undefined) out.varFiles = list(args, 'var-file');
  if (args.values.hook !== undefined) {
    const hooks: Record<string, string[]> = {};
    for (const h of list(args, 'hook')) {
      const i = h.indexOf('=');
      const point = i < 0 ? h : h.slice(0, i);
      if (i <= 0 || !(HOOK_POINTS as readonly string[]).includes(point) || h.slice(i + 1).trim() === '') {
        throw new ConfigError(`Cannot use --hook ${h.length > 40 ? h.slice(0, 40) + '…' : h}: expected POINT=COMMAND with POINT one of ${HOOK_POINTS.join(', ')}`);
      }
      (hooks[point] ??= []).push(h.slice(i + 1));
    }
    out.hooks = hooks;
  }
  if (args.values.arg !== undefined) {
    const extra: Record<string, string[]> = {};
    for (const a of list(args, 'arg')) {
      const i = a.indexOf('=');
      const step = i < 0 ? a : a.slice(0, i);
      if (i <= 0 || !(STEPS as readonly string[]).includes(step)) throw new ConfigError(`Cannot use --arg ${a}: expected STEP=ARGUMENT with STEP one of ${STEPS.join(', ')}, e.g. --arg plan=-parallelism=4`);
      (extra[step] ??= []).push(a.slice(i + 1));
    }
    out.args = extra;
  }
  if (flag(args, 'autodeploy') && flag(args, 'no-autodeploy')) throw new ConfigError('Cannot use --autodeploy with --no-autodeploy: choose one');
  if (flag(args, 'autodeploy')) out.autodeploy = true;
  if (flag(args, 'no-autodeploy')) out.autodeploy = false;
  const ms = str(args, 'manage-state');
  if (ms !== undefined) {
    if (ms !== 'true' && ms !== 'false') throw new ConfigError(`Cannot use --manage-state ${ms}: expected true or false, e.g. --manage-state=false`);
    out.manageState = ms === 'true';
  }
  return out;
}

/** --var K=V as TF_VAR_K, sealed with the secrets (the server never sees variable values). */
function varsAsSecrets(args: Args): Record<string, string> | undefined {
  if (args.values.var === undefined) return undefined;
  const vars = keyValues(list(args, 'var'), 'var', { envNames: true, secret: true });
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [`TF_VAR_${k}`, v]));
}

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
  const plainSecrets = args.values.secret === undefined ? undefined : keyValues(list(args, 'secret'), 'secret', { envNames: true, secret: true });
  const vars = varsAsSecrets(args);
  const secrets = plainSecrets === undefined && vars === undefined ? undefined : { ...(plainSecrets ?? {}), ...(vars ?? {}) };
  const root = str(args, 'project-root');
  if (root !== undefined) out.projectRoot = root;
  const hist = str(args, 'state-history');
  if (hist !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(hist)) throw new ConfigError(`Cannot use --state-history ${hist}: expected a whole number from 1 to 100000`);
    out.stateHistory = Number(hist);
  }
  if (args.values.phase !== undefined) out.phases = phases(list(args, 'phase'), list(args, 'confirm'));
  else if (args.values.confirm !== undefined) throw new ConfigError(`Cannot use --confirm without --phase: give the phases too (usage: launcher admin ${usage})`);
  const repo = str(args, 'repo');
  if (repo !== undefined) out.repo = repo === 'none' ? null : repo;
  const branch = str(args, 'branch');
  if (branch !== undefined) out.branch = branch;
  if (args.values['trigger-path'] !== undefined) out.triggerPaths = list(args, 'trigger-path').filter((g) => g !== '');
  const propose = str(args, 'propose-branches');
  if (propose !== undefined) {
    if (!['on', 'off'].includes(propose)) throw new ConfigError(`Cannot use --propose-branches ${propose}: expected on or off`);
    out.proposeBranches = propose === 'on';
  }
  return { fields: out, secrets };
}

/** `--repo-credential USER:TOKEN` or `--repo-credential-file FILE|-`, checked; never echoed. */
function credentialFromFlags(ctx: AdminContext, args: Args): { username: string; password: string } | undefined {
  const inline = str(args, 'repo-credential');
  const file = str(args, 'repo-credential-file');
  if (inline !== undefined && file !== undefined) throw new ConfigError('Cannot use --repo-credential with --repo-credential-file: give the credential once');
  let text: string;
  if (inline !== undefined) text = inline;
  else if (file === '-') text = readFileSync(0, 'utf8');
  else if (file !== undefined) text = ctx.readFile(file, 'repo-credential-file');
  else return undefined;
  text = text.replace(/\r?\n$/, '');
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1 || /[\r\n]/.test(text)) {
    throw new ConfigError(`Cannot use the repository credential${file !== undefined ? ` in ${file}` : ''} (value not shown): expected USER:TOKEN on one line, e.g. git:ghp_… or oauth2:glpat-…`);
  }
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

async function sealCredential(client: AdminClient, poolRef: string, c: { username: string; password: string }): Promise<string> {
  const pool = await getPool(client, poolRef);
  return sealText(JSON.stringify(c), recipientsFor(String(pool.id), activeKeyPems(pool)));
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
    ...(s.projectRoot && s.projectRoot !== '.' ? [['project root', s.projectRoot] as [string, string]] : []),
    ...toolRows(s),
    ['repository', s.repo == null ? '- (workspace uploaded with each trigger)' : `${cell(s.repo)} (branch ${cell(s.branch)})`],
    ...(s.repo == null ? [] : [
      ['credential', s.repoCredential ? 'sealed' : '-'] as [string, string],
      ['trigger paths', Array.isArray(s.triggerPaths) && s.triggerPaths.length > 0 ? (s.triggerPaths as string[]).join(', ') : '(any change)'] as [string, string],
      ['proposed runs', s.proposeBranches === false ? 'off' : 'on pushes to other branches'] as [string, string],
    ]),
    ['created', ago(s.createdAt, now)],
    ['updated', ago(s.updatedAt, now)],
  ]) + (ph.length ? '\n' + table(['#', 'PHASE', 'CONFIRM', 'SCRIPT'], ph.map((p, i) => [String(i), cell(p.name), p.confirm ? 'yes' : 'no', cell(p.script).replace(/\n/g, '⏎')])) : '');
}

function toolRows(s: StackView): [string, string][] {
  const t = s.tool;
  if (!t) return [];
  const hooks = Object.entries(t.hooks ?? {}).flatMap(([k, v]) => (v ?? []).map((c) => `${k}: ${c}`));
  return [
    ['tool', `${cell(t.name)} (${cell(t.binary)})`],
    ['autodeploy', t.autodeploy ? 'yes' : 'no (tracked runs wait for confirm before apply)'],
    ['managed state', t.manageState ? `yes: version ${cell(s.stateVersion)}${s.stateHolder ? `, held by ${cell(s.stateHolder)}` : ''}, keeps ${cell(s.stateHistory)}` : 'no (the code\'s own backend)'],
    ['var files', (t.varFiles ?? []).join(', ') || '-'],
    ['hooks', hooks.join('; ') || '-'],
    ['drift', s.drifted ? `drifted (run ${cell(s.driftedRun)})` : '-'],
  ];
}

const create: Command = {
  usage: 'stack create NAME --pool ID [--kind stack|module] [--image IMG] [--env K=V]… [--secret K=V]… (--phase NAME=SCRIPT… [--confirm PHASE]… | --tool terraform|tofu [tool options]) [--project-root DIR] [--repo URL [--branch B] [--repo-credential USER:TOKEN] [--trigger-path GLOB]…]',
  summary: 'create a stack or module; --secret values are sealed locally',
  positionals: ['NAME'],
  options: Object.fromEntries(Object.entries(STACK_OPTIONS).filter(([k]) => k !== 'name')),
  async run(ctx, args) {
    const pool = need(args, 'pool', 'the worker pool that runs it', this.usage);
    const tool = toolFromFlags(args, null);
    if (tool && list(args, 'phase').length > 0) throw new ConfigError('Cannot use --phase with --tool: the tool\'s steps (init, plan, apply) are the phases');
    if (!tool && list(args, 'phase').length === 0) throw new ConfigError(`Missing --phase or --tool: give at least one NAME=SCRIPT, e.g. --phase plan='terraform plan', or --tool terraform (usage: launcher admin ${this.usage})`);
    const { fields: given, secrets } = fieldsFromFlags(args, this.usage);
    if (tool) given.tool = tool;
    if (secrets !== undefined) given.secretEnv = await sealForPool(ctx.client(), pool, secrets);
    const credential = credentialFromFlags(ctx, args);
    if (credential) given.repoCredential = await sealCredential(ctx.client(), pool, credential);
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
      s.tool ? cell(s.tool.name) : String(s.phases.length), s.secretEnv ? 'yes' : 'no',
      s.stateVersion == null ? '-' : `v${s.stateVersion}`, s.drifted ? 'DRIFTED' : '-',
    ]);
    return write(ctx.out, table(['ID', 'NAME', 'KIND', 'POOL', 'IMAGE', 'PHASES/TOOL', 'SECRETS', 'STATE', 'DRIFT'], rows));
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
  usage: 'stack update ID [--name NAME] [--pool ID] [--kind K] [--image IMG] [--env K=V]… [--secret K=V]… [--var K=V]… [--phase NAME=SCRIPT…] [--confirm PHASE]… [--tool T] [tool options] [--repo URL|none] [--branch B] [--repo-credential USER:TOKEN] [--trigger-path GLOB]… [--propose-branches on|off]',
  summary: 'change a stack; --env, --secret/--var (sealed together), --phase and --trigger-path each replace the whole set',
  positionals: ['ID'],
  options: STACK_OPTIONS,
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const poolFlag = str(args, 'pool');
    const { fields: patch, secrets } = fieldsFromFlags(args, this.usage);
    const name = str(args, 'name');
    if (name !== undefined) patch.name = name;
    if (poolFlag !== undefined) patch.pool = poolFlag;
    if (str(args, 'tool') !== undefined || TOOL_FLAGS.some((f) => args.values[f] !== undefined)) {
      const { stack } = await ctx.client().get<StackReply>(`/v1/stacks/${seg(id)}`);
      const tool = toolFromFlags(args, stack.tool ?? null);
      if (tool !== undefined) patch.tool = tool;
    }
    const credential = credentialFromFlags(ctx, args);
    if (Object.keys(patch).length === 0 && secrets === undefined && credential === undefined) throw new ConfigError(`Nothing to update: give at least one of --name, --pool, --kind, --image, --env, --secret, --var, --phase, --tool, --project-root, --state-history, --repo, --branch, --repo-credential, --trigger-path, --propose-branches`);
    if (secrets !== undefined || credential !== undefined) {
      // Seal to the pool the stack will be attached to after this update.
      let pool = poolFlag;
      if (pool === undefined) {
        const { stack } = await ctx.client().get<StackReply>(`/v1/stacks/${seg(id)}`);
        if (stack.pool == null) throw new ConfigError(`Cannot seal --secret or --repo-credential for ${id}: it is not attached to a pool; pass --pool ID`);
        pool = stack.pool;
      }
      if (secrets !== undefined) patch.secretEnv = await sealForPool(ctx.client(), pool, secrets);
      if (credential !== undefined) patch.repoCredential = await sealCredential(ctx.client(), pool, credential);
    }
    const answer = await ctx.client().call<StackReply>('PATCH', `/v1/stacks/${seg(id)}`, { json: patch });
    if (ctx.json) return write(ctx.out, json(answer));
    return write(ctx.out, stackFields(answer.stack, ctx.now()));
  },
};

const del: Command = {
  usage: 'stack delete ID [--purge-state]',
  summary: 'delete a stack (refused while it has active runs); its state versions stay unless --purge-state',
  positionals: ['ID'],
  options: { 'purge-state': { type: 'boolean', help: 'also delete every stored state version (cannot be undone)' } },
  async run(ctx, args) {
    const answer = await ctx.client().call<StackDeleteReply>('DELETE', `/v1/stacks/${seg(args.positionals[0]!)}`, { query: { purgeState: flag(args, 'purge-state') ? '1' : undefined } });
    if (ctx.json) return write(ctx.out, json(answer));
    const id = cell(answer.stack?.id ?? args.positionals[0]);
    const kept = answer.purgedStateVersions !== undefined ? `; ${answer.purgedStateVersions} state version(s) purged`
      : answer.stack?.stateVersion != null ? `; its state versions are kept (launcher admin stack state list ${id})` : '';
    return write(ctx.out, `Deleted ${cell(answer.stack?.kind ?? 'stack')} ${id}${kept}\n`);
  },
};

const webhook: Command = {
  usage: 'stack webhook ID',
  summary: 'the URL and secret to give the Git server for push events (one webhook serves every stack on the repository)',
  positionals: ['ID'],
  async run(ctx, args) {
    const answer = await ctx.client().get<WebhookReply>(`/v1/stacks/${seg(args.positionals[0]!)}/webhook`);
    if (ctx.json) return write(ctx.out, json(answer));
    const w = answer.webhook;
    return write(ctx.out, fields([
      ['url', cell(w.url)],
      ['secret', cell(w.secret)],
      ['content type', cell(w.contentType)],
      ['events', w.events.join(', ')],
      ['repository', cell(w.repo)],
      ['stacks', w.stacks.join(', ')],
    ]) + 'GitHub, Gitea, Forgejo: set the secret as the webhook secret (X-Hub-Signature-256). GitLab: set it as the secret token (X-Gitlab-Token).\n' +
      'The Git server must trust the server\'s CA certificate (DATA/ca.crt) or the URL must go through a proxy it trusts.\n');
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
    if (answer.stack?.repoCredential) {
      ctx.err.write(`Warning: the repository credential of ${id} is sealed to the keys of the pool it was created for; run launcher admin stack update ${id} --repo-credential USER:TOKEN to seal it to this pool\n`);
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

export const stack: Noun = { create, list: listCmd, show, update, delete: del, attach, detach, webhook, state, schedule };
