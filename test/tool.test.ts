// The tool workflow's pure core: stack settings, step planning and scripts,
// plan-JSON summaries, state-version rules. No sockets, no containers; the
// scripts are also run by a real shell where their behaviour matters.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseToolConfig, relativePath, ToolConfigError } from '../lib/tool/config.ts';
import { actionOf, changesText, parsePlanSummary, summarisePlan } from '../lib/tool/plan.ts';
import { baseMatches, readStateHead, stateChanged, versionsToPrune } from '../lib/tool/state.ts';
import { inProjectRoot, overrideFile, shQuote, stepScript, toolPhases } from '../lib/tool/steps.ts';

const cfg = (o: Record<string, unknown> = {}) => parseToolConfig({ name: 'terraform', ...o })!;

test('tool settings: defaults, and errors that name the field and what is accepted', () => {
  assert.equal(cfg(), { name: 'terraform', binary: 'terraform', manageState: true, autodeploy: false, varFiles: [], hooks: {}, args: {} });
  assert.is(parseToolConfig(null), null);
  assert.is(cfg({ name: 'tofu' }).binary, 'tofu');
  assert.is(cfg({ binary: '/opt/tf/bin/terraform' }).binary, '/opt/tf/bin/terraform');
  assert.throws(() => parseToolConfig({ name: 'pulumi' }), /"tool.name": expected "terraform" or "tofu"/);
  assert.throws(() => cfg({ binary: 'tf; rm -rf /' }), /"tool.binary"/);
  assert.throws(() => cfg({ hooks: { 'before-destroy': ['x'] } }), /"tool.hooks.before-destroy": expected one of before-init, after-init/);
  assert.throws(() => cfg({ args: { refresh: ['-x'] } }), /"tool.args.refresh": expected one of the steps init, plan, apply/);
  assert.throws(() => cfg({ varFiles: ['../secrets.tfvars'] }), /without ".."/);
  assert.throws(() => cfg({ colour: true }), /"tool.colour"/);
  try { cfg({ manageState: 'no' }); assert.unreachable(); } catch (e) { assert.instance(e, ToolConfigError); assert.is((e as ToolConfigError).field, 'tool.manageState'); }
  assert.is(relativePath('./infra//prod/', 'projectRoot'), 'infra/prod');
  assert.is(relativePath(undefined, 'projectRoot'), '.');
  assert.throws(() => relativePath('/abs', 'projectRoot'), /"projectRoot": expected a relative path/);
});

test('step planning: tracked stack init/plan/apply (apply confirms unless autodeploy), proposed stops at plan, module init/validate/test', () => {
  const t = toolPhases(cfg(), { kind: 'stack', proposed: false, projectRoot: '.' });
  assert.equal(t.map((p) => [p.step, p.confirm]), [['init', false], ['plan', false], ['apply', true]]);
  assert.equal(toolPhases(cfg({ autodeploy: true }), { kind: 'stack', proposed: false, projectRoot: '.' }).map((p) => p.confirm), [false, false, false]);
  assert.equal(toolPhases(cfg(), { kind: 'stack', proposed: true, projectRoot: '.' }).map((p) => p.step), ['init', 'plan']);
  const m = toolPhases(cfg(), { kind: 'module', proposed: true, projectRoot: '.' });
  assert.equal(m.map((p) => p.step), ['init', 'validate', 'test']);
  assert.match(m[0]!.script, /init -input=false -backend=false/);
  assert.not.match(m[0]!.script, /Managed state/, 'a module has no state');
});

