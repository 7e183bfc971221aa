// One usage error for every command's arguments: the flag at fault, what the
// command accepts, and where its help is; exit code 2 (ConfigError USAGE).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { parseCommandArgs } from '../lib/cli/args.ts';
import { ConfigError } from '../lib/errors.ts';

const options = { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } } as const;
function refusal(args: string[], allowPositionals = false): ConfigError {
  try {
    parseCommandArgs('keygen', { args, options, allowPositionals, strict: true });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.is(e.code, 'USAGE');
    assert.is(e.exitCode, 2);
    return e;
  }
  throw new Error(`${args.join(' ')} was accepted`);
}

test('an unknown option names the accepted ones and the help', () => {
  assert.is(refusal(['--bogus']).message, 'Unknown option --bogus for launcher keygen: expected one of --out, --force (see launcher keygen --help)');
});

test('a value where none is taken, none where one is needed, and a stray argument', () => {
  assert.is(refusal(['--force=yes']).message, 'Cannot use --force: it takes no value (see launcher keygen --help)');
  assert.is(refusal(['--out']).message, 'Cannot use --out: it needs a value (see launcher keygen --help)');
  assert.is(refusal(['extra']).message, 'Unexpected argument "extra": launcher keygen takes options only (see launcher keygen --help)');
});

test('a hint joins the pointer to the help; good arguments parse as parseArgs does', () => {
  try {
    parseCommandArgs('run', { args: ['--x'], options: { help: { type: 'boolean' } } }, 'settings are environment variables');
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /\(see launcher run --help; settings are environment variables\)$/);
  }
  assert.equal({ ...parseCommandArgs('keygen', { args: ['-o', 'x', '--force'], options }).values }, { out: 'x', force: true });
});

test('every command answers a bad flag the same way, exit 2', () => {
  for (const [cmd, ...before] of [['exec'], ['keygen'], ['state', 'seal'], ['doctor'], ['run'], ['server']]) {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, ['--import', 'tsx', 'launcher.ts', cmd!, ...before, '--bogus'], { encoding: 'utf8', stdio: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' } });
    } catch (e) {
      ({ status, stderr } = e as { status: number; stderr: string });
    }
    assert.is(status, 2, `${cmd}: ${stderr}`);
    assert.match(stderr, new RegExp(`^launcher ${cmd}: Unknown option --bogus for launcher ${cmd}: expected one of .*\\(see launcher ${cmd} --help`), cmd);
  }
});

test.run();
