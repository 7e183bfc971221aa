// Command-line parsing for every command: node:util parseArgs, with its
// errors turned into one kind of usage error (ConfigError USAGE, exit 2) that
// names the flag, what the command accepts, and where its help is.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../errors.ts';

type OptionFacts = { type: 'string' | 'boolean'; arg?: string };

/**
 * `command` as the user types it after `launcher` (e.g. "exec", "admin pool
 * create"); `hint` is added to the pointer to the help (e.g. where settings go instead).
 */
export function parseCommandArgs<T extends ParseArgsConfig>(command: string, config: T, hint?: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw usageError(e, command, (config.options ?? {}) as Record<string, OptionFacts>, hint);
  }
}

/** A parseArgs failure as a usage error naming the flag and the accepted ones. */
export function usageError(e: unknown, command: string, options: Record<string, OptionFacts>, hint?: string): ConfigError {
  const err = e as { code?: string; message?: string };
  const help = `see launcher ${command} --help${hint ? `; ${hint}` : ''}`;
  const m = /'(?:-\w, )?(-{1,2}[^' ,]+)/.exec(err.message ?? '');
  const flagName = m?.[1] ?? 'an option';
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const accepted = Object.keys(options).map((k) => `--${k}`).join(', ');
    return new ConfigError(`Unknown option ${flagName} for launcher ${command}: expected one of ${accepted} (${help})`, { code: 'USAGE' });
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const o = options[flagName.replace(/^-+/, '')];
    const what = o?.type === 'boolean' ? 'it takes no value' : `it needs a value${o?.arg ? ` (${o.arg})` : ''}`;
    return new ConfigError(`Cannot use ${flagName}: ${what} (${help})`, { code: 'USAGE' });
  }
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const arg = /'([^']*)'/.exec(err.message ?? '')?.[1];
    return new ConfigError(`Unexpected argument${arg === undefined ? '' : ` "${arg}"`}: launcher ${command} takes options only (${help})`, { code: 'USAGE' });
  }
  return new ConfigError(`Cannot read the arguments: ${(err.message ?? String(e)).replace(/\.$/, '')} (${help})`, { code: 'USAGE' });
}