test('step scripts: -input=false and TF_IN_AUTOMATION always, the saved plan applied, var files, extra arguments and hooks in order', () => {
  const c = cfg({ varFiles: ['prod.tfvars'], args: { plan: ['-parallelism=2'], apply: ['-no-color'] }, hooks: { 'before-plan': ['echo one', 'echo two'], 'after-apply': ['echo done'] } });
  const init = stepScript(c, 'init', { projectRoot: 'infra' });
  assert.match(init, /^set -e\ncd -- 'infra'/);
  assert.match(init, /export TF_IN_AUTOMATION=1 TF_INPUT=0/);
  assert.match(init, /'terraform' init -input=false -reconfigure/);
  const plan = stepScript(c, 'plan', { projectRoot: '.' });
  assert.match(plan, /'terraform' plan -input=false -out=\.launcher\/tfplan -var-file='prod\.tfvars' '-parallelism=2'/);
  assert.match(plan, /'terraform' show -json \.launcher\/tfplan > \.launcher\/plan\.json/);
  assert.ok(plan.indexOf("'echo one'") < plan.indexOf("'echo two'") && plan.indexOf("'echo two'") < plan.indexOf('plan -input'));
  const apply = stepScript(c, 'apply', { projectRoot: '.' });
  assert.match(apply, /'terraform' apply -input=false '-no-color' \.launcher\/tfplan\n/);
  assert.ok(apply.indexOf('apply -input') < apply.indexOf("'echo done'"));
  assert.not.match(stepScript(cfg({ manageState: false }), 'init', { projectRoot: '.' }), /-reconfigure|Managed state/);
});

