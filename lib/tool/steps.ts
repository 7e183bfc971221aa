// Step planning: which phases a run of a tool stack has, and the shell script
// each phase runs. Pure. The launcher adds what cannot be known at trigger
// time (the state version, the backend override) when it runs a step.
import type { HookPoint, Step, ToolConfig } from './config.ts';

/** Files the workflow keeps in the project root, beside the user's code. */
export const TOOL_DIR = '.launcher';
export const STATE_FILE = `${TOOL_DIR}/terraform.tfstate`;
export const PLAN_FILE = `${TOOL_DIR}/tfplan`;
export const PLAN_JSON = `${TOOL_DIR}/plan.json`;
/** Terraform merges `*_override.tf` over the code: this one pins the local backend. */
export const OVERRIDE_FILE = 'launcher_override.tf';

/** What `run show` and `run list` call a run while this step runs. */
export const STEP_STATUS: Record<Step, string> = {
  init: 'INITIALIZING', plan: 'PLANNING', apply: 'APPLYING', validate: 'VALIDATING', test: 'TESTING',
};

export interface ToolPhase { name: Step; step: Step; script: string; confirm: boolean }

/**
 * A stop (cancel, timeout, a launcher giving up) sends SIGTERM to the script,
 * but the tool is the script's child and would die with the container without
 * writing its state. So the tool runs in the background and the signal is
 * forwarded to it as SIGTERM, which Terraform and OpenTofu treat like Ctrl-C:
 * they stop their operations, record what they created (a half-done resource
 * as tainted) and exit. (SIGINT would not do: a background job of a
 * non-interactive shell starts with SIGINT ignored.)
 */
const FORWARD_SIGNALS = [
  'child=',
  `trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM INT`,
  'tf_run() { "$@" & child=$!; rc=0; wait "$child" || rc=$?; while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done; child=; return "$rc"; }',
];

/** POSIX single quoting: safe for any string. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The first lines of every script of a stack with a project root. */
export function cdLine(projectRoot: string): string {
  return projectRoot === '.' ? '' : `cd -- ${shQuote(projectRoot)} || { echo "[launcher] The project root ${projectRoot.replace(/["\\$`]/g, '\\$&')} is not a directory in the workspace" >&2; exit 1; }\n`;
}

/** A plain phase stack's script with the project root applied. */
export function inProjectRoot(projectRoot: string, script: string): string {
  return cdLine(projectRoot) + script;
}

/** The phases of one run: a stack's tracked run plans then applies; proposed runs and modules never apply. */
export function toolPhases(cfg: ToolConfig, opts: { kind: 'stack' | 'module'; proposed: boolean; projectRoot: string }): ToolPhase[] {
  const steps: Step[] = opts.kind === 'module' ? ['init', 'validate', 'test'] : opts.proposed ? ['init', 'plan'] : ['init', 'plan', 'apply'];
  return steps.map((step) => ({
    name: step, step,
    script: stepScript(cfg, step, { projectRoot: opts.projectRoot, module: opts.kind === 'module' }),
    confirm: step === 'apply' && !cfg.autodeploy,
  }));
}

function hooks(cfg: ToolConfig, point: HookPoint): string[] {
  return (cfg.hooks[point] ?? []).map((cmd) => `sh -c ${shQuote(cmd)} || { rc=$?; echo "[launcher] ${point} hook failed (exit $rc)" >&2; exit $rc; }`);
}

/** The script of one step. State lives in .launcher/ under the project root (see OVERRIDE_FILE). */
export function stepScript(cfg: ToolConfig, step: Step, opts: { projectRoot: string; module?: boolean }): string {
  const tf = `tf_run ${shQuote(cfg.binary)}`;
  const extra = (cfg.args[step] ?? []).map(shQuote).join(' ');
  const withExtra = (cmd: string) => (extra ? `${cmd} ${extra}` : cmd);
  const lines: string[] = ['set -e', cdLine(opts.projectRoot).trimEnd(), 'export TF_IN_AUTOMATION=1 TF_INPUT=0', ...FORWARD_SIGNALS].filter(Boolean);
  const managed = cfg.manageState && !opts.module;
  switch (step) {
    case 'init':
      if (managed) {
        lines.push(
          `echo "[launcher] Managed state: ${OVERRIDE_FILE} pins the local backend to ${STATE_FILE}; the state is sealed to the pool's keys between runs"`,
          `for f in *.tf; do [ "$f" = ${OVERRIDE_FILE} ] && continue; if grep -qE '^[[:space:]]*(backend[[:space:]]+"|cloud[[:space:]]*[{])' "$f" 2>/dev/null; then echo "[launcher] $f declares a backend or cloud block: it is overridden, state stays managed (--manage-state=false keeps your own backend)"; fi; done`,
        );
      }
      lines.push(...hooks(cfg, 'before-init'));
      lines.push(withExtra(`${tf} init -input=false${managed ? ' -reconfigure' : ''}${opts.module ? ' -backend=false' : ''}`));
      lines.push(...hooks(cfg, 'after-init'));
      break;
    case 'plan':
      lines.push(...hooks(cfg, 'before-plan'));
      lines.push(`mkdir -p ${TOOL_DIR}`, `rm -f ${PLAN_FILE} ${PLAN_JSON}`);
      lines.push(withExtra(`${tf} plan -input=false -out=${PLAN_FILE}${cfg.varFiles.map((f) => ` -var-file=${shQuote(f)}`).join('')}`));
      // The launcher reads this to count the changes; it never leaves the worker unsealed.
      lines.push(`${tf} show -json ${PLAN_FILE} > ${PLAN_JSON}`);
      lines.push(...hooks(cfg, 'after-plan'));
      break;
    case 'apply':
      lines.push(...hooks(cfg, 'before-apply'));
      // Exactly the saved plan that was confirmed, nothing re-planned.
      lines.push(withExtra(`${tf} apply -input=false`) + ` ${PLAN_FILE}`);
      lines.push(...hooks(cfg, 'after-apply'));
      break;
    case 'validate':
      lines.push(withExtra(`${tf} validate`));
      break;
    case 'test':
      lines.push(withExtra(`${tf} test`));
      break;
  }
  return lines.join('\n') + '\n';
}

/** The override file the launcher writes into the project root of a managed-state run. */
export function overrideFile(): string {
  return [
    '# Written by the launcher: this stack\'s state is managed (sealed to the pool\'s keys',
    '# and versioned per stack), so the local backend is pinned here and any backend',
    '# or cloud block in the code is overridden. Turn off with --manage-state=false.',
    'terraform {',
    '  backend "local" {',
    `    path = "${STATE_FILE}"`,
    '  }',
    '}',
    '',
  ].join('\n');
}
