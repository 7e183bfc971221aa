// Pools and their keys in the database. Both are read on every worker request
// (the certificate serial names the key, the key names the pool) and change
// rarely, so reads are cached here and every write here clears the cache.
import type { KeyState } from '../../protocol.ts';
import type { Queries } from './queries.ts';

export interface PoolRow { id: string; name: string; description: string; cycle: number; created_at: string; deleted_at: string | null }
export interface KeyRow {
  id: string; pool_id: string; state: KeyState; serial: string;
  public_key_pem: string; cert_pem: string; not_after: string; created_at: string; retired_at: string | null;
}
export interface PoolCountsRow { workers: number; busy: number; pending: number }

const CACHE_LIMIT = 10_000;

/** `map`'s entry for `key`, loaded and kept on first use; a map past CACHE_LIMIT starts afresh. A miss (undefined) is kept too. */
function cached<K, V>(map: Map<K, V>, key: K, load: () => V): V {
  if (map.has(key)) return map.get(key) as V;
  const v = load();
  if (map.size > CACHE_LIMIT) map.clear();
  map.set(key, v);
  return v;
}

export class PoolStore {
  private readonly q: Queries;
  private byId = new Map<string, PoolRow | undefined>();
  private bySerial = new Map<string, KeyRow | undefined>();
  private recipientsOf = new Map<string, string[]>();
  constructor(q: Queries) { this.q = q; }

  /** Forgets every cached pool and key (after a write, or a restore under a running process). */
  forget(): void { this.byId.clear(); this.bySerial.clear(); this.recipientsOf.clear(); }

  /** A pool that is not deleted, by id or by name. */
  find(idOrName: string): PoolRow | undefined {
    const byId = this.any(idOrName);
    if (byId && !byId.deleted_at) return byId;
    return this.q.get<PoolRow>('SELECT * FROM pools WHERE deleted_at IS NULL AND name = ?', [idOrName]);
  }
  /** A pool by id, deleted or not (cached). */
  any(id: string): PoolRow | undefined {
    return cached(this.byId, id, () => this.q.get<PoolRow>('SELECT * FROM pools WHERE id = ?', [id]));
  }
  /** Pools not deleted, by name (metrics label them so). */
  names(): { id: string; name: string }[] { return this.q.all('SELECT id, name FROM pools WHERE deleted_at IS NULL ORDER BY name'); }
  count(): number { return this.q.get<{ c: number }>('SELECT count(*) AS c FROM pools WHERE deleted_at IS NULL')!.c; }
  list(): PoolRow[] { return this.q.all<PoolRow>('SELECT * FROM pools WHERE deleted_at IS NULL ORDER BY created_at, id'); }
  insert(p: { id: string; name: string; description: string; createdAt: string }): void {
    this.forget();
    this.q.run('INSERT INTO pools (id, name, description, cycle, created_at) VALUES (?, ?, ?, 0, ?)', [p.id, p.name, p.description, p.createdAt]);
  }
  setDescription(id: string, description: string): void {
    this.forget();
    this.q.run('UPDATE pools SET description = ? WHERE id = ?', [description, id]);
  }
  /** Every worker of the pool exits after its current run: its cycle moves on. */
  bumpCycle(id: string): void {
    this.forget();
    this.q.run('UPDATE pools SET cycle = cycle + 1 WHERE id = ?', [id]);
  }
  markDeleted(id: string, now: string): void {
    this.forget();
    this.q.run('UPDATE pools SET deleted_at = ? WHERE id = ?', [now, id]);
  }
  counts(poolId: string): PoolCountsRow {
    const w = this.q.get<{ workers: number; busy: number }>('SELECT count(*) AS workers, count(current_run) AS busy FROM workers WHERE pool_id = ? AND deregistered_at IS NULL AND offline = 0', [poolId])!;
    const r = this.q.get<{ pending: number }>("SELECT count(*) AS pending FROM runs WHERE pool_id = ? AND state IN ('QUEUED', 'UNCONFIRMED')", [poolId])!;
    return { workers: w.workers, busy: w.busy, pending: r.pending };
  }

  // keys
  keys(poolId: string): KeyRow[] { return this.q.all<KeyRow>('SELECT * FROM pool_keys WHERE pool_id = ? ORDER BY created_at, id', [poolId]); }
  activeKeys(poolId: string): KeyRow[] { return this.q.all<KeyRow>("SELECT * FROM pool_keys WHERE pool_id = ? AND state = 'active' ORDER BY created_at, id", [poolId]); }
  key(poolId: string, id: string): KeyRow | undefined { return this.q.get<KeyRow>('SELECT * FROM pool_keys WHERE pool_id = ? AND id = ?', [poolId, id]); }
  /** Public keys of a pool's active keys (what new sealed state is sealed to), cached. */
  recipients(poolId: string): string[] {
    return cached(this.recipientsOf, poolId, () => this.activeKeys(poolId).map((k) => k.public_key_pem));
  }
  keyBySerial(serial: string): KeyRow | undefined {
    return cached(this.bySerial, serial, () => this.q.get<KeyRow>('SELECT * FROM pool_keys WHERE serial = ?', [serial]));
  }
  insertKey(k: KeyRow): void {
    this.forget();
    this.q.run('INSERT INTO pool_keys (id, pool_id, state, serial, public_key_pem, cert_pem, not_after, created_at, retired_at) VALUES ($id, $pool_id, $state, $serial, $public_key_pem, $cert_pem, $not_after, $created_at, $retired_at)', { ...k });
  }
  /** A reset: every key of the pool not yet revoked is revoked (its certificate refused from now on). */
  revokeKeys(poolId: string, now: string): void {
    this.forget();
    this.q.run("UPDATE pool_keys SET state = 'revoked', retired_at = coalesce(retired_at, ?) WHERE pool_id = ? AND state != 'revoked'", [now, poolId]);
  }
  retireKey(id: string, now: string): void {
    this.forget();
    this.q.run("UPDATE pool_keys SET state = 'retired', retired_at = ? WHERE id = ?", [now, id]);
  }
}
