// The HTTP router's matching rules (lib/server/http.ts), without a server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Router, type Handler } from '../lib/server/http.ts';

const h = (name: string): Handler => Object.assign(() => {}, { routeName: name });
const nameOf = (m: ReturnType<Router['match']>): string | undefined => (typeof m === 'object' ? (m.handler as unknown as { routeName: string }).routeName : m);

const r = new Router()
  .add('GET', '/v1/runs', h('list'))
  .add('GET', '/v1/runs/{run}', h('show'))
  .add('POST', '/v1/runs/{run}/cancel', h('cancel'))
  .add('GET', '/v1/runs/{run}/logs', h('logs'))
  .add('POST', '/v1/stacks/{stack}/runs', h('trigger'))
  .add('GET', '/v1/stacks/{stack}/state/{version}', h('version'))
  .add('GET', '/v1/stacks/{stack}/state/rollback', h('never: the pattern above matches first'))
  .add('GET', '/install.sh', h('file'));

test('a path matches the route of its shape, with its parameters decoded', () => {
  const m = r.match('GET', '/v1/runs/run%2Fx');
  assert.is(nameOf(m), 'show');
  assert.equal(typeof m === 'object' && { ...m.params }, { run: 'run/x' });
  assert.is(typeof m === 'object' && m.pattern, '/v1/runs/{run}');
  assert.is(nameOf(r.match('GET', '/v1/runs')), 'list');
  assert.is(nameOf(r.match('POST', '/v1/stacks/stk_1/runs')), 'trigger');
  assert.is(nameOf(r.match('GET', '/install.sh')), 'file');
  assert.is(nameOf(r.match('HEAD', '/v1/runs/run_1/logs')), 'logs', 'HEAD is served by the GET route');
});

test('the first route added wins when two match', () => {
  assert.is(nameOf(r.match('GET', '/v1/stacks/stk_1/state/rollback')), 'version');
});

test('405 when only the method differs, undefined when no route has the path', () => {
  assert.is(r.match('DELETE', '/v1/runs/run_1'), 'method');
  assert.is(r.match('GET', '/v1/runs/run_1/cancel'), 'method');
  for (const path of ['/v1/runs/run_1/cancel/now', '/v1/runs/', '/v1', '/', '/v1/runs/a/b', '/install.sh/x', '/installXsh']) {
    assert.is(r.match('GET', path), undefined, path);
  }
});

test.run();
