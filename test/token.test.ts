import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { LauncherError } from '../lib/errors.ts';
import { createCsr } from '../lib/csr.ts';
import { generatePoolKey } from '../lib/keys.ts';
import { createCertificateAuthority, issuePoolCertificate } from '../lib/pki.ts';
import { TOKEN_FORMAT_VERSION, decodeToken, encodeToken, type PoolToken } from '../lib/token.ts';
import { prng } from './helpers/random.ts';

const ca = createCertificateAuthority({ bits: 2048 });
const pool = issuePoolCertificate(ca, createCsr(generatePoolKey(2048).privateKeyPem), { poolId: 'pool-01' });
const fields: Omit<PoolToken, 'version'> = {
  serverUrl: 'https://127.0.0.1:8443',
  poolId: 'pool-01',
  certificate: pool.certPem,
  caCertificate: ca.certPem,
};
const token = encodeToken(fields);
const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');

function expectTokenError(value: string, pattern: RegExp, source = 'SPACELIFT_TOKEN'): LauncherError {
  try {
    decodeToken(value, source);
  } catch (e) {
    assert.ok(e instanceof LauncherError, `expected LauncherError, got ${e instanceof Error ? e.stack : String(e)}`);
    const err = e as LauncherError;
    assert.is(err.code, 'TOKEN_INVALID');
    assert.is(err.exitCode, 2);
    assert.ok(err.message.startsWith(`Cannot read ${source}: `), err.message);
    assert.match(err.message, pattern);
    if (value.length > 24) assert.not.ok(err.message.includes(value.trim().slice(0, 24)), 'message echoes the token');
    return err;
  }
  assert.unreachable('expected TOKEN_INVALID');
  throw new Error('unreachable');
}


test('a token is one line of standard base64 that base64 -d turns into the documented JSON', () => {
  assert.match(token, /^[A-Za-z0-9+/]+={0,2}$/);
  const json = JSON.parse(execFileSync('base64', ['-d'], { input: token, encoding: 'utf8' }));
  assert.equal(Object.keys(json), ['version', 'serverUrl', 'poolId', 'certificate', 'caCertificate']);
  assert.equal(json, { version: TOKEN_FORMAT_VERSION, ...fields });
});

test('decodeToken round-trips and tolerates surrounding whitespace and line wrapping', () => {
  const wrapped = execFileSync('base64', [], { input: Buffer.from(token, 'base64'), encoding: 'utf8' });
  assert.ok(wrapped.trim().includes('\n'));
  for (const form of [token, `  ${token}\n`, `\r\n${token}\r\n`, wrapped]) {
    assert.equal(decodeToken(form), { version: 1, ...fields });
  }
  // Unknown extra fields (a newer server adding information) are ignored.
  assert.equal(decodeToken(b64({ version: 1, ...fields, note: 'x' })), { version: 1, ...fields });
});

