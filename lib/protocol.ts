// The wire vocabulary: every word and JSON shape the server, the launcher and
// the admin client exchange (docs/protocol.md, docs/api.md), in one place so
// the three roles cannot drift apart. Types and constant lists only: no I/O,
// no imports, so any role (and Deno) can load it for free.

// ------------------------------------------------------------ words

/** A run's state (docs/protocol.md, "Run state machine"). */
export type RunState = 'QUEUED' | 'RUNNING' | 'UNCONFIRMED' | 'FINISHED' | 'FAILED' | 'CANCELED' | 'DISCARDED';
export const RUN_STATES: readonly RunState[] = ['QUEUED', 'RUNNING', 'UNCONFIRMED', 'FINISHED', 'FAILED', 'CANCELED', 'DISCARDED'];
/** States in which a run still holds its pool and stack (deleting them is refused). */
export const ACTIVE_STATES: readonly RunState[] = ['QUEUED', 'RUNNING', 'UNCONFIRMED'];
export const TERMINAL_STATES: readonly RunState[] = ['FINISHED', 'FAILED', 'CANCELED', 'DISCARDED'];
export const isTerminal = (s: RunState): boolean => TERMINAL_STATES.includes(s);

/** How a phase ended. `failed` is the script's fault, `system-error` the host's. */
export type Outcome = 'succeeded' | 'failed' | 'logs-timeout' | 'run-timeout' | 'canceled' | 'system-error' | 'worker-lost';
export const OUTCOMES: readonly Outcome[] = ['succeeded', 'failed', 'logs-timeout', 'run-timeout', 'canceled', 'system-error', 'worker-lost'];
/** Outcomes a launcher may report; `worker-lost` is decided by the server only. */
export type ReportableOutcome = Exclude<Outcome, 'worker-lost'>;
export const REPORTABLE_OUTCOMES: readonly ReportableOutcome[] = ['succeeded', 'failed', 'logs-timeout', 'run-timeout', 'canceled', 'system-error'];

/** A phase as the APIs show it: not yet assigned, assigned, running, or its outcome upper-cased. */
export type PhaseState = 'PENDING' | 'ASSIGNED' | 'RUNNING' | Uppercase<Outcome>;

export type WorkerStatus = 'IDLE' | 'BUSY' | 'DRAINED' | 'OFFLINE';
export const WORKER_STATUSES: readonly WorkerStatus[] = ['IDLE', 'BUSY', 'DRAINED', 'OFFLINE'];

export type KeyState = 'active' | 'retired' | 'revoked';
export type StackKind = 'stack' | 'module';
export const STACK_KINDS: readonly StackKind[] = ['stack', 'module'];

/** What an admin can do to a run (`POST /v1/runs/{id}/{action}`). */
export type RunAction = 'confirm' | 'cancel' | 'discard' | 'prioritize';
export const RUN_ACTIONS: readonly RunAction[] = ['confirm', 'cancel', 'discard', 'prioritize'];

/** Every error answer: `{"error": {"code", "message"}}`, sometimes with extra fields (nextSeq). */
export interface ErrorBody {
  error: { code: string; message: string };
  nextSeq?: number;
}

// ------------------------------------------------------------ worker API (mutual TLS)

export interface HostFacts {
  hostname: string;
  os: string;
  arch: string;
  docker: string;
}

/** `POST /v1/worker/register` */
export interface RegisterRequest {
  workerId: string | null;
  metadata: Record<string, string>;
  version: string;
  host: HostFacts;
}
export interface Registration {
  workerId: string;
  pollSeconds: number;
  leaseSeconds: number;
}

/** `POST /v1/worker/poll?wait=SECONDS` */
export interface PollRequest {
  workerId: string;
  accept: boolean;
  runId: string | null;
}

export interface Assignment {
  runId: string;
  phase: number;
  phaseName: string;
  phaseCount: number;
  stack: { id: string; name: string; kind: string };
  proposed: boolean;
  image: string | null;
  script: string;
  env: Record<string, string>;
  /** Base64 of an age file (a sealed JSON object of variables), or null. */
  secretEnv: string | null;
  /** A sealed workspace exists for this run and is to be restored. */
  workspace: boolean;
  /** Set while the run has no workspace yet and its stack is a Git repository: the worker fetches it. */
  source?: AssignmentSource | null;
  /** Public keys (PEM) of the pool's active keys: the workspace is sealed to them. */
  recipients: string[];
  logs: { nextSeq: number };
}

export interface AssignmentSource {
  repo: string;
  branch: string | null;
  /** The exact commit; null: resolve the branch tip and report the SHA. */
  commit: string | null;
  /** Base64 of an age file (sealed to the pool keys) holding {"username", "password"}, or null. */
  credential: string | null;
}

/** `POST /v1/worker/runs/{run}/phases/{phase}/commit`: the commit the worker fetched. */
export interface CommitReport { workerId: string; sha: string; author: string | null; message: string | null }

export interface Control {
  drain: boolean;
  cycle: boolean;
  cancel: string[];
}

export interface PollReply {
  assignment: Assignment | null;
  control: Control;
}

/** `GET /v1/worker/runs/{run}/phases/{phase}` */
export interface PhaseStatus {
  state: PhaseState;
  cancel: boolean;
  logs: { nextSeq: number; bytes: number };
}

/** `POST /v1/worker/runs/{run}/phases/{phase}/logs?seq=N` */
export interface LogAck { nextSeq: number }

/** `PUT /v1/worker/runs/{run}/phases/{phase}/workspace` */
export interface WorkspaceAck { bytes: number }