test('step scripts run under a real shell: hooks fail the step with their exit code; a missing project root is named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-tool-sh-'));
  try {
    writeFileSync(join(dir, 'main.tf'), 'terraform {\n  backend "s3" {}\n}\n');
    const c = cfg({ binary: 'true', hooks: { 'before-init': ['echo hook-ran', 'exit 7'] } });
    const r = spawnSync('sh', ['-c', stepScript(c, 'init', { projectRoot: '.' })], { cwd: dir, encoding: 'utf8' });
    assert.is(r.status, 7);
    assert.match(r.stdout, /hook-ran/);
    assert.match(r.stdout, /main\.tf declares a backend or cloud block: it is overridden/);
    assert.match(r.stderr, /before-init hook failed \(exit 7\)/);
    const missing = spawnSync('sh', ['-c', stepScript(cfg({ binary: 'true' }), 'init', { projectRoot: 'nope/dir' })], { cwd: dir, encoding: 'utf8' });
    assert.is(missing.status, 1);
    assert.match(missing.stderr, /The project root nope\/dir is not a directory in the workspace/);
    assert.is(execFileSync('sh', ['-c', inProjectRoot('.', 'pwd')], { cwd: dir, encoding: 'utf8' }).trim(), dir);
    assert.is(shQuote("it's"), `'it'\\''s'`);
    assert.is(execFileSync('sh', ['-c', `printf %s ${shQuote("a'b $x `c`")}`], { encoding: 'utf8' }), "a'b $x `c`");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stop reaches the tool: SIGTERM to the step script is forwarded to the tool, and the step waits for it to finish and takes its exit code', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-tool-sig-'));
  try {
    // A stand-in tool: on SIGTERM it writes what Terraform would (its state) and exits 3.
    const fake = join(dir, 'faketf');
    writeFileSync(fake, '#!/bin/sh\ntrap \'echo interrupted > state.txt; exit 3\' TERM\necho started > started.txt\nwhile :; do sleep 0.1; done\n', { mode: 0o755 });
    const script = stepScript(cfg({ binary: fake, manageState: false }), 'apply', { projectRoot: '.' });
    const { spawn } = await import('node:child_process');
    const { existsSync, readFileSync } = await import('node:fs');
    const p = spawn('sh', ['-c', script], { cwd: dir, stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(join(dir, 'started.txt')); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(join(dir, 'started.txt')), 'the tool started');
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    assert.is(code, 3, 'the step ends with the tool\'s own exit code');
    assert.is(readFileSync(join(dir, 'state.txt'), 'utf8').trim(), 'interrupted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the override pins the local backend to the managed state file', () => {
  assert.match(overrideFile(), /terraform \{\n {2}backend "local" \{\n {4}path = "\.launcher\/terraform\.tfstate"/);
});

test('plan summary: counts by action, replace counted once, no-op and read ignored, output-only changes still count as changes, never values', () => {
  const plan = {
    format_version: '1.2',
    resource_changes: [
      { address: 'terraform_data.a', change: { actions: ['create'], after: { input: 'SECRET-A' } } },
      { address: 'terraform_data.b', change: { actions: ['update'], after: { input: 'SECRET-B' } } },
      { address: 'terraform_data.c', change: { actions: ['delete'] } },
      { address: 'terraform_data.d', change: { actions: ['delete', 'create'] } },
      { address: 'terraform_data.e', change: { actions: ['create', 'delete'] } },
      { address: 'terraform_data.f', change: { actions: ['no-op'] } },
      { address: 'data.x.y', change: { actions: ['read'] } },
    ],
    output_changes: { o: { actions: ['no-op'] } },
  };
  const s = summarisePlan(plan);
  assert.equal([s.add, s.change, s.destroy, s.replace], [1, 1, 1, 2]);
  assert.equal(s.resources.map((r) => r.address), ['terraform_data.a', 'terraform_data.b', 'terraform_data.c', 'terraform_data.d', 'terraform_data.e']);
  assert.is(s.hasChanges, true);
  assert.not.ok(JSON.stringify(s).includes('SECRET'), 'the summary carries no attribute values');
  assert.is(changesText(s), '+1 ~1 -1 ±2');
  assert.is(actionOf(['create', 'delete']), 'replace');
  const outputsOnly = summarisePlan({ format_version: '1.2', resource_changes: [], output_changes: { o: { actions: ['update'] } } });
  assert.equal([outputsOnly.add, outputsOnly.hasChanges], [0, true]);
  const none = summarisePlan({ format_version: '1.2' });
  assert.is(none.hasChanges, false);
  assert.is(changesText(none), '+0 ~0 -0');
  assert.throws(() => summarisePlan({ resource_changes: [] }), /not a Terraform plan JSON document/);
});

test('plan summary from a worker: checked before the server stores it', () => {
  const ok = parsePlanSummary({ add: 1, change: 0, destroy: 0, replace: 0, resources: [{ address: 'a.b', actions: ['create'] }], truncated: false, hasChanges: true });
  assert.is(ok.add, 1);
  assert.throws(() => parsePlanSummary({ add: -1, change: 0, destroy: 0, replace: 0, resources: [] }), /"plan\.add"/);
  assert.throws(() => parsePlanSummary({ add: 0, change: 0, destroy: 0, replace: 0, resources: [{ address: '', actions: [] }] }), /"plan\.resources\[0\]"/);
  assert.throws(() => parsePlanSummary('x'), /"plan"/);
});

test('state rules: serial and lineage from the head, change detection, retention keeps the newest, base matching', () => {
  const head = '{\n  "version": 4,\n  "terraform_version": "1.11.4",\n  "serial": 12,\n  "lineage": "0c0d28b0-bdea-f15d-a9eb-a6225476b7c4",\n  "outputs": {}';
  assert.equal(readStateHead(head), { serial: 12, lineage: '0c0d28b0-bdea-f15d-a9eb-a6225476b7c4' });
  assert.is(readStateHead('not json'), undefined);
  assert.is(readStateHead('{"version": 4}'), undefined);
  const h = { serial: 12, lineage: 'L' };
  assert.is(stateChanged(null, h), true);
  assert.is(stateChanged(h, { serial: 12, lineage: 'L' }), false);
  assert.is(stateChanged(h, { serial: 13, lineage: 'L' }), true);
  assert.is(stateChanged(h, { serial: 12, lineage: 'M' }), true);
  assert.is(stateChanged(h, undefined), false);
  assert.equal(versionsToPrune([1, 2, 3, 4, 5], 3), [2, 1]);
  assert.equal(versionsToPrune([1, 2], 5), []);
  assert.equal(versionsToPrune([7], 0), [], 'the current version always stays');
  assert.is(baseMatches(null, null), true);
  assert.is(baseMatches(3, 3), true);
  assert.is(baseMatches(3, 2), false);
  assert.is(baseMatches(null, 1), false);
});

test.run();
