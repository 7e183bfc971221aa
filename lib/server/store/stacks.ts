// Stacks and modules in the database: what a run is made from (image, env,
// sealed secret env, phases). Deleting one keeps its row (runs name it).
import type { StackKind } from '../../protocol.ts';
import type { Queries } from './queries.ts';

export interface StackRow {
  id: string; name: string; kind: StackKind; pool_id: string | null; image: string | null;
  env: string; secret_env: Uint8Array | null; phases: string; created_at: string; updated_at: string; deleted_at: string | null;
}

export class StackStore {
  private readonly q: Queries;
  constructor(q: Queries) { this.q = q; }

  /** A stack that is not deleted, by id or by name. */
  find(idOrName: string): StackRow | undefined {
    return this.q.get<StackRow>('SELECT * FROM stacks WHERE id = ? AND deleted_at IS NULL', [idOrName]) ??
      this.q.get<StackRow>('SELECT * FROM stacks WHERE deleted_at IS NULL AND name = ?', [idOrName]);
  }
  list(): StackRow[] { return this.q.all<StackRow>('SELECT * FROM stacks WHERE deleted_at IS NULL ORDER BY created_at, id'); }
  insert(s: StackRow): void {
    this.q.run(`INSERT INTO stacks (id, name, kind, pool_id, image, env, secret_env, phases, created_at, updated_at, deleted_at)
      VALUES ($id, $name, $kind, $pool_id, $image, $env, $secret_env, $phases, $created_at, $updated_at, $deleted_at)`, { ...s });
  }
  update(id: string, fields: Partial<StackRow>): void {
    this.q.update('stacks', fields, 'id = $id', { id });
  }
  /** A deleted pool's stacks stay, detached (triggers are refused until they are attached again). */
  detachPool(poolId: string, now: string): void {
    this.q.run('UPDATE stacks SET pool_id = NULL, updated_at = ? WHERE pool_id = ?', [now, poolId]);
  }
}
