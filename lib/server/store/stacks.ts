// Stacks and modules in the database: what a run is made from (image, env,
// sealed secret env, phases). Deleting one keeps its row (runs name it).
import type { StackKind } from '../../protocol.ts';
import type { Queries } from './queries.ts';

export interface StackRow {
  id: string; name: string; kind: StackKind; pool_id: string | null; image: string | null;
  env: string; secret_env: Uint8Array | null; phases: string; created_at: string; updated_at: string; deleted_at: string | null;
  /** JSON ToolConfig (lib/tool/config.ts) or null for a phase stack. */
  tool: string | null; project_root: string; state_history: number;
  /** The tracked run that holds the stack's state (meaningful while that run is active). */
  state_holder: string | null;
  /** The scheduled proposed run that last found drift, until a tracked run applies. */
  drifted_run: string | null;
  repo: string | null; repo_key: string | null; branch: string | null; repo_credential: Uint8Array | null;
  trigger_paths: string; propose_branches: number; webhook_secret: string | null;
}

export class StackStore {
  private readonly q: Queries;
  constructor(q: Queries) { this.q = q; }

  /** A stack that is not deleted, by id or by name. */
  find(idOrName: string): StackRow | undefined {
    return this.q.get<StackRow>('SELECT * FROM stacks WHERE id = ? AND deleted_at IS NULL', [idOrName]) ??
      this.q.get<StackRow>('SELECT * FROM stacks WHERE deleted_at IS NULL AND name = ?', [idOrName]);
  }
  /** By id, deleted or not (a deleted stack's state is kept until purged). */
  any(id: string): StackRow | undefined { return this.q.get<StackRow>('SELECT * FROM stacks WHERE id = ?', [id]); }
  count(): number { return this.q.get<{ c: number }>('SELECT count(*) AS c FROM stacks WHERE deleted_at IS NULL')!.c; }
  list(): StackRow[] { return this.q.all<StackRow>('SELECT * FROM stacks WHERE deleted_at IS NULL ORDER BY created_at, id'); }
  insert(s: StackRow): void {
    this.q.run(`INSERT INTO stacks (id, name, kind, pool_id, image, env, secret_env, phases, created_at, updated_at, deleted_at, tool, project_root, state_history, state_holder, drifted_run,
        repo, repo_key, branch, repo_credential, trigger_paths, propose_branches, webhook_secret)
      VALUES ($id, $name, $kind, $pool_id, $image, $env, $secret_env, $phases, $created_at, $updated_at, $deleted_at, $tool, $project_root, $state_history, $state_holder, $drifted_run,
        $repo, $repo_key, $branch, $repo_credential, $trigger_paths, $propose_branches, $webhook_secret)`, { ...s });
  }
  /** Live stacks whose repository has this comparable form (repo.ts repoKey). */
  byRepoKey(keys: string[]): StackRow[] {
    if (keys.length === 0) return [];
    return this.q.all<StackRow>(`SELECT * FROM stacks WHERE deleted_at IS NULL AND repo_key IN (${keys.map(() => '?').join(', ')}) ORDER BY created_at, id`, keys);
  }
  update(id: string, fields: Partial<StackRow>): void {
    this.q.update('stacks', fields, 'id = $id', { id });
  }
  /** A deleted pool's stacks stay, detached (triggers are refused until they are attached again). */
  detachPool(poolId: string, now: string): void {
    this.q.run('UPDATE stacks SET pool_id = NULL, updated_at = ? WHERE pool_id = ?', [now, poolId]);
  }
}