/** `POST /v1/worker/runs/{run}/phases/{phase}/result` */
export interface PhaseReport {
  workerId: string;
  outcome: ReportableOutcome;
  exitCode: number | null;
  /** A sentence for people: what went wrong on this host (the code leads it). */
  error: string | null;
  /** The next log sequence number the launcher would send. */
  logSeq: number;
  workspaceUploaded: boolean;
}

/** `POST /v1/worker/deregister`, `…/start` */
export interface WorkerRef { workerId: string }

/** Answers that carry nothing (`{}`). */
export type Empty = Record<string, never>;

// ------------------------------------------------------------ admin API (bearer token)

export interface KeyView {
  id: string;
  state: KeyState;
  serial: string;
  notAfter: string;
  publicKeyPem: string;
  certificatePem: string;
  createdAt: string;
  retiredAt: string | null;
}

export interface PoolCounts { workers: number; busy: number; pending: number }

export interface PoolView extends PoolCounts {
  id: string;
  name: string;
  createdAt: string;
  cycle: number;
  keys: KeyView[];
}

export interface WorkerView {
  id: string;
  pool: string;
  status: WorkerStatus;
  drained: boolean;
  metadata: Record<string, string>;
  version: string | null;
  host: Partial<HostFacts> & Record<string, string>;
  registeredAt: string;
  lastSeen: string;
  idleSince: string | null;
  currentRun: string | null;
}

export interface PhaseSpec { name: string; script: string; confirm: boolean }

export interface StackView {
  id: string;
  name: string;
  kind: StackKind;
  pool: string | null;
  image: string | null;
  env: Record<string, string>;
  /** Base64 of the sealed secret env, or null. */
  secretEnv: string | null;
  phases: PhaseSpec[];
  /** Git source: repository URL and branch (null: workspaces are uploaded with each trigger). */
  repo: string | null;
  branch: string | null;
  /** Base64 of the sealed repository credential, or null. */
  repoCredential: string | null;
  /** Path globs a push must touch to queue a run (empty: any change). */
  triggerPaths: string[];
  /** Pushes to other branches queue proposed runs. */
  proposeBranches: boolean;
  createdAt: string;
  updatedAt: string;
}

export type RunTrigger = 'manual' | 'push';

/** The commit a run's files come from (null sha until a worker resolved a branch). */
export interface CommitView { repo: string; branch: string | null; sha: string | null; author: string | null; message: string | null }

export interface RunPhaseView {
  index: number;
  name: string;
  confirm: boolean;
  state: PhaseState;
  worker: string | null;
  assignedAt: string | null;
  startedAt: string | null;
  endedAt: string | null;
  outcome: Outcome | null;
  exitCode: number | null;
  error: string | null;
  logBytes: number;
}

export interface RunView {
  id: string;
  stack: string;
  stackName: string;
  kind: string;
  pool: string;
  proposed: boolean;
  state: RunState;
  phase: number;
  phaseCount: number;
  reason: string | null;
  worker: string | null;
  cancelRequested: boolean;
  workspace: boolean;
  trigger: RunTrigger;
  /** Null for a run started from an uploaded workspace. */
  commit: CommitView | null;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
  phases: RunPhaseView[];
}

// Requests

/** `POST /v1/pools` */
export interface CreatePoolRequest { name: string; csr: string }
/** `POST /v1/pools/{id}/reset`, `POST /v1/pools/{id}/keys` */
export interface CsrRequest { csr: string }
/** `POST /v1/workers/drain`, `/undrain`: worker ids, or tag values (optionally in one pool). */
export type WorkerSelector = { ids: string[] } | { metadata: Record<string, string>; pool?: string };
/** `POST /v1/stacks` (all of it) and `PATCH /v1/stacks/{id}` (any part of it). */
export interface StackRequest {
  name?: string;
  kind?: StackKind;
  /** Pool id or name; null detaches. */
  pool?: string | null;
  image?: string | null;
  env?: Record<string, string>;
  secretEnv?: string | null;
  phases?: PhaseSpec[];
  /** Repository URL (https://, http://, file:///); null removes the Git source. */
  repo?: string | null;
  branch?: string;
  repoCredential?: string | null;
  triggerPaths?: string[];
  proposeBranches?: boolean;
}
/** `POST /v1/stacks/{id}/runs` as JSON (a raw age body with `?proposed=1` is the other form). */
export interface TriggerRequest {
  proposed: boolean;
  workspace: string | null;
  /** Git stacks: this exact commit (40 hex), or the tip of this branch (default the stack's). */
  commit?: string;
  branch?: string;
}

// Replies

export interface PoolList { pools: PoolView[] }
export interface PoolReply { pool: PoolView }
/** A new pool, a reset pool: the token holds the new certificate. */
export interface PoolTokenReply { pool: PoolView; token: string }
export interface KeyReply { key: KeyView }
export interface KeyTokenReply { key: KeyView; token: string }
export interface WorkerList { workers: WorkerView[] }
export interface StackList { stacks: StackView[] }
export interface StackReply { stack: StackView }
export interface RunList { runs: RunView[] }
/** `GET /v1/stacks/{id}/webhook` */
export interface WebhookReply { webhook: { url: string; secret: string; contentType: string; events: string[]; repo: string; stacks: string[] } }
/** `POST /v1/hooks/git` (202) */
export interface HookReply {
  message: string;
  runs: Array<{ id: string; stack: string; stackName: string; proposed: boolean; commit: string }>;
  skipped: Array<{ stack: string; reason: string }>;
}
export interface RunReply { run: RunView }
