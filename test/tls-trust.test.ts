// Both clients name an untrusted server the same way: a real TLS listener with
// a certificate from one CA, and the launcher's worker-API client and the
// admin client each pinned to another CA, answer SERVER_UNTRUSTED.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AdminClient } from '../lib/admin/client.ts';
import { LauncherError } from '../lib/errors.ts';
import { ServerError, WorkerApi } from '../lib/launcher/api.ts';
import { createCertificateAuthority, issueServerCertificate } from '../lib/pki.ts';
import { SERVER_UNTRUSTED } from '../lib/tls-trust.ts';

const serverCa = createCertificateAuthority({ bits: 2048, commonName: 'the real CA' });
const otherCa = createCertificateAuthority({ bits: 2048, commonName: 'another CA' });
const cert = issueServerCertificate(serverCa, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], bits: 2048 });
const server = createServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => { res.end('{}'); });
let url = '';

test.before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.after(() => { server.close(); });

test('the worker-API client pinned to another CA: SERVER_UNTRUSTED, retried (transient)', async () => {
  // Any matching certificate and key do as the client identity: the server's certificate is what fails.
  const api = new WorkerApi({ serverUrl: url, certificate: otherCa.certPem, caCertificate: otherCa.certPem, privateKey: createPrivateKey(otherCa.keyPem) });
  let err: unknown;
  try {
    await api.register({ workerId: null, metadata: {}, version: 'test', host: { hostname: 'h', os: 'linux', arch: 'x64', docker: '-' } });
  } catch (e) { err = e; }
  await api.destroy();
  assert.ok(err instanceof ServerError, String(err));
  assert.is(err.code, SERVER_UNTRUSTED);
  assert.ok(err.transient);
  assert.match(err.message, /Cannot trust the server at https:\/\/127\.0\.0\.1:\d+ .*not from the CA in SPACELIFT_TOKEN/);
});

test('the admin client pinned to another CA: SERVER_UNTRUSTED; pinned to the right one: answered', async () => {
  const wrong = new AdminClient({ server: new URL(url), token: 't', ca: otherCa.certPem });
  let err: unknown;
  try { await wrong.get('/v1/pools'); } catch (e) { err = e; }
  await wrong.close();
  assert.ok(err instanceof LauncherError, String(err));
  assert.is(err.code, SERVER_UNTRUSTED);
  assert.match(err.message, /--ca FILE/);
  const right = new AdminClient({ server: new URL(url), token: 't', ca: serverCa.certPem });
  assert.equal(await right.get('/v1/pools'), {});
  await right.close();
});

test.run();
