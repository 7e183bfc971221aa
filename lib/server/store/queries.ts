// Prepared statements over the server's database, cached by their SQL text.
// Only the store's noun modules (pools, workers, stacks, runs) hold one: SQL
// lives there, and everything else calls them by name.
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';

export type Params = Record<string, SQLInputValue>;

/**
 * A row limit written into the SQL text. A bound `LIMIT ?` makes SQLite
 * compile the statement again whenever the parameter is bound (the planner
 * used its value); a literal keeps one prepared statement per distinct limit,
 * and callers use a few.
 */
export function limitSql(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Row limit must be a whole number from 0, not ${n}`);
  return String(n);
}

export class Queries {
  readonly db: DatabaseSync;
  private cache = new Map<string, ReturnType<DatabaseSync['prepare']>>();
  constructor(db: DatabaseSync) { this.db = db; }

  private st(sql: string): ReturnType<DatabaseSync['prepare']> {
    let s = this.cache.get(sql);
    if (!s) { s = this.db.prepare(sql); this.cache.set(sql, s); }
    return s;
  }
  get<T>(sql: string, p: Params | SQLInputValue[] = []): T | undefined {
    return (Array.isArray(p) ? this.st(sql).get(...p) : this.st(sql).get(p)) as T | undefined;
  }
  all<T>(sql: string, p: Params | SQLInputValue[] = []): T[] {
    return (Array.isArray(p) ? this.st(sql).all(...p) : this.st(sql).all(p)) as T[];
  }
  run(sql: string, p: Params | SQLInputValue[] = []): number {
    const r = Array.isArray(p) ? this.st(sql).run(...p) : this.st(sql).run(p);
    return Number(r.changes);
  }
  /** `UPDATE table SET k = $k, … WHERE where` for the given fields; nothing when there are none. */
  update(table: string, fields: object, where: string, key: Params): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    this.run(`UPDATE ${table} SET ${keys.map((k) => `${k} = $${k}`).join(', ')} WHERE ${where}`, { ...(fields as Params), ...key });
  }
}
