// What goes into the console's script: its own code, the wire types and the
// pure helpers it shares with the CLI, and its three libraries. Nothing of the
// server, the launcher or Node (the page imports lib/protocol.ts for types and
// constant lists only), and the first load stays inside its budget.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gzipSync } from 'node:zlib';
import { root } from './helpers/build.ts';
// @ts-expect-error: a plain .mjs build script without type declarations
import { bundleConsole } from '../scripts/console-bundle.mjs';

// Pure modules (no I/O, no Node imports) the page shares on purpose, so it
// speaks the wire types and applies the CLI's own rules and formats. A module
// that is not here failing this test is a question to answer, not a list to grow.
const SHARED = new Set([
  'lib/protocol.ts', 'lib/errors.ts', 'lib/duration.ts',
  'lib/admin/format.ts', 'lib/backup/format.ts', 'lib/retention/policy.ts', 'lib/tool/state.ts',
]);
const LIBRARIES = /(^|\/)node_modules\/(preact|htm|@noble\/ciphers)\//; // node_modules may be a link elsewhere

test('the console bundle holds only browser code, shared pure modules and its libraries', async () => {
  const { js, inputs } = await bundleConsole(root) as { js: string; inputs: string[] };
  const own = inputs.filter((p) => p.startsWith('lib/console/app/'));
  assert.ok(own.includes('lib/console/app/main.ts') && own.includes('lib/console/app/workspace.ts'), 'the page\'s own modules are in');
  const other = inputs.filter((p) => !p.startsWith('lib/console/app/') && !SHARED.has(p) && !LIBRARIES.test(p));
  assert.equal(other, [], 'modules from outside the page');
  const gz = gzipSync(Buffer.from(js), { level: 9 }).length;
  assert.ok(gz <= 150 * 1024, `${gz} bytes gzipped, over the 150 KB budget`);
});

test.run();
