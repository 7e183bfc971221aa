// What the admin API does: pools and their keys, workers, stacks/modules and
// runs. Input validation names the field at fault; state changes go through
// the Service so waiting workers hear about them at once.
import { isLauncherError } from '../errors.ts';
import { inspectCsr, issuePoolCertificate } from '../pki.ts';
import { encodeToken } from '../token.ts';
import { decodeBase64Strict } from '../keys.ts';
import { transaction } from './db.ts';
import { bool, str, stringMap } from './fields.ts';
import { Refusal, badField } from './refusal.ts';
import {
  WORKER_STATUSES, type KeyReply, type KeyTokenReply, type PhaseSpec, type PoolList, type PoolReply, type PoolTokenReply, type PoolView,
  type RunAction, type RunList, type RunReply, type RunState, type RunView, type StackList, type StackReply, type StackView, type StateList, type StateVersionReply, type StackDeleteReply, type ScheduleList, type ScheduleReply, type WebhookReply, type WorkerList, type WorkerView,
} from '../protocol.ts';
import { adminTransition, initialState, prioritizedKey, workerStatus } from './scheduler.ts';
import { iso, newId, normSerial } from './ids.ts';
import { Service } from './service.ts';
import { looksSealed } from './workspaces.ts';
import type { KeyRow, PoolRow, RunRow, RunSpec, StackRow, WorkerRow } from './store.ts';
import { keyJson, poolJson, runJson, stackJson, workerJson } from './views.ts';
import type { Readable } from 'node:stream';
import { stateVersionJson } from './state.ts';
import { Schedules, scheduleJson } from './schedules.ts';
import { stateWriteQuery } from './worker-ops.ts';
import { ToolConfigError, parseToolConfig, relativePath } from '../tool/config.ts';
import { inProjectRoot, toolPhases } from '../tool/steps.ts';
import { DEFAULT_STATE_HISTORY, MAX_STATE_HISTORY } from '../tool/state.ts';
import { randomBytes } from 'node:crypto';
import { REPO_URL_HINT, SHA_RE, branchProblem, repoKey, repoUrlProblem } from '../vcs/repo.ts';
import { GLOB_HINT, globProblem } from '../vcs/paths.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_HINT = '1 to 64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit';
const DESCRIPTION_HINT = 'free text of at most 1024 characters ("" clears it)';
/** The fields PATCH /v1/pools/{pool} accepts. */
const POOL_PATCH_FIELDS = ['description'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_PHASES = 50;
const MAX_TRIGGER_PATHS = 100;

/** What a run records about its commit, when it has one. */
export interface RunCommit { repo: string; branch: string | null; sha: string | null; author?: string | null; message?: string | null }

export interface TriggerOptions {
  /** The exact commit (40 hex); without it the worker resolves the branch tip and reports the SHA. */
  commit?: string;
  /** A branch other than the stack's (proposed runs only). */
  branch?: string;
  /** What queued it: null (an admin), "push", "schedule:ID". */
  trigger?: string | null;
  /** Commit details already known (from a push payload). */
  author?: string | null;
  message?: string | null;
}

export class AdminOps {
  private readonly s: Service;
  /** Drift detection: scheduled proposed runs of tool stacks. */
  readonly schedules: Schedules;
  constructor(s: Service, now: () => number = Date.now) {
    this.s = s;
    this.schedules = new Schedules(s, (stack, proposed, ws, source) => this.trigger(stack, proposed, ws, source), now);
  }

  listSchedules(stackArg: string): ScheduleList {
    const st = this.stack(stackArg);
    const now = this.schedules.now();
    return { schedules: this.schedules.list(st.id).map((r) => scheduleJson(r, now)) };
  }

  addSchedule(stackArg: string, body: Record<string, unknown>): ScheduleReply {
    const row = this.schedules.add(this.stack(stackArg), body);
    return { schedule: scheduleJson(row, this.schedules.now()) };
  }

  deleteSchedule(id: string): ScheduleReply {
    return { schedule: scheduleJson(this.schedules.delete(id), this.schedules.now()) };
  }

  private get store() { return this.s.store; }

  // ------------------------------------------------------------ pools

  pool(idOrName: string): PoolRow {
    const p = this.store.pools.find(idOrName);
    if (!p) throw new Refusal('not-found', 'POOL_NOT_FOUND', `Pool not found: "${idOrName}" (list pools with GET /v1/pools)`);
    return p;
  }

  poolView(p: PoolRow): PoolView {
    return poolJson(p, this.store.pools.keys(p.id), this.store.pools.counts(p.id));
  }

  listPools(): PoolList {
    return { pools: this.store.pools.list().map((p) => this.poolView(p)) };
  }

  private csr(body: Record<string, unknown>): string {
    const csr = str(body, 'csr', { max: 64 * 1024, hint: 'a PEM certificate request ("-----BEGIN CERTIFICATE REQUEST-----")' })!;
    try {
      inspectCsr(csr);
    } catch (e) {
      if (isLauncherError(e)) throw new Refusal('invalid', 'CSR_INVALID', e.message);
      throw e;
    }
    return csr;
  }

  private issueKey(poolId: string, csr: string): { key: KeyRow; token: string } {
    const cert = issuePoolCertificate(this.s.ca, csr, { poolId });
    const key: KeyRow = {
      id: newId('key'), pool_id: poolId, state: 'active', serial: normSerial(cert.serial),
      public_key_pem: cert.publicKeyPem, cert_pem: cert.certPem, not_after: cert.notAfter.toISOString(),
      created_at: iso(), retired_at: null,
    };
    const token = encodeToken({ serverUrl: this.s.serverUrl, poolId, certificate: cert.certPem, caCertificate: this.s.ca.certPem });
    return { key, token };
  }

  createPool(body: Record<string, unknown>): PoolTokenReply {
    const name = str(body, 'name', { pattern: NAME, hint: NAME_HINT })!;
    const csr = this.csr(body);
    const description = str(body, 'description', { optional: true, max: 1024, hint: DESCRIPTION_HINT }) ?? '';
    if (this.store.pools.find(name)) throw new Refusal('conflict', 'NAME_TAKEN', `Pool name taken: "${name}" (choose another name)`);
    const id = newId('pool');
    const { key, token } = this.issueKey(id, csr);
    transaction(this.store.db, () => {
      this.store.pools.insert({ id, name, description, createdAt: iso() });
      this.store.pools.insertKey(key);
    });
    this.store.pools.forget();
    return { pool: this.poolView(this.pool(id)), token };
  }

  /** PATCH: what people may change about a pool (its name is how tokens' owners find it, so it stays). */
  updatePool(idOrName: string, body: Record<string, unknown>): PoolReply {
    const p = this.pool(idOrName);
    const unknown = Object.keys(body).filter((k) => !POOL_PATCH_FIELDS.includes(k));
    if (unknown.length > 0) throw new Refusal('invalid', 'INVALID_FIELD', `Unknown field "${unknown[0]}": a pool update accepts only ${POOL_PATCH_FIELDS.map((f) => `"${f}"`).join(', ')}`);
    if (!('description' in body)) throw badField('description', `${DESCRIPTION_HINT} (the only field a pool update accepts)`);
    const description = str(body, 'description', { max: 1024, hint: DESCRIPTION_HINT })!;
    this.store.pools.setDescription(p.id, description);
    return { pool: this.poolView(this.pool(p.id)) };
  }

  resetPool(idOrName: string, body: Record<string, unknown>): PoolTokenReply {
    const p = this.pool(idOrName);
    const csr = this.csr(body);
    const { key, token } = this.issueKey(p.id, csr);
    transaction(this.store.db, () => {
      this.store.pools.revokeKeys(p.id, iso());
      this.store.pools.insertKey(key);
    });
    this.store.pools.forget();
    // Polls held on the old certificate end now; their next request gets 403.
    this.s.presence.releaseWhere((w) => w.poolId === p.id);
    return { pool: this.poolView(this.pool(p.id)), token };
  }

  cyclePool(idOrName: string): PoolReply {
    const p = this.pool(idOrName);
    this.store.pools.bumpCycle(p.id);
    for (const w of this.store.workers.list(p.id)) this.s.wake(w.id);
    return { pool: this.poolView(this.pool(p.id)) };
  }

  deletePool(idOrName: string): PoolReply {
    const p = this.pool(idOrName);
    const active = this.store.runs.activeCount('pool', p.id);
    if (active > 0) throw new Refusal('conflict', 'POOL_BUSY', `Pool ${p.id} has ${active} active run(s): cancel or finish them first`);
    const view = this.poolView(p);
    const workers = this.store.workers.list(p.id);
    const now = iso();
    transaction(this.store.db, () => {
      this.store.pools.markDeleted(p.id, now);
      this.store.stacks.detachPool(p.id, now);
      this.store.workers.deregisterPool(p.id, now);
    });
    this.store.pools.forget();
    for (const w of workers) this.s.presence.forget(w.id);
    return { pool: view };
  }

  addKey(idOrName: string, body: Record<string, unknown>): KeyTokenReply {
    const p = this.pool(idOrName);
    const csr = this.csr(body);
    const { key, token } = this.issueKey(p.id, csr);
    this.store.pools.insertKey(key);
    return { key: keyJson(key), token };
  }

  retireKey(idOrName: string, keyId: string): KeyReply {
    const p = this.pool(idOrName);
    const k = this.store.pools.key(p.id, keyId);
    if (!k) throw new Refusal('not-found', 'KEY_NOT_FOUND', `Key not found: "${keyId}" in pool ${p.id}`);
    if (k.state !== 'active') throw new Refusal('conflict', 'KEY_STATE', `Key ${k.id} is ${k.state}, not active`);
    if (this.store.pools.activeKeys(p.id).length <= 1) throw new Refusal('conflict', 'LAST_KEY', `Key ${k.id} is the pool's last active key: add a new key first (POST /v1/pools/${p.id}/keys)`);
    this.store.pools.retireKey(k.id, iso());
    this.s.presence.releaseWhere((w) => w.keyId === k.id);
    return { key: keyJson(this.store.pools.key(p.id, k.id)!) };
  }

  queue(idOrName: string): RunList {
    const p = this.pool(idOrName);
    const runs = [...this.store.runs.queued(p.id, 100_000), ...this.store.runs.unconfirmed(p.id)];
    return { runs: runs.map((r) => this.runView(r)) };
  }

  // ------------------------------------------------------------ workers

  workerView(w: WorkerRow): WorkerView {
    const seen = this.s.presence.lastSeen.get(w.id);
    return workerJson(w, seen !== undefined && w.offline === 0 ? iso(seen) : w.last_seen);
  }

  listWorkers(q: URLSearchParams): WorkerList {
    const poolArg = q.get('pool');
    const pool = poolArg ? this.pool(poolArg) : undefined;
    const meta = metadataPairs(q.getAll('metadata'));
    const status = q.get('status');
    if (status && !(WORKER_STATUSES as readonly string[]).includes(status)) throw badField('status', WORKER_STATUSES.join(', '));
    const rows = this.store.workers.list(pool?.id).filter((w) => matches(w, meta) &&
      (!status || workerStatus({ offline: w.offline === 1, drained: w.drained === 1, busy: w.current_run !== null }) === status));
    return { workers: rows.map((w) => this.workerView(w)) };
  }

  setDrained(body: Record<string, unknown>, drained: boolean): WorkerList {
    let rows: WorkerRow[];
    if (body.ids !== undefined) {
      if (!Array.isArray(body.ids) || body.ids.length === 0 || !body.ids.every((i) => typeof i === 'string')) throw badField('ids', 'a non-empty list of worker ids');
      const ids = new Set(body.ids as string[]);
      rows = this.store.workers.list().filter((w) => ids.has(w.id));
    } else if (body.metadata !== undefined) {
      const meta = stringMap(body, 'metadata', /^.{1,256}$/, 'string values');
      if (!meta || Object.keys(meta).length === 0) throw badField('metadata', 'a non-empty object of tag values');
      const poolArg = str(body, 'pool', { optional: true });
      const pool = poolArg ? this.pool(poolArg) : undefined;
      rows = this.store.workers.list(pool?.id).filter((w) => matches(w, Object.entries(meta)));
    } else {
      throw badField('ids', 'a list of worker ids, or "metadata" with tag values to match');
    }
    for (const w of rows) {
      this.store.workers.update(w.id, { drained: drained ? 1 : 0 });
      this.s.wake(w.id);
    }
    if (!drained) for (const pool of new Set(rows.map((w) => w.pool_id))) this.s.dispatch(pool);
    return { workers: rows.map((w) => this.workerView(this.store.workers.get(w.id)!)) };
  }

  // ------------------------------------------------------------ stacks

  stack(idOrName: string): StackRow {
    const st = this.store.stacks.find(idOrName);
    if (!st) throw new Refusal('not-found', 'STACK_NOT_FOUND', `Stack not found: "${idOrName}" (list stacks with GET /v1/stacks)`);
    return st;
  }

  listStacks(q: URLSearchParams): StackList {
    const poolArg = q.get('pool');
    const pool = poolArg ? this.pool(poolArg) : undefined;
    const kind = q.get('kind');
    return { stacks: this.store.stacks.list().filter((s) => (!pool || s.pool_id === pool.id) && (!kind || s.kind === kind)).map((s) => this.stackView(s)) };
  }

  private stackFields(body: Record<string, unknown>, partial: boolean): Partial<StackRow> {
    const out: Partial<StackRow> = {};
    if (!partial || body.name !== undefined) out.name = str(body, 'name', { pattern: NAME, hint: NAME_HINT })!;
    if (body.kind !== undefined || !partial) {
      const kind = body.kind ?? 'stack';
      if (kind !== 'stack' && kind !== 'module') throw badField('kind', '"stack" or "module"');
      out.kind = kind;
    }
    if ('pool' in body) out.pool_id = body.pool === null ? null : this.pool(str(body, 'pool')!).id;
    if ('image' in body) out.image = str(body, 'image', { optional: true, max: 512, hint: 'an image reference or null' }) ?? null;
    if ('env' in body || !partial) out.env = JSON.stringify(stringMap(body, 'env', ENV_NAME, 'variable names ([A-Za-z_][A-Za-z0-9_]*) with string values') ?? {});
    if ('secretEnv' in body) out.secret_env = sealedField(body, 'secretEnv', 1024 * 1024);
    if ('tool' in body) {
      try {
        const tool = parseToolConfig(body.tool);
        out.tool = tool ? JSON.stringify(tool) : null;
      } catch (e) {
        if (e instanceof ToolConfigError) throw new Refusal('invalid', 'INVALID_FIELD', e.message);
        throw e;
      }
    }
    const hasTool = out.tool !== undefined ? out.tool !== null : false;
    if ('phases' in body && body.phases !== null) out.phases = JSON.stringify(phasesField(body.phases));
    else if (!partial) {
      if (!hasTool) throw badField('phases', `a list of 1 to ${MAX_PHASES} phases {"name", "script", "confirm"?}, or a "tool" ({"name": "terraform"}) whose steps are the phases`);
      out.phases = '[]';
    }
    if ('projectRoot' in body) {
      try { out.project_root = relativePath(body.projectRoot, 'projectRoot'); } catch (e) { throw new Refusal('invalid', 'INVALID_FIELD', (e as Error).message); }
    }
    if ('stateHistory' in body) {
      const n = body.stateHistory;
      if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > MAX_STATE_HISTORY) throw badField('stateHistory', `how many state versions to keep, an integer from 1 to ${MAX_STATE_HISTORY} (default ${DEFAULT_STATE_HISTORY})`);
      out.state_history = n as number;
    }
    if ('repo' in body) {
      if (body.repo === null || body.repo === '') {
        Object.assign(out, { repo: null, repo_key: null, branch: null, repo_credential: null });
      } else {
        const repo = str(body, 'repo', { max: 2048, hint: REPO_URL_HINT })!;
        const problem = repoUrlProblem(repo);
        if (problem) throw new Refusal('invalid', 'INVALID_FIELD', `Invalid field "repo": ${problem} (expected ${REPO_URL_HINT})`);
        out.repo = repo;
        out.repo_key = repoKey(repo) ?? null;
      }
    }
    if ('branch' in body && body.branch !== null) out.branch = branchField(body, 'branch');
    if ('repoCredential' in body) out.repo_credential = sealedField(body, 'repoCredential', 64 * 1024);
    if ('triggerPaths' in body) {
      const v = body.triggerPaths ?? [];
      if (!Array.isArray(v) || v.length > MAX_TRIGGER_PATHS || !v.every((g) => typeof g === 'string')) throw badField('triggerPaths', `a list of at most ${MAX_TRIGGER_PATHS} path patterns (${GLOB_HINT})`);
      for (const g of v as string[]) {
        const problem = globProblem(g);
        if (problem) throw new Refusal('invalid', 'INVALID_FIELD', `Invalid field "triggerPaths": "${g}": ${problem} (expected ${GLOB_HINT})`);
      }
      out.trigger_paths = JSON.stringify(v);
    }
    if ('proposeBranches' in body) out.propose_branches = bool(body, 'proposeBranches', true) ? 1 : 0;
    return out;
  }

  /**
   * Git fields that only make sense together: a branch (default main) with a
   * repository, a webhook secret for it (shared by every stack on the same
   * repository, so one webhook per repository serves them all).
   */
  private sourceFields(f: Partial<StackRow>, current: StackRow | undefined): void {
    const repo = f.repo !== undefined ? f.repo : current?.repo ?? null;
    if (repo === null) {
      const stray = (['branch', 'repo_credential', 'trigger_paths'] as const).find((k) => f[k] !== undefined && f[k] !== null && f[k] !== '[]');
      if (stray) throw new Refusal('invalid', 'INVALID_FIELD', `Invalid field "${stray === 'repo_credential' ? 'repoCredential' : stray === 'trigger_paths' ? 'triggerPaths' : 'branch'}": the stack has no repository (give "repo" too)`);
      if (f.repo === null) f.webhook_secret = null;
      return;
    }
    if ((current?.branch ?? null) === null && f.branch === undefined) f.branch = 'main';
    if (f.repo !== undefined && (current?.repo_key !== f.repo_key || !current?.webhook_secret)) {
      const sibling = this.store.stacks.byRepoKey([f.repo_key!]).find((s) => s.id !== current?.id && s.webhook_secret);
      f.webhook_secret = sibling?.webhook_secret ?? randomBytes(24).toString('base64url');
    }
  }

  /** A stack has either phases or a tool, never both and never neither. */
  private checkShape(row: { tool: string | null; phases: string }): void {
    const phases = JSON.parse(row.phases) as unknown[];
    if (row.tool !== null && phases.length > 0) throw badField('phases', 'no phases on a stack with a "tool": its steps are the phases (set "tool": null to use phases)');
    if (row.tool === null && phases.length === 0) throw badField('phases', `a list of 1 to ${MAX_PHASES} phases, or a "tool"`);
  }

  createStack(body: Record<string, unknown>): StackReply {
    const f = this.stackFields(body, false);
    this.sourceFields(f, undefined);
    if (this.store.stacks.find(f.name!)) throw new Refusal('conflict', 'NAME_TAKEN', `Stack name taken: "${f.name}" (choose another name)`);
    const now = iso();
    const row: StackRow = {
      id: newId('stk'), name: f.name!, kind: f.kind!, pool_id: f.pool_id ?? null, image: f.image ?? null,
      env: f.env!, secret_env: f.secret_env ?? null, phases: f.phases!, created_at: now, updated_at: now, deleted_at: null,
      repo: f.repo ?? null, repo_key: f.repo_key ?? null, branch: f.branch ?? null, repo_credential: f.repo_credential ?? null,
      trigger_paths: f.trigger_paths ?? '[]', propose_branches: f.propose_branches ?? 1, webhook_secret: f.webhook_secret ?? null,
      tool: f.tool ?? null, project_root: f.project_root ?? '.', state_history: f.state_history ?? DEFAULT_STATE_HISTORY,
      state_holder: null, drifted_run: null,
    };
    this.checkShape(row);
    this.store.stacks.insert(row);
    return { stack: this.stackView(row) };
  }

  async updateStack(idOrName: string, body: Record<string, unknown>): Promise<StackReply> {
    const st = this.stack(idOrName);
    const f = this.stackFields(body, true);
    this.sourceFields(f, st);
    if (f.name && f.name !== st.name) {
      const other = this.store.stacks.find(f.name);
      if (other && other.id !== st.id) throw new Refusal('conflict', 'NAME_TAKEN', `Stack name taken: "${f.name}" (choose another name)`);
    }
    // Switching to a tool drops the phases, and back again needs phases.
    if (f.tool !== undefined && f.tool !== null && f.phases === undefined) f.phases = '[]';
    this.checkShape({ tool: f.tool !== undefined ? f.tool : st.tool, phases: f.phases ?? st.phases });
    this.store.stacks.update(st.id, { ...f, updated_at: iso() });
    const after = this.store.stacks.find(st.id)!;
    if (f.state_history !== undefined) await this.s.states.prune(after);
    return { stack: this.stackView(after) };
  }

  /** Where a Git server sends pushes for this stack, and the secret it signs them with. */
  webhook(idOrName: string): WebhookReply {
    const st = this.stack(idOrName);
    if (!st.repo || !st.webhook_secret) throw new Refusal('conflict', 'STACK_NO_REPO', `Stack ${st.name} has no repository: set one with PATCH /v1/stacks/${st.id} {"repo": URL, "branch": BRANCH}`);
    const shared = this.store.stacks.byRepoKey([st.repo_key!]).filter((s) => s.webhook_secret === st.webhook_secret).map((s) => s.name);
    return { webhook: { url: `${this.s.serverUrl}/v1/hooks/git`, secret: st.webhook_secret, contentType: 'application/json', events: ['push'], repo: st.repo, stacks: shared } };
  }

  stackView(st: StackRow): StackView {
    const cur = this.s.states.rows.current(st.id);
    const holder = this.s.states.holder(st);
    return stackJson(st, { stateVersion: cur?.version ?? null, stateHolder: holder?.id ?? null });
  }

  async deleteStack(idOrName: string, purgeState: boolean): Promise<StackDeleteReply> {
    const st = this.stack(idOrName);
    const active = this.store.runs.activeCount('stack', st.id);
    if (active > 0) throw new Refusal('conflict', 'STACK_BUSY', `Stack ${st.id} has ${active} active run(s): cancel or finish them first`);
    this.store.stacks.update(st.id, { deleted_at: iso() });
    this.store.schedules.endForStack(st.id, iso());
    const view = this.stackView(st);
    if (!purgeState) return { stack: view };
    return { stack: view, purgedStateVersions: await this.s.states.purge(st.id) };
  }

  // ------------------------------------------------------------ managed state

  /** A live stack by id or name, or a deleted one by id (its state is kept until purged). */
  stateStack(idOrName: string): StackRow {
    const st = this.store.stacks.find(idOrName) ?? this.store.stacks.any(idOrName);
    if (!st) throw new Refusal('not-found', 'STACK_NOT_FOUND', `Stack not found: "${idOrName}" (list stacks with GET /v1/stacks; a deleted stack's state is reachable by its id)`);
    return st;
  }

  stateList(idOrName: string): StateList {
    const st = this.stateStack(idOrName);
    const versions = this.s.states.rows.list(st.id);
    return {
      stack: st.id, current: versions[0]?.version ?? null, holder: this.s.states.holder(st)?.id ?? null,
      history: st.state_history, versions: versions.map(stateVersionJson),
    };
  }

  /** Writers other than the holding run wait until it ends. */
  private notHeld(st: StackRow, what: string): () => void {
    return () => {
      const fresh = this.store.stacks.any(st.id) ?? st;
      const h = this.s.states.holder(fresh);
      if (h) throw new Refusal('conflict', 'STATE_LOCKED', `Cannot ${what} the state of ${st.name}: run ${h.id} holds it until it ends (wait for it, or cancel it)`, { holder: h.id });
    };
  }

  async statePush(idOrName: string, body: Readable, declared: number, q: URLSearchParams): Promise<StateVersionReply> {
    const st = this.stateStack(idOrName);
    const w = stateWriteQuery(q, null, 'push');
    this.notHeld(st, 'push')();
    const got = await this.s.states.receive(body, declared);
    const row = await this.s.states.commit(st, got, w, { check: this.notHeld(st, 'push') });
    return { version: stateVersionJson(row) };
  }

  async stateRollback(idOrName: string, body: Record<string, unknown>): Promise<StateVersionReply> {
    const st = this.stateStack(idOrName);
    const v = body.version;
    if (!Number.isInteger(v) || (v as number) < 1) throw badField('version', 'the state version to restore (an integer from 1; see GET /v1/stacks/{id}/state)');
    const row = await this.s.states.rollback(st, v as number, this.notHeld(st, 'roll back'));
    return { version: stateVersionJson(row) };
  }

  // ------------------------------------------------------------ runs

  runView(r: RunRow): RunView {
    const phases = this.store.runs.phases(r.id);
    let reason = r.reason;
    if (r.state === 'QUEUED' && r.holds_state === 1) {
      const st = this.store.stacks.any(r.stack_id);
      const holder = st ? this.s.states.holder(st) : undefined;
      if (holder && holder.id !== r.id) reason = `waiting: run ${holder.id} holds the stack's state until it ends`;
    }
    return runJson({ ...r, reason }, phases, Service.status(r, phases[r.phase]));
  }

  run(id: string): RunRow {
    const r = this.store.runs.get(id);
    if (!r) throw new Refusal('not-found', 'RUN_NOT_FOUND', `Run not found: "${id}"`);
    return r;
  }

  /** Creates a run; `workspaceTmp` is a received sealed upload to move into place. */
  async trigger(stackArg: string, proposedAsked: boolean, workspace: { tmp: string } | Buffer | undefined, opts: TriggerOptions | string | null = {}): Promise<RunReply> {
    const o: TriggerOptions = typeof opts === 'string' || opts === null ? { trigger: opts } : opts;
    const st = this.stack(stackArg);
    const pool = this.triggerPool(st);
    const commit = this.runCommit(st, proposedAsked, workspace !== undefined, o);
    const id = newId('run');
    const blobs = this.s.opts.blobs;
    if (workspace) {
      const dest = blobs.workspacePath(id);
      if (Buffer.isBuffer(workspace)) {
        await blobs.store(dest, workspace);
      } else {
        await blobs.commit(workspace.tmp, dest);
      }
    }
    this.insertRun(id, st, pool, proposedAsked, workspace !== undefined, commit, o.trigger ?? null);
    return { run: this.runView(this.run(id)) };
  }

  triggerPool(st: StackRow): PoolRow {
    if (!st.pool_id) throw new Refusal('conflict', 'STACK_NO_POOL', `Stack ${st.name} is not attached to a worker pool (PATCH /v1/stacks/${st.id} with {"pool": ID})`);
    return this.pool(st.pool_id);
  }

  /** The commit a new run records (null for a stack without a repository, or an uploaded workspace). */
  runCommit(st: StackRow, proposed: boolean, uploaded: boolean, o: TriggerOptions): RunCommit | null {
    if ((o.commit !== undefined || o.branch !== undefined) && !st.repo) {
      throw new Refusal('conflict', 'STACK_NO_REPO', `Cannot run ${st.name} at a commit or branch: it has no repository (set one with --repo URL --branch BRANCH)`);
    }
    if (o.commit !== undefined && !SHA_RE.test(o.commit)) throw badField('commit', 'a full 40-character commit SHA (lowercase hex)');
    if (o.branch !== undefined) branchField({ branch: o.branch }, 'branch');
    if (!st.repo || (uploaded && o.commit === undefined && o.branch === undefined)) return null;
    const branch = o.branch ?? st.branch;
    if (!proposed && branch !== st.branch) {
      throw new Refusal('conflict', 'BRANCH_NOT_TRACKED', `Cannot queue a tracked run of ${st.name} from branch "${branch}": the stack tracks "${st.branch}"; ask for a proposed (read-only) run, or change the stack's branch`);
    }
    return { repo: st.repo, branch, sha: o.commit ?? null, author: o.author ?? null, message: o.message ?? null };
  }

  /** Inserts a run (and hands it to a waiting worker) in one transaction. */
  insertRun(id: string, st: StackRow, pool: PoolRow, proposedAsked: boolean, hasWorkspace: boolean, commit: RunCommit | null, trigger: string | null): void {
    const tool = st.tool ? parseToolConfig(JSON.parse(st.tool)) : null;
    // A module's run only checks (init, validate, test): it is always proposed.
    const proposed = proposedAsked || (tool !== null && st.kind === 'module');
    const phases: PhaseSpec[] = tool
      ? toolPhases(tool, { kind: st.kind, proposed, projectRoot: st.project_root })
      : (JSON.parse(st.phases) as PhaseSpec[]).map((p) => ({ ...p, script: inProjectRoot(st.project_root, p.script) }));
    const manageState = tool !== null && tool.manageState && st.kind === 'stack';
    const spec: RunSpec = {
      image: st.image, env: JSON.parse(st.env) as Record<string, string>, phases,
      ...(tool ? { tool: { name: tool.name, projectRoot: st.project_root, manageState } } : {}),
    };
    if (commit && !hasWorkspace) {
      spec.source = {
        repo: commit.repo, branch: commit.branch, commit: commit.sha,
        credential: st.repo_credential ? Buffer.from(st.repo_credential).toString('base64') : null,
      };
    }
    const now = iso();
    const state = initialState(phases);
    transaction(this.store.db, () => {
      this.store.runs.insert({
        id, stack_id: st.id, stack_name: st.name, stack_kind: st.kind, pool_id: pool.id, proposed: proposed ? 1 : 0,
        state, phase: 0, phase_count: phases.length, spec: JSON.stringify(spec), secret_env: st.secret_env,
        worker_id: null, cancel_requested: 0, has_workspace: hasWorkspace ? 1 : 0, reason: null,
        created_at: now, updated_at: now, ended_at: null,
        holds_state: manageState && !proposed ? 1 : 0, trigger,
        commit_repo: commit?.repo ?? null, commit_branch: commit?.branch ?? null, commit_sha: commit?.sha ?? null,
        commit_author: commit?.author ?? null, commit_message: commit?.message ?? null,
      }, phases);
      // In the same transaction: a waiting launcher gets the run with one
      // commit, and its answer leaves only after it (afterCommit).
      if (state === 'QUEUED') this.s.dispatch(pool.id);
    });
    this.s.log.debug('Run triggered', { run: id, stack: st.id, pool: pool.id, state, commit: commit?.sha ?? undefined });
  }

  listRuns(q: URLSearchParams): RunList {
    const limit = q.get('limit') === null ? 100 : Number(q.get('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badField('limit', 'an integer from 1 to 1000');
    const stackArg = q.get('stack');
    const poolArg = q.get('pool');
    const state = q.get('state') ?? undefined;
    const stack = stackArg ? (this.store.stacks.find(stackArg)?.id ?? stackArg) : undefined;
    const pool = poolArg ? this.pool(poolArg).id : undefined;
    return { runs: this.store.runs.list({ stack, pool, state: state?.toUpperCase(), limit }).map((r) => this.runView(r)) };
  }

  act(id: string, action: RunAction): RunReply {
    const r = this.run(id);
    const ph = this.store.runs.phase(r.id, r.phase)!;
    const to = adminTransition(r.state, action, ph.started_at !== null);
    if (to === undefined) throw new Refusal('conflict', 'RUN_STATE', `Cannot ${action} run ${r.id}: it is ${r.state}`);
    const now = iso();
    if (action === 'prioritize') {
      this.store.runs.update(r.id, { queue_key: prioritizedKey(this.store.runs.activeQueueKeys(r.pool_id)), updated_at: now });
    } else if (to === 'request-cancel') {
      this.store.runs.update(r.id, { cancel_requested: 1, updated_at: now });
      if (r.worker_id) this.s.wake(r.worker_id);
    } else {
      const state = to as RunState;
      const ended = state === 'CANCELED' || state === 'DISCARDED';
      transaction(this.store.db, () => {
        this.store.runs.update(r.id, {
          state, worker_id: null, updated_at: now, ended_at: ended ? now : null,
          reason: ended ? (state === 'CANCELED' ? 'canceled' : 'discarded') : null,
          cancel_requested: state === 'CANCELED' ? 1 : r.cancel_requested,
        });
        if (r.state === 'RUNNING' && r.worker_id) {
          this.store.runs.updatePhase(r.id, r.phase, { outcome: 'canceled', ended_at: now });
          this.store.workers.update(r.worker_id, { current_run: null, idle_since: now });
        }
      });
      if (r.state === 'RUNNING' && r.worker_id) {
        this.s.opts.metrics?.phaseEnded(r.pool_id, ph, 'canceled', now);
        this.s.wake(r.worker_id);
      }
      if (ended) this.s.opts.metrics?.runEnded(r, state, now);
      // QUEUED again, or ended while holding the stack's state: waiting runs may go.
      if (state === 'QUEUED' || (ended && r.holds_state === 1)) this.s.dispatch(r.pool_id);
    }
    this.s.changed(r.id);
    return { run: this.runView(this.run(r.id)) };
  }
}

function metadataPairs(list: string[]): [string, string][] {
  return list.map((s) => {
    const i = s.indexOf('=');
    if (i <= 0) throw badField('metadata', 'KEY=VALUE');
    return [s.slice(0, i), s.slice(i + 1)];
  });
}

function matches(w: WorkerRow, pairs: [string, string][]): boolean {
  if (pairs.length === 0) return true;
  const meta = JSON.parse(w.metadata) as Record<string, string>;
  return pairs.every(([k, v]) => meta[k] === v);
}

/** A base64 age file field: refused unless it decodes and starts like an age file. */
export function sealedField(body: Record<string, unknown>, name: string, max: number): Uint8Array | null {
  const v = body[name];
  if (v === null || v === undefined || v === '') return null;
  const hint = 'base64 of an age file sealed to the pool\'s keys (launcher admin seals it), or null';
  if (typeof v !== 'string' || v.length > max * 2) throw badField(name, hint);
  const buf = decodeBase64Strict(v.replace(/\s+/g, ''));
  if (!buf || buf.length > max || !looksSealed(buf)) throw badField(name, hint);
  return buf;
}

function branchField(body: Record<string, unknown>, name: string): string {
  const v = str(body, name, { max: 255, hint: 'a branch name, e.g. main' })!;
  const problem = branchProblem(v);
  if (problem) throw new Refusal('invalid', 'INVALID_FIELD', `Invalid field "${name}": "${v}": ${problem} (expected a branch name, e.g. main)`);
  return v;
}

function phasesField(v: unknown): PhaseSpec[] {
  const hint = `a list of 1 to ${MAX_PHASES} phases {"name", "script", "confirm"?}`;
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_PHASES) throw badField('phases', hint);
  const seen = new Set<string>();
  return v.map((p: unknown, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw badField(`phases[${i}]`, '{"name", "script", "confirm"?}');
    const o = p as Record<string, unknown>;
    const name = str(o, 'name', { pattern: NAME, hint: NAME_HINT });
    if (seen.has(name!)) throw badField(`phases[${i}].name`, 'a name not used by another phase');
    seen.add(name!);
    const script = str(o, 'script', { max: 256 * 1024, hint: 'the phase\'s shell script (at most 256 KiB)' })!;
    return { name: name!, script, confirm: bool(o, 'confirm', false) };
  });
}
