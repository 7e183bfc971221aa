// transaction() and afterCommit() on a real sqlite file: what commits stays,
// what throws is rolled back, and answers wait for the commit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { afterCommit, openDatabase, transaction } from '../lib/server/db.ts';
import { Store } from '../lib/server/store.ts';

const dir = mkdtempSync(join(tmpdir(), 'launcher-db-tx-'));
const db = openDatabase(join(dir, 'a.db'));
const store = new Store(db);

test.after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a transaction commits what it wrote, and committed callbacks run after the commit', () => {
  const seen: string[] = [];
  const v = transaction(db, () => {
    store.setMeta('k1', 'v1');
    afterCommit(db, () => seen.push(`committed, in a transaction: ${db.isTransaction}`), () => seen.push('rolled back'));
    assert.equal(seen, [], 'nothing is told before the commit');
    return 42;
  });
  assert.is(v, 42);
  assert.equal(seen, ['committed, in a transaction: false']);
  assert.is(store.meta('k1'), 'v1');
  assert.not.ok(db.isTransaction);
});

test('a throw rolls back everything the transaction wrote, tells the rolled-back callbacks, and is rethrown', () => {
  const seen: string[] = [];
  assert.throws(() => transaction(db, () => {
    store.setMeta('k2', 'v2');
    transaction(db, () => store.setMeta('k3', 'v3')); // nested: joins the outer one
    afterCommit(db, () => seen.push('committed'), () => seen.push('rolled back'));
    throw new Error('boom');
  }), /boom/);
  assert.equal(seen, ['rolled back']);
  assert.is(store.meta('k2'), undefined);
  assert.is(store.meta('k3'), undefined);
  assert.not.ok(db.isTransaction);
});

test('transactions keep working after a rollback, and each database has its own', () => {
  for (let i = 0; i < 3; i++) {
    assert.throws(() => transaction(db, () => { store.setMeta('k4', String(i)); throw new Error('again'); }), /again/);
    transaction(db, () => store.setMeta('k5', String(i)));
  }
  assert.is(store.meta('k4'), undefined);
  assert.is(store.meta('k5'), '2');
  const other = openDatabase(join(dir, 'b.db'));
  try {
    transaction(other, () => new Store(other).setMeta('only', 'here'));
    assert.is(new Store(other).meta('only'), 'here');
    assert.is(store.meta('only'), undefined);
  } finally {
    other.close();
  }
});

test('outside a transaction, afterCommit runs at once', () => {
  let ran = false;
  afterCommit(db, () => { ran = true; });
  assert.ok(ran);
});

test.run();
