// The launcher's part of a tool step (Terraform/OpenTofu) around the
// container: before the run's first step it downloads the stack's current
// sealed state version, opens it with the pool key and puts it, with the
// backend override, into the project root; after every step of a tracked run
// (also a failed, canceled or interrupted one) it reads the state file back
// from the stopped container and, if Terraform wrote a new serial, seals it to
// every active pool key and uploads it naming the version it started from.
// After a plan it reads the plan JSON and keeps only counts and addresses.
// Plaintext state exists only on this host (0600 files in the phase's work
// directory, removed with it) and in the container.
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { open as openFile, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, pack } from 'tar-stream';
import { createOpenStream, type Identity, type Recipient } from '../age/index.ts';
import { isNotFound, type DockerClient } from '../docker/client.ts';
import { getArchive } from '../docker/archive.ts';
import { DEFAULT_WORKING_DIR, type PhaseOutcome } from '../executor.ts';
import { summarisePlan, changesText } from '../tool/plan.ts';
import type { PlanSummary } from '../protocol.ts';
import { readStateHead, stateChanged } from '../tool/state.ts';
import { OVERRIDE_FILE, PLAN_JSON, STATE_FILE, TOOL_DIR, overrideFile } from '../tool/steps.ts';
import { ServerError, type WorkerApi } from './api.ts';
import type { Assignment } from '../protocol.ts';
import { retryTransient, type RetryOptions } from './retry.ts';
import { sealAndUpload } from './seal-upload.ts';

export interface ToolStepDeps {
  api: WorkerApi;
  docker: DockerClient;
  identity: Identity;
  recipients: Recipient[];
  /** The phase's private scratch directory (0700, removed after the phase). */
  workDir: string;
  retry: RetryOptions;
  /** A line for the run's log (masked like the run's output). */
  note(line: string): void;
}

export interface Collected {
  plan?: PlanSummary;
  stateVersion?: number;
  /** Why the step's state could not be stored: the phase fails with it. */
  error?: string;
}

const inRoot = (root: string, p: string): string => (root === '.' ? p : posix.join(root, p));

/** Before the run's first step: a tar of the override file and the opened state, or undefined when not managed. */
export async function prepareToolState(a: Assignment, deps: ToolStepDeps): Promise<(() => Readable) | undefined> {
  const t = a.tool;
  if (!t?.manageState || !t.firstStep) return undefined;
  let stateFile: string | undefined;
  if (t.state) {
    const sealed = join(deps.workDir, 'state.age');
    stateFile = join(deps.workDir, 'state.tfstate');
    const version = t.state.version;
    await retryTransient(async () => pipeline(await deps.api.downloadState(a.runId, version), createWriteStream(sealed, { mode: 0o600 })), deps.retry);
    await pipeline(createReadStream(sealed), createOpenStream([deps.identity]), createWriteStream(stateFile, { mode: 0o600 }));
    deps.note(`State version ${version} (serial ${t.state.serial ?? '?'}) restored to ${inRoot(t.projectRoot, STATE_FILE)}${a.proposed ? ' (read-only: a proposed run never writes state)' : ''}`);
  } else {
    deps.note(`The stack has no state yet: starting from an empty state${a.proposed ? '' : '; the first version is stored after the step that writes it'}`);
  }
  const file = stateFile;
  return () => {
    const p = pack();
    const out = new PassThrough();
    (async () => {
      const root = t.projectRoot;
      if (root !== '.') {
        const parts = root.split('/');
        for (let i = 1; i <= parts.length; i++) p.entry({ name: parts.slice(0, i).join('/') + '/', type: 'directory', mode: 0o755 });
      }
      const text = Buffer.from(overrideFile());
      p.entry({ name: inRoot(root, OVERRIDE_FILE), mode: 0o644, size: text.length }, text);
      p.entry({ name: inRoot(root, TOOL_DIR) + '/', type: 'directory', mode: 0o755 });
      if (file) {
        const size = statSync(file).size;
        const entry = p.entry({ name: inRoot(root, STATE_FILE), mode: 0o600, size });
        await pipeline(createReadStream(file), entry);
      }
      p.finalize();
    })().catch((e: unknown) => p.destroy(e as Error));
    p.pipe(out);
    p.on('error', (e) => out.destroy(e));
    return out;
  };
}

/** Copies one file out of a stopped container into `dest`; false when the container has no such file. */
export async function copyFileOut(docker: DockerClient, containerId: string, path: string, dest: string): Promise<boolean> {
  let tar: Readable;
  try {
    tar = await getArchive(docker, containerId, path);
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
  const ex = extract();
  let found = false;
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      if (found || header.type !== 'file') { stream.resume(); stream.on('end', next); return; }
      found = true;
      pipeline(stream, createWriteStream(dest, { mode: 0o600 })).then(() => next(), reject);
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  tar.pipe(ex);
  await done;
  return found;
}

async function head(path: string, bytes = 64 * 1024): Promise<string> {
  const fh = await openFile(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** After a step, from the stopped container: the plan summary and the new state version. Never throws. */
export async function collectToolStep(a: Assignment, containerId: string, outcome: PhaseOutcome, deps: ToolStepDeps): Promise<Collected> {
  const t = a.tool;
  const out: Collected = {};
  if (!t) return out;
  const dir = posix.join(DEFAULT_WORKING_DIR, t.projectRoot);
  if (t.step === 'plan' && outcome === 'succeeded') {
    try {
      const f = join(deps.workDir, 'plan.json');
      if (!await copyFileOut(deps.docker, containerId, posix.join(dir, PLAN_JSON), f)) throw new Error(`the step left no ${PLAN_JSON}`);
      out.plan = summarisePlan(JSON.parse(await readFile(f, 'utf8')) as unknown);
      deps.note(`Planned changes: ${changesText(out.plan)}${out.plan.hasChanges ? '' : ' (no changes)'}`);
    } catch (e) {
      out.error = `PLAN_UNREADABLE: cannot read the plan's changes: ${(e as Error).message}`;
      deps.note(out.error);
    }
  }
  if (t.writesState) {
    try {
      const f = join(deps.workDir, 'after.tfstate');
      if (await copyFileOut(deps.docker, containerId, posix.join(dir, STATE_FILE), f)) {
        const h = readStateHead(await head(f));
        if (!h) {
          deps.note(`${STATE_FILE} is not a Terraform state file: not stored`);
        } else if (stateChanged(t.state ? { serial: t.state.serial ?? -1, lineage: t.state.lineage ?? '' } : null, h)) {
          const base = t.state?.version ?? null;
          let version = 0;
          await sealAndUpload(createReadStream(f), join(deps.workDir, 'after.age'), deps.recipients, async (body) => {
            version = await deps.api.uploadState(a.runId, a.phase, body, { base, serial: h.serial, lineage: h.lineage });
          }, deps.retry);
          out.stateVersion = version;
          deps.note(`State version ${version} stored (serial ${h.serial}${outcome === 'succeeded' ? '' : `, partial: the step ended ${outcome}`}), sealed to ${deps.recipients.length} pool key(s)`);
        }
      }
    } catch (e) {
      const conflict = e instanceof ServerError && e.code === 'STATE_CONFLICT';
      out.error = conflict
        ? `STATE_CONFLICT: the stack's state moved while this run held it; the new state is kept sealed beside the run (${(e as Error).message})`
        : `STATE_NOT_STORED: cannot store the step's state: ${(e as Error).message}`;
      deps.note(out.error);
    }
  }
  return out;
}
