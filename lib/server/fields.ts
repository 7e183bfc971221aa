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

/**
 * A whole number written plainly in decimal (a query or path parameter):
 * "0x0", "2.0", "1e0", " 1" and "+1" are refused, not read as numbers.
 */
export function decimal(text: string | null | undefined, name: string, max: number, expected: string): number {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(text)) throw badField(name, expected);
  const n = Number(text);
  if (n > max) throw badField(name, expected);
  return n;
}

/** Exit codes as processes have them: a 32-bit signed integer. */
export function isExitCode(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
}
