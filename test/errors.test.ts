import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, LauncherError, isLauncherError } from '../lib/errors.ts';

class OtherError extends LauncherError {}

test('instanceof LauncherError holds for every subclass and for a marked copy', () => {
  const c = new ConfigError('Bad');
  assert.ok(c instanceof LauncherError);
  assert.ok(isLauncherError(c));
  // An error made by a second copy of the module (e.g. bundled twice) carries the marker only.
  const copy = Object.assign(new Error('x'), { [Symbol.for('launcher.error')]: true });
  assert.ok(copy instanceof LauncherError);
});

test('instanceof a subclass does not hold for a sibling subclass', () => {
  const o = new OtherError('OTHER', 'Other');
  assert.not.ok(o instanceof ConfigError);
  assert.ok(o instanceof OtherError);
  assert.not.ok(new ConfigError('Bad') instanceof OtherError);
});

test('ConfigError exits 2 and keeps its code', () => {
  const c = new ConfigError('Bad', { code: 'USAGE' });
  assert.is(c.exitCode, 2);
  assert.is(c.code, 'USAGE');
});

test.run();
