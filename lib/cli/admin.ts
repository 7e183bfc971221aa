// `launcher admin NOUN VERB …`: the scriptable client of the server's admin API.
// This file only parses argv, resolves the connection and dispatches to the
// command tables in lib/admin/; every command takes --json.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { usageError } from './args.ts';
import type { CommandIo } from './io.ts';
import { ConfigError, LauncherError } from '../errors.ts';
import { AdminClient, AdminError } from '../admin/client.ts';
import { resolveConnection } from '../admin/connection.ts';
import type { AdminContext, Args, Command, Noun, OptionSpec } from '../admin/command.ts';
import { pool } from '../admin/pool.ts';
import { worker } from '../admin/worker.ts';
import { stack } from '../admin/stack.ts';
import { queue, run as runs } from '../admin/run.ts';
import { backup } from '../admin/backup.ts';
import { gc } from '../admin/gc.ts';

/** Nouns with verbs, and commands that are one word (`launcher admin backup -o FILE`). */
export const NOUNS: Record<string, Noun | Command> = { pool, worker, stack, run: runs, queue, backup, gc };

const isCommand = (n: Noun | Command): n is Command => typeof (n as Command).run === 'function' && typeof (n as Command).usage === 'string';
const commandsOf = (n: Noun | Command): Command[] => (isCommand(n) ? [n] : Object.values(n));

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  server: { type: 'string', arg: 'URL', help: 'server URL, https://HOST:PORT (env LAUNCHER_SERVER)' },
  'admin-token': { type: 'string', arg: 'TOKEN', help: 'admin token (env LAUNCHER_ADMIN_TOKEN)' },
  ca: { type: 'string', arg: 'FILE', help: 'the server\'s CA certificate, PEM (env LAUNCHER_CA)' },
  data: { type: 'string', arg: 'DIR', help: 'the server\'s data directory: token, CA and URL from there (on the server host)' },
  json: { type: 'boolean', help: 'print the API\'s JSON answer instead of text for people' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
};

function optionLines(opts: Record<string, OptionSpec>): string {
  const rows = Object.entries(opts).map(([name, o]) => [`  ${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`, o.help]);
  const w = Math.max(...rows.map(([a]) => a!.length));
  return rows.map(([a, h]) => `${a!.padEnd(w)}  ${h}`).join('\n') + '\n';
}

export function usage(): string {
  const lines = Object.values(NOUNS).flatMap((noun) => commandsOf(noun).map((c) => `  launcher admin ${c.usage}`));
  return `Usage: launcher admin NOUN VERB [ARGS] [OPTIONS]\n\nCommands:\n${lines.join('\n')}\n\nConnection and output (every command):\n${optionLines(GLOBAL_OPTIONS)}\nRun 'launcher admin NOUN VERB --help' for a command's options.\n`;
}

function nounUsage(name: string, noun: Noun): string {
  const w = Math.max(...Object.values(noun).map((c) => c.usage.length));
  const lines = Object.values(noun).map((c) => `  launcher admin ${c.usage.padEnd(w)}  ${c.summary}`);
  return `Usage:\n${lines.join('\n')}\n\nRun 'launcher admin ${name} VERB --help' for a command's options.\n`;
}

function commandUsage(c: Command): string {
  const own = c.options && Object.keys(c.options).length > 0 ? `\nOptions:\n${optionLines(c.options)}` : '';
  return `Usage: launcher admin ${c.usage}\n\n${c.summary}\n${own}\nConnection and output:\n${optionLines(GLOBAL_OPTIONS)}`;
}

export function checkPositionals(c: Command, positionals: string[]): void {
  const names = c.positionals ?? [];
  const required = names.filter((n) => !n.endsWith('?') && !n.endsWith('...')).length;
  const many = names.some((n) => n.endsWith('...'));
  if (positionals.length < required) {
    const missing = names[positionals.length]!;
    throw new ConfigError(`Missing ${missing}: expected launcher admin ${c.usage}`, { code: 'USAGE' });
  }
  if (!many && positionals.length > names.length) {
    throw new ConfigError(`Unexpected argument "${positionals[names.length]}": expected launcher admin ${c.usage}`, { code: 'USAGE' });
  }
}

