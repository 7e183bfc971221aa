// `K=V` items from a repeatable command-line flag (--env, --secret,
// --metadata), for every command that takes them: one set of rules and
// messages. The value may contain "="; a key given twice is refused rather
// than silently overridden; a malformed --secret is never echoed (it may be
// the bare value).
import { ConfigError } from './errors.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `envNames` restricts keys to what a shell accepts as a variable name (for
 * --env and --secret); metadata tags allow any key without "=".
 */
export function keyValues(values: readonly string[], flagName: string, opts: { envNames?: boolean; secret?: boolean } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  const example = opts.envNames ? `, e.g. --${flagName} TF_VAR_region=eu-west-1` : '';
  for (const item of values) {
    const i = item.indexOf('=');
    const key = i < 0 ? '' : item.slice(0, i);
    if (i <= 0) {
      const shown = opts.secret ? '(value not shown)' : `"${item.length > 40 ? item.slice(0, 40) + '…' : item}"`;
      throw new ConfigError(`Cannot use --${flagName} ${shown}: expected KEY=VALUE${example}`);
    }
    if (opts.envNames && !ENV_NAME.test(key)) {
      throw new ConfigError(`Cannot use --${flagName} ${key}=…: "${key}" is not a variable name; expected letters, digits and _ not starting with a digit`);
    }
    if (Object.hasOwn(out, key)) throw new ConfigError(`Cannot use --${flagName} ${key}=… twice: give each key once`);
    out[key] = item.slice(i + 1);
  }
  return out;
}
