// The console's guards, against a real server run from source (so this also
// proves the console is served without a build): no session, no data; the
// session cookie's attributes; CSRF token and same-origin checks on every
// change; forged cross-site and same-site POSTs from a real browser refused;
// the CSP on every HTML answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { CONSOLE_CSP } from '../lib/console/headers.ts';
import { launchBrowser, type Browser } from './helpers/browser.ts';
import { opensslCsr, startTestServer, type TestServer } from './helpers/server.ts';

const PAGES = ['/', '/pools', '/pools/new', '/pools/pool_x', '/workers', '/stacks', '/stacks/new', '/stacks/stk_x', '/modules', '/runs', '/runs/run_x', '/audit', '/backup', '/retention'];
const API: [string, string][] = [
  ['GET', '/v1/pools'], ['POST', '/v1/pools'], ['GET', '/v1/pools/p'], ['DELETE', '/v1/pools/p'], ['POST', '/v1/pools/p/reset'],
  ['POST', '/v1/pools/p/cycle'], ['POST', '/v1/pools/p/keys'], ['GET', '/v1/pools/p/queue'], ['GET', '/v1/workers'],
  ['POST', '/v1/workers/drain'], ['POST', '/v1/workers/undrain'], ['GET', '/v1/stacks'], ['POST', '/v1/stacks'], ['PATCH', '/v1/stacks/s'],
  ['POST', '/v1/stacks/s/runs'], ['GET', '/v1/runs'], ['GET', '/v1/runs/r'], ['GET', '/v1/runs/r/logs'], ['GET', '/v1/runs/r/events'],
  ['POST', '/v1/runs/r/confirm'], ['POST', '/v1/runs/r/cancel'], ['GET', '/v1/audit'],
];

let srv: TestServer;
let browser: Browser | undefined;
const attackers: Server[] = [];
const work = mkdtempSync(join(tmpdir(), 'console-security-'));

test.before(async () => { srv = await startTestServer(); });
test.after(async () => {
  await browser?.close();
  for (const a of attackers) a.close();
  await srv?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A request with no bearer token, optionally with cookies and headers. */
const bare = (method: string, path: string, o: { cookie?: string; headers?: Record<string, string>; body?: unknown } = {}) =>
  srv.admin(method, path, o.body, { token: null, headers: { ...(o.cookie ? { cookie: o.cookie } : {}), ...o.headers } });

async function signIn(): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const r = await bare('POST', '/console/session', { body: { token: srv.adminToken } });
  assert.is(r.status, 201, r.text);
  const setCookie = String((r.headers['set-cookie'] as string[])[0]);
  return { cookie: setCookie.split(';')[0]!, csrf: r.body.csrf, setCookie };
}

test('without a session: every page redirects to sign-in, every API call is 401, the shell and its files hold no data', async () => {
  for (const p of PAGES) {
    const r = await bare('GET', p);
    assert.is(r.status, 303, p);
    assert.match(String(r.headers.location), /^\/signin/, p);
    assert.is(r.text, '', `${p} sends no body`);
  }
  for (const [m, p] of API) {
    const r = await bare(m, p, { cookie: 'launcher_session=forged-value' });
    assert.is(r.status, 401, `${m} ${p}: ${r.text}`);
    assert.is(r.body.error.code, 'ADMIN_TOKEN_MISSING', `${m} ${p}`);
  }
  const who = await bare('GET', '/console/session');
  assert.equal(who.body, { signedIn: false });
  const signin = await bare('GET', '/signin');
  assert.is(signin.status, 200);
  assert.not.match(signin.text, /pool_|stk_|run_/);
});

test('sign-in: a wrong token is refused; the right one gives an HttpOnly, Secure, SameSite=Strict cookie with an expiry', async () => {
  const bad = await bare('POST', '/console/session', { body: { token: 'nope' } });
  assert.is(bad.status, 401);
  assert.is(bad.body.error.code, 'ADMIN_TOKEN_INVALID');
  assert.is(bad.headers['set-cookie'], undefined);
  const { setCookie, csrf } = await signIn();
  assert.match(setCookie, /^launcher_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; Secure; SameSite=Strict$/);
  assert.ok(csrf.length >= 43);
  const audit = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8');
  assert.match(audit, /"action":"POST \/console\/session","status":401/);
  assert.match(audit, /"action":"POST \/console\/session","status":201/);
});

/** A sign-in from a given loopback address (the throttle counts per client address). */
function signInFrom(localAddress: string, token: string): Promise<{ status: number; retryAfter: string | undefined; code: string | undefined; message: string }> {
  const payload = JSON.stringify({ token });
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      hostname: '127.0.0.1', port: srv.port, path: '/console/session', method: 'POST', localAddress, ca: srv.caPem, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        const body = JSON.parse(text);
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], code: body.error?.code, message: body.error?.message ?? '' });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Tries `token` from `from` until the answer is not 429; returns every answer. */
async function untilChecked(from: string, token: string): Promise<Awaited<ReturnType<typeof signInFrom>>[]> {
  const seen = [];
  for (;;) {
    const r = await signInFrom(from, token);
    seen.push(r);
    if (r.status !== 429) return seen;
    await new Promise((res) => setTimeout(res, 100));
  }
}