/** Parse `NOUN VERB …` into the command and its arguments (throws ConfigError). */
export function parseCommand(argv: string[]): { command: Command | null; help: string | null; args: Args } {
  const empty: Args = { values: {}, positionals: [] };
  // Connection flags may come before the noun too (`launcher admin --data DIR pool list`):
  // move them behind the verb, where parseArgs reads them with the command's own.
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('--') && argv[i] !== '--help') {
    const name = argv[i]!.slice(2).split('=')[0]!;
    const o = GLOBAL_OPTIONS[name];
    if (!o) throw new ConfigError(`Unknown option --${name} before the command: expected one of ${Object.keys(GLOBAL_OPTIONS).map((k) => `--${k}`).join(', ')}`, { code: 'USAGE' });
    const takesValue = o.type === 'string' && !argv[i]!.includes('=');
    leading.push(...argv.slice(i, i + (takesValue ? 2 : 1)));
    i += takesValue ? 2 : 1;
  }
  const [nounName, verbName, ...afterVerb] = argv.slice(i);
  if (nounName === undefined || nounName === '--help' || nounName === '-h' || nounName === 'help') return { command: null, help: usage(), args: empty };
  const noun = Object.hasOwn(NOUNS, nounName) ? NOUNS[nounName] : undefined;
  if (!noun) throw new ConfigError(`Unknown admin command "${nounName}": expected one of ${Object.keys(NOUNS).join(', ')}`, { code: 'USAGE' });
  let command: Command | undefined;
  let rest: string[];
  if (isCommand(noun)) {
    command = noun;
    rest = [...argv.slice(i + 1), ...leading];
  } else {
    rest = [...afterVerb, ...leading];
    if (verbName === undefined || verbName === '--help' || verbName === '-h') return { command: null, help: nounUsage(nounName, noun), args: empty };
    command = Object.hasOwn(noun, verbName) ? noun[verbName] : undefined;
    if (!command) throw new ConfigError(`Unknown command "${nounName} ${verbName}": expected one of ${Object.keys(noun).map((v) => `${nounName} ${v}`).join(', ')}`, { code: 'USAGE' });
  }
  const allowed = { ...GLOBAL_OPTIONS, ...command.options };
  let parsed: Args;
  try {
    const r = parseArgs({
      args: rest, allowPositionals: true, strict: true,
      options: Object.fromEntries(Object.entries(allowed).map(([k, o]) => [k, { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) }])),
    });
    parsed = { values: r.values as Args['values'], positionals: r.positionals };
  } catch (e) {
    throw usageError(e, `admin ${command.usage.split(' ').filter((w) => /^[a-z]+$/.test(w)).slice(0, 2).join(' ')}`, allowed);
  }
  if (parsed.values.help === true) return { command: null, help: commandUsage(command), args: parsed };
  checkPositionals(command, parsed.positionals);
  return { command, help: null, args: parsed };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export async function run(io: CommandIo): Promise<number> {
  let client: AdminClient | undefined;
  try {
    const { command, help, args } = parseCommand(io.argv);
    if (help !== null) {
      io.stdout.write(help);
      return 0;
    }
    const v = args.values;
    const s = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
    const ctx: AdminContext = {
      client() {
        if (client === undefined) {
          const data = s('data');
          const conn = resolveConnection(
            { server: s('server'), adminToken: s('admin-token'), ca: s('ca') === undefined ? undefined : resolve(io.cwd, s('ca')!), data: data === undefined ? undefined : resolve(io.cwd, data) },
            io.env,
            readText,
          );
          client = new AdminClient(conn);
        }
        return client;
      },
      json: v.json === true,
      out: io.stdout,
      err: io.stderr,
      cwd: io.cwd,
      // No signal: Ctrl-C ends an admin command the default way, at once.
      signal: undefined,
      now: () => Date.now(),
      readFile(path, flagName) {
        const text = readText(resolve(io.cwd, path));
        if (text === undefined) throw new ConfigError(`Cannot read ${flagName} ${path}: no such file`);
        return text;
      },
    };
    const code = await command!.run(ctx, args);
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    if (e instanceof AdminError) {
      io.stderr.write(`launcher admin: ${e.message} (${e.code})\n`);
      return 1;
    }
    if (e instanceof LauncherError) {
      io.stderr.write(`launcher admin: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  } finally {
    await client?.close().catch(() => undefined);
  }
}
