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
  /** Present for a step of a tool workflow (Terraform/OpenTofu). */
  tool?: ToolAssignment;
}

// ------------------------------------------------------------ tool workflows (Terraform / OpenTofu)

export type ToolName = 'terraform' | 'tofu';
export const TOOL_NAMES: readonly ToolName[] = ['terraform', 'tofu'];
/** The built-in steps; a stack runs init → plan → apply, a module init → validate → test. */
export type ToolStep = 'init' | 'plan' | 'apply' | 'validate' | 'test';
export const TOOL_STEPS: readonly ToolStep[] = ['init', 'plan', 'apply', 'validate', 'test'];
export const HOOK_POINTS = ['before-init', 'after-init', 'before-plan', 'after-plan', 'before-apply', 'after-apply'] as const;
export type HookPoint = typeof HOOK_POINTS[number];

/** A stack's `tool` field (`POST/PATCH /v1/stacks`). */
export interface ToolConfig {
  name: ToolName;
  /** The tool's executable, a name on PATH or an absolute path in the runner image. */
  binary: string;
  /** State sealed to the pool's keys and versioned per stack (default with a tool). */
  manageState: boolean;
  /** A tracked run applies without waiting for confirmation. */
  autodeploy: boolean;
  /** `-var-file` paths, relative to the project root. */
  varFiles: string[];
  /** Shell commands around the steps, in the order given. */
  hooks: Partial<Record<HookPoint, string[]>>;
  /** Extra arguments per step, appended to the built-in ones. */
  args: Partial<Record<ToolStep, string[]>>;
}

export interface ToolAssignment {
  name: ToolName;
  step: ToolStep;
  /** Relative to the workspace; the step's script already cds into it. */
  projectRoot: string;
  manageState: boolean;
  /** Phase 0: the stack's state is put in place before it runs. */
  firstStep: boolean;
  /** A tracked run: new state is sealed and uploaded after each step. */
  writesState: boolean;
  /** The stack's current state version (what this run starts from), or null for none. */
  state: { version: number; serial: number | null; lineage: string | null } | null;
}

/** A planned change: the address and Terraform's actions, never attribute values. */
export interface PlannedResource { address: string; actions: string[] }
/** A plan's changes as the server stores and shows them (counts and addresses only). */
export interface PlanSummary {
  add: number;
  change: number;
  destroy: number;
  replace: number;
  /** Resources with an action other than no-op/read, in plan order. */
  resources: PlannedResource[];
  /** More resources changed than the summary lists. */
  truncated: boolean;
  /** Something to apply: resource or output changes. */
  hasChanges: boolean;
}

/** `PUT /v1/worker/runs/{run}/phases/{phase}/state?base=N|none&serial=S&lineage=L`, `PUT /v1/stacks/{id}/state?…` */
export interface StateAck { version: number }

