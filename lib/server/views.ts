// The API's views of database rows (docs/api.md): the shapes are declared in
// lib/protocol.ts, so the server and its clients agree by the type checker.
import type { KeyView, PhaseState, PlanSummary, PoolCounts, PoolView, RunView, StackView, ToolConfig, ToolStep, WorkerView } from '../protocol.ts';
import type { KeyRow, PhaseRow, PoolRow, RunRow, StackRow, WorkerRow } from './store.ts';
import { workerStatus } from './scheduler.ts';

export function keyJson(k: KeyRow): KeyView {
  return {
    id: k.id, state: k.state, serial: k.serial, notAfter: k.not_after,
    publicKeyPem: k.public_key_pem, certificatePem: k.cert_pem,
    createdAt: k.created_at, retiredAt: k.retired_at,
  };
}

export function poolJson(p: PoolRow, keys: KeyRow[], counts: PoolCounts): PoolView {
  return { id: p.id, name: p.name, description: p.description, createdAt: p.created_at, cycle: p.cycle, keys: keys.map(keyJson), ...counts };
}

export function workerJson(w: WorkerRow, lastSeen: string): WorkerView {
  return {
    id: w.id, pool: w.pool_id,
    status: workerStatus({ offline: w.offline === 1, drained: w.drained === 1, busy: w.current_run !== null }),
    drained: w.drained === 1,
    metadata: JSON.parse(w.metadata) as WorkerView['metadata'], version: w.version, host: JSON.parse(w.host) as WorkerView['host'],
    registeredAt: w.registered_at, lastSeen, idleSince: w.idle_since, currentRun: w.current_run,
  };
}

export function stackJson(s: StackRow, state: { stateVersion: number | null; stateHolder: string | null } = { stateVersion: null, stateHolder: null }): StackView {
  return {
    id: s.id, name: s.name, kind: s.kind, pool: s.pool_id, image: s.image,
    env: JSON.parse(s.env) as StackView['env'],
    secretEnv: s.secret_env ? Buffer.from(s.secret_env).toString('base64') : null,
    phases: JSON.parse(s.phases) as StackView['phases'],
    repo: s.repo, branch: s.branch,
    repoCredential: s.repo_credential ? Buffer.from(s.repo_credential).toString('base64') : null,
    triggerPaths: JSON.parse(s.trigger_paths) as string[], proposeBranches: s.propose_branches === 1,
    tool: s.tool ? JSON.parse(s.tool) as ToolConfig : null,
    projectRoot: s.project_root,
    stateHistory: s.state_history,
    stateVersion: state.stateVersion,
    stateHolder: state.stateHolder,
    drifted: s.drifted_run !== null,
    driftedRun: s.drifted_run,
    createdAt: s.created_at, updatedAt: s.updated_at,
  };
}

export function phaseState(p: PhaseRow): PhaseState {
  if (p.outcome) return p.outcome.toUpperCase() as PhaseState;
  if (p.started_at) return 'RUNNING';
  if (p.assigned_at) return 'ASSIGNED';
  return 'PENDING';
}

export function runJson(r: RunRow, phases: PhaseRow[], status: string = r.state): RunView {
  return {
    id: r.id, stack: r.stack_id, stackName: r.stack_name, kind: r.stack_kind, pool: r.pool_id,
    proposed: r.proposed === 1, state: r.state, status, phase: r.phase, phaseCount: r.phase_count,
    changes: r.changes ? JSON.parse(r.changes) as PlanSummary : null,
    drifted: r.drifted === 1,
    trigger: r.trigger,
    reason: r.reason, worker: r.worker_id, cancelRequested: r.cancel_requested === 1, workspace: r.has_workspace === 1,
    commit: r.commit_repo === null ? null : {
      repo: r.commit_repo, branch: r.commit_branch, sha: r.commit_sha, author: r.commit_author, message: r.commit_message,
    },
    createdAt: r.created_at, updatedAt: r.updated_at, endedAt: r.ended_at,
    phases: phases.map((p) => ({
      index: p.idx, name: p.name, step: p.step as ToolStep | null, confirm: p.confirm === 1, state: phaseState(p), worker: p.worker_id,
      assignedAt: p.assigned_at, startedAt: p.started_at, endedAt: p.ended_at,
      outcome: p.outcome, exitCode: p.exit_code, error: p.error, logBytes: p.log_bytes,
    })),
  };
}