test('sign-in throttle: wrong tokens from one address earn a growing wait (429 + Retry-After), other addresses are unaffected, and the real admin gets in once it ends', async () => {
  const from = '127.0.0.4';
  for (let i = 1; i <= 5; i++) {
    const r = await signInFrom(from, `wrong-${i}`);
    assert.is(r.status, 401, `try ${i}`);
    assert.is(r.retryAfter, undefined, `try ${i} is free`);
  }
  const sixth = await signInFrom(from, 'wrong-6');
  assert.is(sixth.status, 401);
  assert.is(sixth.retryAfter, '1');
  assert.match(sixth.message, /too many wrong tokens from your address: the next try is checked in 1 s/);
  // Wait out each back-off (tries while waiting are refused unchecked), then fail again: the wait doubles.
  const seventh = await untilChecked(from, 'wrong-7');
  assert.is(seventh.at(-1)!.status, 401);
  assert.is(seventh.at(-1)!.retryAfter, '2');
  const eighth = await untilChecked(from, 'wrong-8');
  assert.is(eighth.at(-1)!.retryAfter, '4');
  for (const r of [...seventh, ...eighth].filter((x) => x.status === 429)) {
    assert.is(r.code, 'TOO_MANY_SIGN_INS');
    assert.ok(Number(r.retryAfter) >= 1 && Number(r.retryAfter) <= 2, `Retry-After ${r.retryAfter} within the wait`);
    assert.match(r.message, /try again in \d+ s/);
  }

  // While this address waits, the right token is not even checked from it...
  const early = await signInFrom(from, srv.adminToken);
  assert.is(early.status, 429);
  assert.is(early.code, 'TOO_MANY_SIGN_INS');
  assert.ok(Number(early.retryAfter) >= 1 && Number(early.retryAfter) <= 4, `Retry-After ${early.retryAfter}`);
  // ...but another address signs in at once.
  assert.is((await signInFrom('127.0.0.5', srv.adminToken)).status, 201);

  // Refused tries do not lengthen the wait: hammering with the right token gets in when it ends.
  const admin = await untilChecked(from, srv.adminToken);
  assert.is(admin.at(-1)!.status, 201);
  for (const r of admin.slice(0, -1)) assert.ok(Number(r.retryAfter) <= 4, `Retry-After ${r.retryAfter} never grows past the wait`);
  // And a success starts the address afresh: the next wrong token is free again.
  const fresh = await signInFrom(from, 'wrong-again');
  assert.is(fresh.status, 401);
  assert.is(fresh.retryAfter, undefined);

  const audit = readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.remote === from);
  assert.ok(audit.some((l) => l.action === 'POST /console/session' && l.status === 429), 'refusals while waiting are audited');
  assert.is(audit.filter((l) => l.status === 401).length, 9);
});

test('with a session: pages carry the strict CSP, no inline script; API answers are no-store and nosniff', async () => {
  const { cookie } = await signIn();
  for (const p of [...PAGES, '/signin']) {
    const r = await bare('GET', p, { cookie });
    assert.is(r.status, 200, p);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    const csp = String(r.headers['content-security-policy']);
    assert.is(csp, CONSOLE_CSP, p);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.not.match(csp, /unsafe-inline|unsafe-eval/);
    assert.is(r.headers['x-content-type-options'], 'nosniff');
    assert.is(r.headers['x-frame-options'], 'DENY');
    assert.not.match(r.text, /<script(?![^>]*\bsrc=)[^>]*>/, `${p}: inline script`);
    assert.not.match(r.text, /\son\w+=/, `${p}: inline handler`);
  }
  const pools = await bare('GET', '/v1/pools', { cookie });
  assert.is(pools.status, 200);
  assert.is(pools.headers['cache-control'], 'no-store');
  assert.is(pools.headers['x-content-type-options'], 'nosniff');
  // The page's files: script and style from the executable, gzip on request.
  const shell = (await bare('GET', '/pools', { cookie })).text;
  const js = /src="(\/console\/app\.[0-9a-f]{12}\.js)"/.exec(shell)![1]!;
  const gz = await bare('GET', js, { headers: { 'accept-encoding': 'gzip' } });
  assert.is(gz.status, 200);
  assert.is(gz.headers['content-encoding'], 'gzip');
  assert.match(String(gz.headers['content-type']), /^text\/javascript/);
  assert.ok(gz.raw.length < 150 * 1024, `first-load script is ${gz.raw.length} bytes gzipped`);
});

