// The scheduler's pure rules, without sockets or a database.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  adminTransition, afterPhase, canTakeWork, initialState, onWorkerLost, planAssignments, prioritizedKey, workerStatus,
  type WorkerFacts,
} from '../lib/server/scheduler.ts';

const worker = (id: string, poolId = 'pool_a', over: Partial<WorkerFacts> = {}): WorkerFacts => ({
  id, poolId, deregistered: false, offline: false, drained: false, cycled: false, accepting: true, busy: false, ...over,
});
const run = (id: string, queueKey: number, poolId = 'pool_a') => ({ id, poolId, queueKey });

test('only live, registered, undrained, uncycled, accepting, idle workers take work', () => {
  assert.ok(canTakeWork(worker('w')));
  for (const k of ['deregistered', 'offline', 'drained', 'cycled', 'busy'] as const) {
    assert.not.ok(canTakeWork(worker('w', 'pool_a', { [k]: true })), k);
  }
  assert.not.ok(canTakeWork(worker('w', 'pool_a', { accepting: false })));
});

test('FIFO per pool: the oldest run goes to the longest-waiting worker, one run per worker', () => {
  const plan = planAssignments([run('r2', 2), run('r1', 1), run('r3', 3)], [worker('w1'), worker('w2')]);
  assert.equal(plan, [{ runId: 'r1', workerId: 'w1' }, { runId: 'r2', workerId: 'w2' }]);
});

test('runs go only to workers of their own pool', () => {
  const plan = planAssignments([run('ra', 1, 'pool_a'), run('rb', 2, 'pool_b')], [worker('wb', 'pool_b'), worker('wc', 'pool_c')]);
  assert.equal(plan, [{ runId: 'rb', workerId: 'wb' }]);
});

test('ineligible waiting workers are skipped, not given runs', () => {
  const plan = planAssignments([run('r1', 1), run('r2', 2)], [worker('drained', 'pool_a', { drained: true }), worker('ok'), worker('busy', 'pool_a', { busy: true })]);
  assert.equal(plan, [{ runId: 'r1', workerId: 'ok' }]);
});

test('no workers or no runs: nothing is planned', () => {
  assert.equal(planAssignments([], [worker('w')]), []);
  assert.equal(planAssignments([run('r', 1)], []), []);
});

test('prioritize puts a run ahead of every active run of its pool', () => {
  assert.is(prioritizedKey([5, 3, 9]), 2);
  assert.is(prioritizedKey([]), 0);
  const keys = [1, 2, 3];
  const plan = planAssignments([run('r1', 1), run('r2', 2), run('r3', prioritizedKey(keys))], [worker('w')]);
  assert.equal(plan, [{ runId: 'r3', workerId: 'w' }]);
});

const phases = [{ name: 'plan', confirm: false }, { name: 'apply', confirm: true }, { name: 'report', confirm: false }];

test('a run starts UNCONFIRMED only when its first phase needs confirmation', () => {
  assert.is(initialState(phases), 'QUEUED');
  assert.is(initialState([{ confirm: true }]), 'UNCONFIRMED');
});

test('phase outcomes move the run through the state machine', () => {
  assert.equal(afterPhase({ phase: 0, phases }, 'succeeded'), { state: 'UNCONFIRMED', phase: 1, reason: null });
  assert.equal(afterPhase({ phase: 1, phases }, 'succeeded'), { state: 'QUEUED', phase: 2, reason: null });
  assert.equal(afterPhase({ phase: 2, phases }, 'succeeded'), { state: 'FINISHED', phase: 2, reason: null });
  assert.equal(afterPhase({ phase: 1, phases }, 'failed', { exitCode: 2 }), { state: 'FAILED', phase: 1, reason: 'phase apply failed: exit code 2' });
  assert.is(afterPhase({ phase: 0, phases }, 'worker-lost').reason, 'worker lost');
  assert.is(afterPhase({ phase: 0, phases }, 'canceled').state, 'CANCELED');
  assert.match(afterPhase({ phase: 0, phases }, 'system-error', { error: 'pull failed' }).reason!, /system error: pull failed/);
  assert.is(afterPhase({ phase: 0, phases }, 'logs-timeout').state, 'FAILED');
  assert.is(afterPhase({ phase: 0, phases }, 'run-timeout').state, 'FAILED');
});

test('admin actions are allowed only in the states the state machine names', () => {
  assert.is(adminTransition('UNCONFIRMED', 'confirm', false), 'QUEUED');
  assert.is(adminTransition('QUEUED', 'confirm', false), undefined);
  assert.is(adminTransition('UNCONFIRMED', 'discard', false), 'DISCARDED');
  assert.is(adminTransition('RUNNING', 'discard', true), undefined);
  assert.is(adminTransition('QUEUED', 'cancel', false), 'CANCELED');
  assert.is(adminTransition('RUNNING', 'cancel', false), 'CANCELED');
  assert.is(adminTransition('RUNNING', 'cancel', true), 'request-cancel');
  assert.is(adminTransition('FINISHED', 'cancel', true), undefined);
  assert.is(adminTransition('QUEUED', 'prioritize', false), 'same');
  assert.is(adminTransition('RUNNING', 'prioritize', true), undefined);
});

test('a lost worker\'s phase is requeued only if it never started (a write phase is never re-run)', () => {
  assert.is(onWorkerLost(false), 'requeue');
  assert.is(onWorkerLost(true), 'wait-grace');
});

test('worker status: OFFLINE, then BUSY, then DRAINED, else IDLE', () => {
  assert.is(workerStatus({ offline: true, drained: true, busy: true }), 'OFFLINE');
  assert.is(workerStatus({ offline: false, drained: true, busy: true }), 'BUSY');
  assert.is(workerStatus({ offline: false, drained: true, busy: false }), 'DRAINED');
  assert.is(workerStatus({ offline: false, drained: false, busy: false }), 'IDLE');
});

test.run();
