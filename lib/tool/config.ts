// A stack's tool workflow settings (Terraform or OpenTofu), as the admin API
// takes them and the server stores them: validated here, with errors that name
// the field and what would be accepted. Pure: no I/O.
import { HOOK_POINTS, TOOL_NAMES, TOOL_STEPS, type HookPoint, type ToolConfig, type ToolName, type ToolStep } from '../protocol.ts';
export type { HookPoint, ToolConfig, ToolName } from '../protocol.ts';
export { HOOK_POINTS, TOOL_NAMES } from '../protocol.ts';
export type Step = ToolStep;
export const STEPS = TOOL_STEPS;

export class ToolConfigError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

const bad = (field: string, expected: string): ToolConfigError =>
  new ToolConfigError(field, `Invalid field "${field}": expected ${expected}`);

function strings(v: unknown, field: string, max: number, maxLen: number): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > max || !v.every((s) => typeof s === 'string' && s.length > 0 && s.length <= maxLen && !s.includes('\0'))) {
    throw bad(field, `a list of at most ${max} non-empty strings of up to ${maxLen} characters`);
  }
  return v as string[];
}

/** A path inside the source: relative, no "..", no NUL. Returns it normalised ("." for the root). */
export function relativePath(v: unknown, field: string): string {
  if (v === undefined || v === null || v === '' || v === '.') return '.';
  if (typeof v !== 'string' || v.length > 1024) throw bad(field, 'a relative path inside the source, e.g. "infra/prod"');
  const parts = v.split('/').filter((p) => p !== '' && p !== '.');
  if (v.startsWith('/') || v.includes('\0') || parts.some((p) => p === '..')) {
    throw bad(field, `a relative path inside the source without ".." or a leading "/" (got "${v}"), e.g. "infra/prod"`);
  }
  return parts.length === 0 ? '.' : parts.join('/');
}

/** Validates the API's `tool` object; `undefined`/null means a plain phase stack. */
export function parseToolConfig(v: unknown): ToolConfig | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('tool', 'an object like {"name": "terraform"} or null');
  const o = v as Record<string, unknown>;
  const known = new Set(['name', 'binary', 'manageState', 'autodeploy', 'varFiles', 'hooks', 'args']);
  for (const k of Object.keys(o)) if (!known.has(k)) throw bad(`tool.${k}`, `one of the tool fields (${[...known].join(', ')})`);
  if (!TOOL_NAMES.includes(o.name as ToolName)) throw bad('tool.name', '"terraform" or "tofu"');
  const name = o.name as ToolName;
  const binary = o.binary === undefined || o.binary === null ? name : o.binary;
  if (typeof binary !== 'string' || !/^[A-Za-z0-9_./+-]{1,256}$/.test(binary)) {
    throw bad('tool.binary', 'the tool\'s executable name or absolute path (letters, digits, "_", ".", "/", "+", "-")');
  }
  for (const f of ['manageState', 'autodeploy'] as const) {
    if (o[f] !== undefined && typeof o[f] !== 'boolean') throw bad(`tool.${f}`, 'true or false');
  }
  const varFiles = strings(o.varFiles, 'tool.varFiles', 50, 1024).map((p, i) => relativePath(p, `tool.varFiles[${i}]`));
  const hooks: Partial<Record<HookPoint, string[]>> = {};
  if (o.hooks !== undefined && o.hooks !== null) {
    if (typeof o.hooks !== 'object' || Array.isArray(o.hooks)) throw bad('tool.hooks', `an object keyed by ${HOOK_POINTS.join(', ')}`);
    for (const [k, list] of Object.entries(o.hooks as Record<string, unknown>)) {
      if (!HOOK_POINTS.includes(k as HookPoint)) throw bad(`tool.hooks.${k}`, `one of ${HOOK_POINTS.join(', ')}`);
      const cmds = strings(list, `tool.hooks.${k}`, 50, 16 * 1024);
      if (cmds.length) hooks[k as HookPoint] = cmds;
    }
  }
  const args: Partial<Record<Step, string[]>> = {};
  if (o.args !== undefined && o.args !== null) {
    if (typeof o.args !== 'object' || Array.isArray(o.args)) throw bad('tool.args', `an object keyed by step (${STEPS.join(', ')})`);
    for (const [k, list] of Object.entries(o.args as Record<string, unknown>)) {
      if (!STEPS.includes(k as Step)) throw bad(`tool.args.${k}`, `one of the steps ${STEPS.join(', ')}`);
      const a = strings(list, `tool.args.${k}`, 50, 4096);
      if (a.length) args[k as Step] = a;
    }
  }
  return {
    name, binary,
    manageState: o.manageState === undefined ? true : o.manageState as boolean,
    autodeploy: o.autodeploy === true,
    varFiles, hooks, args,
  };
}