test('changes with a session need the CSRF token and the same origin; sign-out ends the session', async () => {
  const { cookie, csrf } = await signIn();
  const { csrPem } = opensslCsr(work, 'sec');
  const body = { name: 'sec-pool', csr: csrPem };
  let r = await bare('POST', '/v1/pools', { cookie, body });
  assert.is(r.status, 403);
  assert.is(r.body.error.code, 'CSRF_TOKEN_MISSING');
  r = await bare('POST', '/v1/pools', { cookie, body, headers: { 'x-csrf-token': 'x'.repeat(43) } });
  assert.is(r.body.error.code, 'CSRF_TOKEN_INVALID');
  r = await bare('POST', '/v1/pools', { cookie, body, headers: { 'x-csrf-token': csrf, origin: 'https://evil.example' } });
  assert.is(r.body.error.code, 'CROSS_SITE_REFUSED');
  r = await bare('POST', '/v1/pools', { cookie, body, headers: { 'x-csrf-token': csrf, 'sec-fetch-site': 'same-site' } });
  assert.is(r.body.error.code, 'CROSS_SITE_REFUSED');
  assert.is((await srv.admin('GET', '/v1/pools')).body.pools.length, 0, 'nothing was created by the refused requests');
  r = await bare('POST', '/v1/pools', { cookie, body, headers: { 'x-csrf-token': csrf, origin: srv.url, 'sec-fetch-site': 'same-origin' } });
  assert.is(r.status, 201, r.text);
  // Sign-out needs the CSRF token too, then the cookie is worthless.
  r = await bare('DELETE', '/console/session', { cookie });
  assert.is(r.body.error.code, 'CSRF_TOKEN_MISSING');
  r = await bare('DELETE', '/console/session', { cookie, headers: { 'x-csrf-token': csrf } });
  assert.is(r.status, 200);
  assert.match(String((r.headers['set-cookie'] as string[])[0]), /^launcher_session=; Path=\/; Max-Age=0/);
  assert.is((await bare('GET', '/v1/pools', { cookie })).status, 401);
  assert.is((await bare('GET', '/pools', { cookie })).status, 303);
});

/** An attacker's page on another loopback origin that POSTs to the server as soon as it loads. */
async function attackerPage(host: string, target: string, tls = false): Promise<string> {
  const page = `<!doctype html><body>
<form id="f" method="POST" action="${target}/v1/pools" enctype="text/plain"><input type="hidden" name='{"name":"forged","csr":"' value='x"}'></form>
<script>
fetch(${JSON.stringify(`${target}/v1/workers/drain`)}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{"metadata":{"a":"b"}}' }).finally(() => document.getElementById('f').submit());
</script></body>`;
  const handler = (_req: unknown, res: import('node:http').ServerResponse): void => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(page); };
  // Same scheme and host as the server (only the port differs) is the same site to a browser.
  const s = tls
    ? createHttpsServer({ cert: readFileSync(join(srv.dataDir, 'server.crt')), key: readFileSync(join(srv.dataDir, 'server.key')) }, handler)
    : createServer(handler);
  attackers.push(s);
  await new Promise<void>((r) => s.listen(0, host, r));
  return `${tls ? 'https' : 'http'}://${host}:${(s.address() as AddressInfo).port}/`;
}

test('forged POSTs from another site and from another port of the same host are refused, in a real browser with a live session', async () => {
  browser = await launchBrowser({ serverCertPem: readFileSync(join(srv.dataDir, 'server.crt'), 'utf8') });
  const { page } = browser;
  await page.goto(`${srv.url}/signin`);
  await page.getByLabel('Admin token').fill('wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[role=alert]', { hasText: 'ADMIN_TOKEN_INVALID' }).waitFor();
  await page.getByLabel('Admin token').fill(srv.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('h1', { hasText: 'Worker pools' }).waitFor();
  const before = (await srv.admin('GET', '/v1/pools')).body.pools.length;
  const refusedBefore = srv.logLines().filter((l) => l.msg === 'Request refused').length;

  // Another site (127.0.0.2): SameSite=Strict keeps the cookie home.
  await page.goto(await attackerPage('127.0.0.2', srv.url));
  await page.waitForURL(`${srv.url}/v1/pools`);
  assert.match(await page.locator('body').innerText(), /ADMIN_TOKEN_MISSING/);

  // The same host on another port is the same site, so the cookie goes along: the origin check refuses it.
  await page.goto(await attackerPage('127.0.0.1', srv.url, true));
  await page.waitForURL(`${srv.url}/v1/pools`);
  const body = await page.locator('body').innerText();
  assert.match(body, /CROSS_SITE_REFUSED/, body);

  assert.is((await srv.admin('GET', '/v1/pools')).body.pools.length, before, 'no pool was created');
  const refused = srv.logLines().filter((l) => l.msg === 'Request refused').slice(refusedBefore).map((l) => `${l.method} ${l.path} ${l.code}`);
  for (const want of ['POST /v1/workers/drain ADMIN_TOKEN_MISSING', 'POST /v1/pools ADMIN_TOKEN_MISSING', 'POST /v1/workers/drain CROSS_SITE_REFUSED', 'POST /v1/pools CROSS_SITE_REFUSED']) {
    assert.ok(refused.includes(want), `${want} in ${refused.join(', ')}`);
  }
});

test.run();