/** `GET /v1/stacks/{id}/state`: one stored (sealed) version. */
export interface StateVersionView {
  version: number;
  /** Terraform's serial and lineage as the worker (or the CLI on a push) read them before sealing. */
  serial: number | null;
  lineage: string | null;
  run: string | null;
  /** "run", "push" or "rollback:N" */
  source: string;
  size: number;
  /** sha256 of the sealed blob. */
  sha256: string;
  createdAt: string;
}
/** `PUT /v1/stacks/{id}/state` (201) and `POST /v1/stacks/{id}/state/rollback` (201): the version stored. */
export interface StateVersionReply { version: StateVersionView }
/** `POST /v1/stacks/{id}/state/rollback` */
export interface StateRollbackRequest { version: number }
export interface StateList {
  stack: string;
  current: number | null;
  /** The tracked run holding the state now, if any. */
  holder: string | null;
  history: number;
  versions: StateVersionView[];
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

/** `GET /v1/stacks/{id}/schedules`: drift detection on a cron schedule (UTC). */
export interface ScheduleView {
  id: string;
  stack: string;
  cron: string;
  /** A run that finds drift queues a tracked run. */
  reconcile: boolean;
  /** The last slot handled (fired or skipped). */
  lastSlot: string | null;
  nextSlot: string | null;
  createdAt: string;
}
export interface ScheduleList { schedules: ScheduleView[] }
/** `POST /v1/stacks/{id}/schedules` */
export interface ScheduleRequest { cron: string; reconcile?: boolean }
export interface ScheduleReply { schedule: ScheduleView }

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
/**
 * The answer to a log chunk. `truncated`: the run's logs reached the server's
 * cap (--max-run-log); the log ends with a marker and the launcher should
 * stop sending (later chunks are acknowledged and dropped).
 */
export interface LogAck { nextSeq: number; truncated?: true }

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
  /** After a plan step: counts and addresses, never values. */
  plan?: PlanSummary;
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
  /** Free text for people (at most 1024 characters); empty when none was given. */
  description: string;
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

export interface PhaseSpec { name: string; script: string; confirm: boolean; step?: ToolStep }

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
  tool: ToolConfig | null;
  /** Relative directory inside the source that scripts and steps run in ("." for the root). */
  projectRoot: string;
  /** State versions kept (`--state-history`). */
  stateHistory: number;
  stateVersion: number | null;
  stateHolder: string | null;
  /** A scheduled proposed run found changes that no tracked run has applied yet. */
  drifted: boolean;
  driftedRun: string | null;
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

/** The commit a run's files come from (null sha until a worker resolved a branch). */
export interface CommitView { repo: string; branch: string | null; sha: string | null; author: string | null; message: string | null }

export interface RunPhaseView {
  index: number;
  name: string;
  step: ToolStep | null;
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
  /** What users see: the state, or for a running tool step INITIALIZING, PLANNING, APPLYING, VALIDATING, TESTING. */
  status: string;
  /** Planned changes once a plan step ended. */
  changes: PlanSummary | null;
  drifted: boolean;
  /** What queued it: null (an admin), "push" (a Git webhook), "schedule:ID". */
  trigger: string | null;
  phase: number;
  phaseCount: number;
  reason: string | null;
  worker: string | null;
  cancelRequested: boolean;
  workspace: boolean;
  /** Null for a run started from an uploaded workspace. */
  commit: CommitView | null;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
  phases: RunPhaseView[];
}

// Requests

/** `POST /v1/pools` */
export interface CreatePoolRequest { name: string; csr: string; description?: string }
/** `PATCH /v1/pools/{id}`: the description is the one thing of a pool that changes this way ("" clears it). */
export interface UpdatePoolRequest { description: string }
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
  phases?: PhaseSpec[] | null;
  tool?: Partial<ToolConfig> | null;
  projectRoot?: string;
  stateHistory?: number;
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
/** `DELETE /v1/stacks/{id}?purgeState=1`: with purgeState, how many sealed state versions went with it. */
export interface StackDeleteReply extends StackReply { purgedStateVersions?: number }
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

// The web console and run events

/** `GET /v1/runs/{id}/events`: the data of an `event: log` (the run events are RunView). */
export interface RunLogEvent { phase: number; offset: number; text: string }
/** One line of DATA/audit.log, as `GET /v1/audit` returns it: these fields, then the ids the action named. */
export interface AuditEntry { time: string; action: string; status: number; remote: string | null; [id: string]: string | number | boolean | null }
export interface AuditList { entries: AuditEntry[] }
/** `POST /console/session` (sign in with the admin token). */
export interface SignInRequest { token: string }
/** `GET`, `POST` and `DELETE /console/session`. */
export interface ConsoleSession {
  signedIn: boolean;
  csrf?: string;
  expiresAt?: string;
  /** The largest sealed workspace the server accepts (--max-workspace-size), so the page refuses a folder before packing it. */
  maxWorkspaceBytes?: number;
}

// Retention (`POST /v1/gc`)

/** `POST /v1/gc`: periods not given are the server's own (--retain-runs, --retain-offline-workers). */
export interface GcRequest { dryRun?: boolean; retainRuns?: string; retainOfflineWorkers?: string }
/** What gc removed (or, in a dry run, would remove). */
export interface GcReport {
  dryRun: boolean;
  /** Runs that ended before this time were (or would be) removed; null: runs are kept forever. */
  runsEndedBefore: string | null;
  runs: { count: number; logBytes: number; workspaceBytes: number; oldestEndedAt: string | null; newestEndedAt: string | null };
  workers: { count: number; ids: string[] };
  orphans: { files: number; bytes: number; paths: string[] };
  /** Every byte above together. */
  bytes: number;
}