test('garbage gets TOKEN_INVALID naming SPACELIFT_TOKEN and the problem', () => {
  const doc = { version: 1, ...fields };
  const without = (k: string) => b64(Object.fromEntries(Object.entries(doc).filter(([f]) => f !== k)));
  expectTokenError('', /it is empty/);
  expectTokenError(' \n ', /it is empty/);
  expectTokenError('this is not base64!', /not valid base64/);
  expectTokenError(token.slice(0, -1), /not valid base64/);
  const urlSafe = b64({ ...doc, poolId: 'p>>>?' }).replace(/\+/g, '-').replace(/\//g, '_');
  assert.match(urlSafe, /[-_]/);
  expectTokenError(urlSafe, /URL-safe/);
  expectTokenError(b64(Buffer.from([0xff, 0xfe, 0x00]).toString('latin1')), /not of UTF-8 text|not of JSON/);
  expectTokenError(Buffer.from([0xc3, 0x28, 0x41]).toString('base64'), /not of UTF-8 text/);
  expectTokenError(b64('{"version":1,'), /base64 but not of JSON/);
  expectTokenError(b64('[1,2]'), /JSON is not an object/);
  expectTokenError(b64('"text"'), /JSON is not an object/);
  expectTokenError(b64('null'), /JSON is not an object/);
  expectTokenError(without('version'), /"version" is missing/);
  expectTokenError(b64({ ...doc, version: 2 }), /format version 2 is newer than this launcher understands \(1\): upgrade the launcher/);
  expectTokenError(b64({ ...doc, version: '1' }), /format version is not 1/);
  expectTokenError(b64({ ...doc, version: 0 }), /format version is not 1/);
  for (const f of ['serverUrl', 'poolId', 'certificate', 'caCertificate']) {
    expectTokenError(without(f), new RegExp(`the field "${f}" is missing`));
    expectTokenError(b64({ ...doc, [f]: 42 }), new RegExp(`the field "${f}" is not a non-empty string`));
    expectTokenError(b64({ ...doc, [f]: '' }), new RegExp(`the field "${f}" is not a non-empty string`));
  }
  expectTokenError(b64({ ...doc, serverUrl: 'not a url' }), /"serverUrl" is not a URL/);
  expectTokenError(b64({ ...doc, serverUrl: 'ftp://127.0.0.1/' }), /"serverUrl" is not an http\(s\) URL/);
  expectTokenError(b64({ ...doc, certificate: 'not pem' }), /"certificate" is not a PEM certificate/);
  expectTokenError(b64({ ...doc, caCertificate: fields.certificate.slice(0, 200) }), /"caCertificate" is not a PEM certificate/);
  expectTokenError('A'.repeat(300 * 1024), /longer than 256 KiB/);
  expectTokenError('garbage!', /not valid base64/, 'the --token flag');
});

test('fuzz: mutated tokens decode to a valid token or end in TOKEN_INVALID, never another exception', () => {
  const rand = prng(0x70c3);
  const pick = (n: number) => Math.floor(rand() * n);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=';
  const json = Buffer.from(token, 'base64').toString('utf8');
  const wrongTypes: unknown[] = [null, true, 0, -1, 1.5, [], {}, 'x', [fields.certificate], { pem: fields.certificate }];
  let refused = 0;
  const total = 2000;
  for (let i = 0; i < total; i++) {
    let input: string;
    switch (i % 6) {
      case 0: { // flip bits in the base64 text
        const b = Buffer.from(token);
        for (let j = 0, n = 1 + pick(3); j < n; j++) { const p = pick(b.length); b[p] = b[p]! ^ (1 << pick(7)); }
        input = b.toString('latin1');
        break;
      }
      case 1: // truncate the base64 text
        input = token.slice(0, pick(token.length));
        break;
      case 2: { // random base64
        let s = '';
        for (let j = 0, n = pick(400); j < n; j++) s += alphabet[pick(alphabet.length)];
        input = s;
        break;
      }
      case 3: { // flip bytes in the JSON, then encode it properly
        const b = Buffer.from(json);
        for (let j = 0, n = 1 + pick(3); j < n; j++) b[pick(b.length)] = pick(256);
        input = b.toString('base64');
        break;
      }
      case 4: { // JSON with a field of the wrong type
        const doc: Record<string, unknown> = { version: 1, ...fields };
        const keys = Object.keys(doc);
        doc[keys[pick(keys.length)]!] = wrongTypes[pick(wrongTypes.length)];
        input = b64(doc);
        break;
      }
      default: // truncate the JSON, then encode it properly
        input = b64(json.slice(0, pick(json.length)));
    }
    try {
      const t = decodeToken(input);
      // Anything that decodes must still be a well-formed token.
      assert.is(t.version, 1);
      for (const f of ['serverUrl', 'poolId', 'certificate', 'caCertificate'] as const) assert.type(t[f], 'string');
    } catch (e) {
      if (!(e instanceof LauncherError) || e.code !== 'TOKEN_INVALID') {
        throw new Error(`iteration ${i}: expected TOKEN_INVALID, got ${e instanceof Error ? e.stack : String(e)}`);
      }
      refused++;
    }
  }
  assert.ok(refused > total * 0.8, `only ${refused} of ${total} mutations refused`);
});

test.run();
