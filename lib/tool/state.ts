// Rules for a stack's state versions, pure. The server never opens a state
// file: it learns serial and lineage from the worker (or the CLI on a push),
// which read them from the plaintext head of the file before sealing it.

export interface StateHead { serial: number; lineage: string }

/**
 * Serial and lineage from the start of a state file (Terraform writes them in
 * the first lines). Undefined when the text is not a Terraform state.
 */
export function readStateHead(head: string): StateHead | undefined {
  if (!/^\s*\{/.test(head)) return undefined;
  const serial = /"serial"\s*:\s*(\d+)/.exec(head);
  const lineage = /"lineage"\s*:\s*"([^"\\]{1,128})"/.exec(head);
  if (!serial || !lineage) return undefined;
  return { serial: Number(serial[1]), lineage: lineage[1]! };
}

/** A step changed the state when serial or lineage moved (Terraform bumps the serial on every write). */
export function stateChanged(before: StateHead | null, after: StateHead | undefined): boolean {
  if (!after) return false;
  if (!before) return true;
  return before.serial !== after.serial || before.lineage !== after.lineage;
}

export const DEFAULT_STATE_HISTORY = 100;
export const MAX_STATE_HISTORY = 100_000;

/** Version numbers to delete so that the newest `keep` remain (the current one always stays). */
export function versionsToPrune(versions: readonly number[], keep: number): number[] {
  const sorted = [...versions].sort((a, b) => b - a);
  return sorted.slice(Math.max(1, keep));
}

/** Optimistic concurrency: an upload names the version it started from. */
export function baseMatches(current: number | null, base: number | null): boolean {
  return (current ?? 0) === (base ?? 0);
}
