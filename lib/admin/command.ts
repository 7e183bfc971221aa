// The shape of one `launcher admin NOUN VERB` command, the context it runs in,
// and the argument helpers they share. Usage faults are ConfigErrors (exit 2)
// that name the flag and what it accepts; server refusals are AdminErrors
// (exit 1) carrying the server's code.
import type { Writable } from 'node:stream';
import { ConfigError } from '../errors.ts';
import type { PhaseSpec } from '../protocol.ts';
import type { AdminClient } from './client.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Shown in help: "FILE", "K=V", "ID". */
  arg?: string;
  help: string;
}

export interface Args {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface AdminContext {
  /** Connects on first use, so usage errors come before connection errors. */
  client(): AdminClient;
  json: boolean;
  out: Writable;
  err: Writable;
  cwd: string;
  signal: AbortSignal | undefined;
  now(): number;
  /** Reads a file named by a flag; a missing file is a usage error naming the flag. */
  readFile(path: string, flag: string): string;
}

export interface Command {
  /** "pool create NAME --csr FILE" */
  usage: string;
  summary: string;
  options?: Record<string, OptionSpec>;
  /** Names of the positional arguments, "ID?" when optional, "ID..." for many. */
  positionals?: string[];
  run(ctx: AdminContext, args: Args): Promise<number | void>;
}

export type Noun = Record<string, Command>;

export function str(args: Args, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function list(args: Args, name: string): string[] {
  const v = args.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function flag(args: Args, name: string): boolean {
  return args.values[name] === true;
}

export function need(args: Args, name: string, what: string, usage: string): string {
  const v = str(args, name);
  if (v === undefined || v === '') throw new ConfigError(`Missing --${name}: ${what} (usage: launcher admin ${usage})`);
  return v;
}

/** `--phase NAME=SCRIPT` in order, and `--confirm NAME` marking phases that wait. */
export function phases(phaseArgs: string[], confirmArgs: string[]): PhaseSpec[] {
  const out: PhaseSpec[] = [];
  for (const item of phaseArgs) {
    const i = item.indexOf('=');
    if (i <= 0) throw new ConfigError(`Cannot use --phase "${item.length > 40 ? item.slice(0, 40) + '…' : item}": expected NAME=SCRIPT, e.g. --phase plan='terraform plan'`);
    const name = item.slice(0, i);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
      throw new ConfigError(`Cannot use --phase ${name}=…: "${name}" is not a phase name; expected letters, digits, ".", "_" and "-"`);
    }
    if (out.some((p) => p.name === name)) throw new ConfigError(`Cannot use --phase ${name}=… twice: phase names must be unique`);
    const script = item.slice(i + 1);
    if (script.trim() === '') throw new ConfigError(`Cannot use --phase ${name}=: the script is empty`);
    out.push({ name, script, confirm: false });
  }
  for (const c of confirmArgs) {
    const p = out.find((x) => x.name === c);
    if (!p) {
      const known = out.map((x) => x.name).join(', ') || 'none given';
      throw new ConfigError(`Cannot use --confirm ${c}: no phase named "${c}"; expected one of the --phase names (${known})`);
    }
    p.confirm = true;
  }
  return out;
}

/** A write that waits for the destination to drain (large listings, logs). */
export function write(out: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(text, (e) => (e ? reject(e) : resolve()));
  });
}
