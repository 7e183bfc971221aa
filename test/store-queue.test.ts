// The queue as the store reads it (a real sqlite file): the narrow read used
// by dispatch and poll gives the same runs in the same order as the whole-row
// read, and both keep a managed-state stack's waiting tracked runs back.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDatabase } from '../lib/server/db.ts';
import { Store } from '../lib/server/store.ts';
import { limitSql } from '../lib/server/store/queries.ts';

const dir = mkdtempSync(join(tmpdir(), 'launcher-store-queue-'));
const db = openDatabase(join(dir, 'server.db'));
const store = new Store(db);
const now = '2026-01-01T00:00:00.000Z';

function stack(id: string, holder: string | null = null): void {
  store.stacks.insert({
    id, name: id, kind: 'stack', pool_id: 'pool_a', image: 'img', env: '{}', secret_env: null, phases: '[]',
    created_at: now, updated_at: now, deleted_at: null, tool: null, project_root: '.', state_history: 100,
    state_holder: holder, drifted_run: null, repo: null, repo_key: null, branch: null, repo_credential: null,
    trigger_paths: '[]', propose_branches: 1, webhook_secret: null,
  });
}

function run(id: string, stackId: string, opts: { pool?: string; state?: 'QUEUED' | 'RUNNING' | 'UNCONFIRMED'; holdsState?: boolean } = {}): void {
  store.runs.insert({
    id, stack_id: stackId, stack_name: stackId, stack_kind: 'stack', pool_id: opts.pool ?? 'pool_a', proposed: opts.holdsState ? 0 : 1,
    state: opts.state ?? 'QUEUED', phase: 0, phase_count: 1, spec: '{"image":"img","env":{},"phases":[]}', secret_env: null,
    worker_id: null, cancel_requested: 0, has_workspace: 0, reason: null, created_at: now, updated_at: now, ended_at: null,
    holds_state: opts.holdsState ? 1 : 0,
  }, [{ name: 'p', script: 'true', confirm: false }]);
}

test.after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

test('queuedRefs lists the same runs as queued, in queue order, within the limit and the pool', () => {
  stack('stk_free');
  stack('stk_held', 'run_holder');
  stack('stk_two');
  run('run_1', 'stk_free');
  run('run_holder', 'stk_held', { state: 'RUNNING', holdsState: true });
  run('run_2', 'stk_held', { holdsState: true }); // waits: run_holder holds the state
  run('run_3', 'stk_held'); // proposed: never waits
  run('run_4', 'stk_two', { holdsState: true });
  run('run_5', 'stk_two', { holdsState: true }); // only the first of a stack's tracked runs may start
  run('run_6', 'stk_free', { pool: 'pool_b' });
  run('run_7', 'stk_free', { state: 'UNCONFIRMED' });
  run('run_8', 'stk_free');
  const expected = ['run_1', 'run_3', 'run_4', 'run_8'];
  assert.equal(store.runs.queued('pool_a', 100).map((r) => r.id), expected);
  assert.equal(store.runs.queuedRefs('pool_a', 100).map((r) => r.id), expected);
  for (let limit = 0; limit <= 8; limit++) {
    assert.equal(store.runs.queuedRefs('pool_a', limit).map((r) => r.id), store.runs.queued('pool_a', limit).map((r) => r.id), `limit ${limit}`);
  }
  assert.equal(store.runs.queuedRefs('pool_a', 1).map((r) => ({ ...r })), [{ id: 'run_1', queue_key: 1, stack_id: 'stk_free', holds_state: 0 }]);
  assert.equal(store.runs.queuedRefs('pool_b', 64).map((r) => r.id), ['run_6']);
  assert.equal(store.runs.queuedRefs('pool_none', 64), []);
  assert.equal(store.runs.unconfirmed('pool_a').map((r) => r.id), ['run_7']);
});

test('the queue follows the rows: a run that starts leaves it, the stack\'s next tracked run may start when the holder ends', () => {
  store.runs.update('run_1', { state: 'RUNNING' });
  assert.equal(store.runs.queuedRefs('pool_a', 1).map((r) => r.id), ['run_3']);
  store.runs.update('run_holder', { state: 'FINISHED' });
  assert.equal(store.runs.queuedRefs('pool_a', 64).map((r) => r.id), ['run_2', 'run_3', 'run_4', 'run_8']);
});

test('a row limit must be a whole number from 0', () => {
  assert.is(limitSql(0), '0');
  assert.is(limitSql(64), '64');
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => limitSql(bad), /Row limit must be a whole number from 0/);
  }
});

test.run();
