import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../lib/errors.ts';
import { DEFAULT_RUNNER_IMAGE, LAUNCHER_VARIABLES, defaultStateDir, maskedValues, parseLauncherConfig, unknownVariableWarning, variablesTable, whitelistedEnv } from '../lib/config.ts';

const TOKEN = 'eyJ2ZXJzaW9uIjoxfQ==';
const KEY = 'LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==';
const base = { SPACELIFT_TOKEN: TOKEN, SPACELIFT_POOL_PRIVATE_KEY: KEY, HOME: '/home/worker' };

function parse(extra: Record<string, string | undefined>, uid = 1000) {
  return parseLauncherConfig({ ...base, ...extra }, { uid });
}

function refused(extra: Record<string, string | undefined>, opts: Parameters<typeof parseLauncherConfig>[1] = { uid: 1000 }): ConfigError {
  try {
    parseLauncherConfig({ ...base, ...extra }, opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const err = e as ConfigError;
    assert.is(err.exitCode, 2);
    assert.not.ok(err.message.includes(TOKEN), 'token leaked into the message');
    assert.not.ok(err.message.includes(KEY), 'key leaked into the message');
    assert.not.match(err.message, /\.$/, 'messages end without a period');
    return err;
  }
  throw new Error('expected a ConfigError');
}

test('defaults', () => {
  const { config, warnings } = parse({});
  assert.equal(warnings, []);
  assert.equal(config, {
    token: TOKEN,
    poolPrivateKey: KEY,
    maskEnvs: [],
    workerNetwork: 'bridge',
    extraMounts: [],
    roExtraMounts: [],
    woExtraMounts: [],
    whitelistEnvs: [],
    logsTimeoutMs: 7 * 60_000,
    runTimeoutMs: 70 * 60_000,
    metadata: {},
    defaultRunnerImage: DEFAULT_RUNNER_IMAGE,
    runLogsOnStdout: false,
    debug: false,
    stateDir: '/home/worker/.local/state/spacelift-launcher',
    dockerHost: 'unix:///var/run/docker.sock',
    pullPolicy: 'if-not-present',
  });
});

test('every variable set', () => {
  const { config, warnings } = parse({
    SPACELIFT_DOCKER_CONFIG_DIR: '/etc/spacelift/docker',
    SPACELIFT_MASK_ENVS: 'DB_PASSWORD, API_KEY',
    DB_PASSWORD: 'hunter22hunter22',
    API_KEY: 'k-123456',
    SPACELIFT_WORKER_NETWORK: 'isolated',
    SPACELIFT_WORKER_EXTRA_MOUNTS: '/opt/cache:/cache,/etc/ssl/certs:/etc/ssl/certs',
    SPACELIFT_WORKER_RO_EXTRA_MOUNTS: '/srv/ro:/ro',
    SPACELIFT_WORKER_WO_EXTRA_MOUNTS: '/srv/wo:/wo',
    SPACELIFT_WORKER_RUNTIME: 'runsc',
    SPACELIFT_WHITELIST_ENVS: 'DB_PASSWORD,API_KEY,ro_READER,wo_WRITER',
    SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '1000s',
    SPACELIFT_LAUNCHER_RUN_TIMEOUT: '1h30m',
    SPACELIFT_METADATA_instance_id: 'i-0abc',
    SPACELIFT_METADATA_Zone: 'eu-west-1a',
    SPACELIFT_DEFAULT_RUNNER_IMAGE: 'registry.example.invalid/runner:1',
    SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED: 'yes',
    SPACELIFT_DEBUG: '1',
    SPACELIFT_LAUNCHER_STATE_DIR: '/srv/launcher-a/',
    DOCKER_HOST: 'unix:///run/user/1000/docker.sock',
    SPACELIFT_LAUNCHER_PULL_POLICY: 'always',
    SPACELIFT_LAUNCHER_METRICS_ADDR: ':9100',
  });
  assert.equal(warnings, []);
  assert.is(config.dockerConfigDir, '/etc/spacelift/docker');
  assert.equal(config.maskEnvs, ['DB_PASSWORD', 'API_KEY']);
  assert.is(config.workerNetwork, 'isolated');
  assert.equal(config.extraMounts, [{ hostPath: '/opt/cache', containerPath: '/cache' }, { hostPath: '/etc/ssl/certs', containerPath: '/etc/ssl/certs' }]);
  assert.equal(config.roExtraMounts, [{ hostPath: '/srv/ro', containerPath: '/ro' }]);
  assert.equal(config.woExtraMounts, [{ hostPath: '/srv/wo', containerPath: '/wo' }]);
  assert.is(config.runtime, 'runsc');
  assert.equal(config.whitelistEnvs, [{ name: 'DB_PASSWORD' }, { name: 'API_KEY' }, { name: 'READER', only: 'ro' }, { name: 'WRITER', only: 'wo' }]);
  assert.is(config.logsTimeoutMs, 1_000_000);
  assert.is(config.runTimeoutMs, 5_400_000);
  assert.equal(config.metadata, { instance_id: 'i-0abc', Zone: 'eu-west-1a' });
  assert.is(config.defaultRunnerImage, 'registry.example.invalid/runner:1');
  assert.is(config.runLogsOnStdout, true);
  assert.is(config.debug, true);
  assert.is(config.stateDir, '/srv/launcher-a');
  assert.is(config.dockerHost, 'unix:///run/user/1000/docker.sock');
  assert.is(config.pullPolicy, 'always');
  assert.equal(config.metricsListen, { host: '127.0.0.1', port: 9100 });
});

test('the pool credentials are required unless the caller says otherwise', () => {
  assert.match(refused({ SPACELIFT_TOKEN: undefined }).message, /^Missing SPACELIFT_TOKEN: /);
  assert.match(refused({ SPACELIFT_POOL_PRIVATE_KEY: '  ' }).message, /^Missing SPACELIFT_POOL_PRIVATE_KEY: /);
  const { config } = parseLauncherConfig({ HOME: '/root' }, { uid: 1000, require: { token: false, key: false } });
  assert.is(config.token, undefined);
  assert.is(config.poolPrivateKey, undefined);
  assert.is(refused({ SPACELIFT_TOKEN: undefined }).code, 'CONFIG_MISSING');
});

test('durations: bad values name the variable, the value and an example', () => {
  assert.is(refused({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '70' }).message, 'Cannot parse SPACELIFT_LAUNCHER_RUN_TIMEOUT: "70" has no unit (try 70m)');
  assert.is(refused({ SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '0' }).message, 'Cannot parse SPACELIFT_LAUNCHER_LOGS_TIMEOUT: "0" is not a positive duration (try 7m)');
  assert.is(refused({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '-5m' }).message, 'Cannot parse SPACELIFT_LAUNCHER_RUN_TIMEOUT: "-5m" is not a positive duration (try 70m)');
  assert.match(refused({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '2d' }).message, /^Cannot parse SPACELIFT_LAUNCHER_RUN_TIMEOUT: "2d" has an unknown unit "d".*\(try 70m\)$/);
  assert.is(parse({ SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '300ms' }).config.logsTimeoutMs, 300);
  assert.is(parse({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '1.5h' }).config.runTimeoutMs, 5_400_000);
  assert.is(parse({ SPACELIFT_LAUNCHER_RUN_TIMEOUT: '120m' }).config.runTimeoutMs, 7_200_000);
});

test('mounts: no colon, relative paths and empty entries are refused', () => {
  assert.is(refused({ SPACELIFT_WORKER_EXTRA_MOUNTS: '/data' }).message, 'Cannot parse SPACELIFT_WORKER_EXTRA_MOUNTS: "/data" has no ":" between host and container path (try /host/path:/container/path)');
  assert.is(refused({ SPACELIFT_WORKER_RO_EXTRA_MOUNTS: 'data:/data' }).message, 'Cannot parse SPACELIFT_WORKER_RO_EXTRA_MOUNTS: "data:/data" has a relative host path (try /host/path:/container/path)');
  assert.match(refused({ SPACELIFT_WORKER_WO_EXTRA_MOUNTS: '/data:data' }).message, /relative container path/);
  assert.match(refused({ SPACELIFT_WORKER_EXTRA_MOUNTS: '/a:/a,,/b:/b' }).message, /empty mount/);
  assert.match(refused({ SPACELIFT_WORKER_EXTRA_MOUNTS: '/a:/a:ro' }).message, /more than one ":"/);
});

test('comma lists: empty names and non-names are refused', () => {
  assert.is(refused({ SPACELIFT_WHITELIST_ENVS: 'A,,B' }).message, 'Cannot parse SPACELIFT_WHITELIST_ENVS: "A,,B" has an empty name in its comma list (try AWS_REGION,ro_TF_VAR_readonly,wo_TF_VAR_write)');
  assert.match(refused({ SPACELIFT_MASK_ENVS: 'A,' }).message, /^Cannot parse SPACELIFT_MASK_ENVS: "A," has an empty name/);
  assert.match(refused({ SPACELIFT_MASK_ENVS: 'A B' }).message, /"A B", which is not a variable name/);
});

test('the whitelist may not pass the pool credentials into runs', () => {
  assert.match(refused({ SPACELIFT_WHITELIST_ENVS: 'ro_SPACELIFT_POOL_PRIVATE_KEY' }).message, /^Cannot pass SPACELIFT_POOL_PRIVATE_KEY to runs: /);
});

test('booleans accept true/false, 1/0, yes/no in any case', () => {
  for (const [v, want] of [['true', true], ['FALSE', false], ['1', true], ['0', false], ['Yes', true], ['no', false], ['', false]] as const) {
    assert.is(parse({ SPACELIFT_DEBUG: v }).config.debug, want, v);
  }
  assert.is(refused({ SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED: 'on' }).message, 'Cannot parse SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED: "on" is not a boolean (true/false, 1/0, yes/no) (try true)');
});

test('the misspelt SPCELIFT_WORKER_RUNTIME works with a warning naming the right spelling', () => {
  const a = parse({ SPCELIFT_WORKER_RUNTIME: 'runsc' });
  assert.is(a.config.runtime, 'runsc');
  assert.is(a.warnings.length, 1);
  assert.match(a.warnings[0], /SPCELIFT_WORKER_RUNTIME is a misspelling: rename it to SPACELIFT_WORKER_RUNTIME/);
  const b = parse({ SPCELIFT_WORKER_RUNTIME: 'runsc', SPACELIFT_WORKER_RUNTIME: 'kata' });
  assert.is(b.config.runtime, 'kata');
  assert.match(b.warnings[0], /ignored: SPACELIFT_WORKER_RUNTIME is set too/);
});

test('unknown SPACELIFT_ names warn with the nearest known name', () => {
  const { warnings } = parse({ SPACELIFT_LAUNCHER_RUN_TIMOUT: '10m', SPACELIFT_DEBGU: '1', SPACELIFT_METADTA_zone: 'a', SPACELIFT_SOMETHING_ELSE_ENTIRELY: 'x' });
  assert.equal(warnings, [
    'Unknown variable SPACELIFT_LAUNCHER_RUN_TIMOUT: did you mean SPACELIFT_LAUNCHER_RUN_TIMEOUT?',
    'Unknown variable SPACELIFT_DEBGU: did you mean SPACELIFT_DEBUG?',
    'Unknown variable SPACELIFT_METADTA_zone: did you mean SPACELIFT_METADATA_zone?',
    'Unknown variable SPACELIFT_SOMETHING_ELSE_ENTIRELY: the launcher does not read it (see docs/configuration.md)',
  ]);
  assert.is(unknownVariableWarning('SPACELIFT_worker_network'), 'Unknown variable SPACELIFT_worker_network: did you mean SPACELIFT_WORKER_NETWORK?');
  assert.is(unknownVariableWarning('SPACELIFT_LOGS_TIMEOUT'), 'Unknown variable SPACELIFT_LOGS_TIMEOUT: did you mean SPACELIFT_LAUNCHER_LOGS_TIMEOUT?');
  assert.is(unknownVariableWarning('SPACELIFT_METADATA'), 'Unknown variable SPACELIFT_METADATA: did you mean SPACELIFT_METADATA_<key>, e.g. SPACELIFT_METADATA_instance_id?');
  assert.is(unknownVariableWarning('SPACELIFT_METADATAzone'), 'Unknown variable SPACELIFT_METADATAzone: did you mean SPACELIFT_METADATA_zone?');
  // Names the user passes into runs are not the launcher's to judge.
  assert.equal(parse({ SPACELIFT_API_KEY_ID: 'x', SPACELIFT_WHITELIST_ENVS: 'SPACELIFT_API_KEY_ID' }).warnings, []);
});

test('masked variables that are unset or not whitelisted give warnings naming them', () => {
  const { warnings } = parse({ SPACELIFT_MASK_ENVS: 'GONE,PRIVATE', PRIVATE: 'value-of-private' });
  assert.equal(warnings, [
    'SPACELIFT_MASK_ENVS names GONE, which is not set',
    'SPACELIFT_MASK_ENVS names PRIVATE, which SPACELIFT_WHITELIST_ENVS does not pass to runs; it is masked anyway',
  ]);
  assert.not.ok(warnings.join('\n').includes('value-of-private'));
});

test('whitelistedEnv applies ro_/wo_ and skips unset variables', () => {
  const env = { ...base, SPACELIFT_WHITELIST_ENVS: 'ALL,ro_READER,wo_WRITER,UNSET', ALL: 'a', READER: 'r', WRITER: 'w' };
  const { config } = parseLauncherConfig(env, { uid: 1000 });
  assert.equal(whitelistedEnv(config, env, true), { ALL: 'a', READER: 'r' });
  assert.equal(whitelistedEnv(config, env, false), { ALL: 'a', WRITER: 'w' });
});

test('a ro_/wo_ prefix copied from the whitelist into SPACELIFT_MASK_ENVS means the bare name', () => {
  const env = { ...base, SPACELIFT_WHITELIST_ENVS: 'ro_READ_TOKEN', SPACELIFT_MASK_ENVS: 'ro_READ_TOKEN', READ_TOKEN: 'read-token-value' };
  const { config, warnings } = parseLauncherConfig(env, { uid: 1000 });
  assert.equal(config.maskEnvs, ['READ_TOKEN']);
  assert.equal(warnings, []);
  assert.equal(maskedValues(config, env), [{ name: 'READ_TOKEN', value: 'read-token-value' }]);
});

test('maskedValues returns the set values of SPACELIFT_MASK_ENVS with their names', () => {
  const env = { ...base, SPACELIFT_MASK_ENVS: 'A,B,C', A: 'alpha-value', C: 'charlie-value' };
  const { config } = parseLauncherConfig(env, { uid: 1000 });
  assert.equal(maskedValues(config, env), [{ name: 'A', value: 'alpha-value' }, { name: 'C', value: 'charlie-value' }]);
});

test('state directory: explicit, root, XDG_STATE_HOME, HOME, none', () => {
  assert.is(parse({}, 0).config.stateDir, '/var/lib/spacelift-launcher');
  assert.is(parse({ XDG_STATE_HOME: '/home/w/.state' }).config.stateDir, '/home/w/.state/spacelift-launcher');
  assert.is(parse({ XDG_STATE_HOME: 'relative' }).config.stateDir, '/home/worker/.local/state/spacelift-launcher');
  assert.is(parse({ SPACELIFT_LAUNCHER_STATE_DIR: '/x' }, 0).config.stateDir, '/x');
  assert.match(refused({ SPACELIFT_LAUNCHER_STATE_DIR: 'state' }).message, /^Cannot parse SPACELIFT_LAUNCHER_STATE_DIR: "state" is not an absolute path/);
  assert.match(refused({ HOME: undefined }).message, /^Cannot choose a state directory: .*SPACELIFT_LAUNCHER_STATE_DIR/);
});

test('default state directory (one rule for the launcher): root, then XDG_STATE_HOME, then HOME', () => {
  assert.is(defaultStateDir({ XDG_STATE_HOME: '/x' }, 1000), '/x/spacelift-launcher');
  assert.is(defaultStateDir({ HOME: '/home/u' }, 1000), '/home/u/.local/state/spacelift-launcher');
  assert.is(defaultStateDir({ XDG_STATE_HOME: '/x', HOME: '/home/u' }, 0), '/var/lib/spacelift-launcher');
  assert.throws(() => defaultStateDir({}, 1000), /Cannot choose a state directory: HOME is not set/);
});

test('DOCKER_HOST: unix sockets only, bare paths accepted', () => {
  assert.is(parse({ DOCKER_HOST: '/tmp/d.sock' }).config.dockerHost, 'unix:///tmp/d.sock');
  assert.is(refused({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }).message, 'Cannot parse DOCKER_HOST: "tcp://127.0.0.1:2375" is not a unix socket (the launcher talks to the local engine only) (try unix:///var/run/docker.sock)');
  assert.match(refused({ DOCKER_HOST: 'unix://relative.sock' }).message, /no absolute socket path/);
});

test('pull policy and metrics address', () => {
  assert.is(parse({ SPACELIFT_LAUNCHER_PULL_POLICY: 'Always' }).config.pullPolicy, 'always');
  assert.match(refused({ SPACELIFT_LAUNCHER_PULL_POLICY: 'never' }).message, /"never" is not a pull policy \(if-not-present or always\)/);
  assert.equal(parse({ SPACELIFT_LAUNCHER_METRICS_ADDR: '[::1]:0' }).config.metricsListen, { host: '::1', port: 0 });
  const wide = parse({ SPACELIFT_LAUNCHER_METRICS_ADDR: '0.0.0.0:9100' });
  assert.equal(wide.config.metricsListen, { host: '0.0.0.0', port: 9100 });
  assert.match(wide.warnings[0], /beyond this host/);
  assert.match(refused({ SPACELIFT_LAUNCHER_METRICS_ADDR: '9100' }).message, /"9100" is not host:port \(try 127.0.0.1:9100\)/);
  assert.match(refused({ SPACELIFT_LAUNCHER_METRICS_ADDR: ':70000' }).message, /port above 65535/);
});

test('metadata keys keep their case; an empty key is ignored with a warning', () => {
  const { config, warnings } = parse({ SPACELIFT_METADATA_InstanceId: 'i-1', SPACELIFT_METADATA_: 'x' });
  assert.equal(config.metadata, { InstanceId: 'i-1' });
  assert.match(warnings[0], /SPACELIFT_METADATA_ has no key/);
});

test('the runner image may not contain spaces', () => {
  assert.match(refused({ SPACELIFT_DEFAULT_RUNNER_IMAGE: 'my image' }).message, /^Cannot parse SPACELIFT_DEFAULT_RUNNER_IMAGE: "my image" contains spaces/);
});

test('docs/configuration.md lists every variable, with the table generated from the code', () => {
  const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
  for (const v of LAUNCHER_VARIABLES) assert.ok(doc.includes(`\`${v.name}\``), `${v.name} is missing from docs/configuration.md`);
  assert.ok(doc.includes(variablesTable()), 'the table in docs/configuration.md is stale: paste the output of `node_modules/.bin/node --import tsx -e "import(\'./lib/config.ts\').then(m => console.log(m.variablesTable()))"`');
  assert.ok(doc.includes('SPCELIFT_WORKER_RUNTIME'));
});

test.run();
