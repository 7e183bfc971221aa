// Reading the fields of a JSON request body: each refusal names the field and
// what would be accepted.
import { badField } from './refusal.ts';

export function str(body: Record<string, unknown>, name: string, opts: { optional?: boolean; max?: number; pattern?: RegExp; hint?: string } = {}): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw badField(name, opts.hint ?? 'a string');
  }
  if (typeof v !== 'string' || v.length > (opts.max ?? 1024 * 1024) || (opts.pattern && !opts.pattern.test(v))) throw badField(name, opts.hint ?? 'a string');
  return v;
}

export function bool(body: Record<string, unknown>, name: string, dflt: boolean): boolean {
  const v = body[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw badField(name, 'true or false');
  return v;
}

export function stringMap(body: Record<string, unknown>, name: string, keyPattern: RegExp, hint: string): Record<string, string> | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw badField(name, `an object of ${hint}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!keyPattern.test(k) || typeof val !== 'string') throw badField(`${name}.${k}`, `${hint}`);
    out[k] = val;
  }
  return out;
}
