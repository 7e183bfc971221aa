import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { OpensslDir } from './helpers/openssl.ts';
import { LauncherError } from '../lib/errors.ts';
import { createCsr } from '../lib/csr.ts';
import { generatePoolKey } from '../lib/keys.ts';
import {
  MAX_CSR_BYTES, POOL_VALIDITY_DAYS, certificateSerial, createCertificateAuthority, inspectCsr, isIssuedBy,
  issuePoolCertificate, issueServerCertificate,
} from '../lib/pki.ts';
import { prng } from './helpers/random.ts';

const ssl = new OpensslDir();
// One 4096-bit key per file, made exactly as the seed says (CA keys are 2048 to save time).
const seed = ssl.seedKeyAndCsr('spacelift', 4096);
const ca = createCertificateAuthority({ bits: 2048, commonName: 'test CA' });
ssl.write('ca.pem', ca.certPem);

function expectCode(fn: () => unknown, code: string, pattern?: RegExp): LauncherError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof LauncherError, `expected LauncherError, got ${e instanceof Error ? e.stack : String(e)}`);
    const err = e as LauncherError;
    assert.is(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.unreachable('expected an error');
  throw new Error('unreachable');
}


const derOf = (pem: string): Buffer => Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const pemOf = (der: Buffer, label = 'CERTIFICATE REQUEST'): string =>
  `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

test('the CA is self-signed with CA:TRUE, keyCertSign and cRLSign, and openssl accepts it', () => {
  const text = ssl.ok(['x509', '-in', 'ca.pem', '-noout', '-text']);
  assert.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  assert.match(text, /Key Usage: critical\s+[^\n]*Certificate Sign, CRL Sign/);
  assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
  assert.match(text, /Subject: CN ?= ?test CA/);
  assert.match(ssl.ok(['verify', '-CAfile', 'ca.pem', 'ca.pem']), /ca\.pem: OK/);
});

test('a pool certificate from the seed CSR verifies with openssl as a TLS client certificate', () => {
  const issued = issuePoolCertificate(ca, seed.csr, { poolId: 'pool-01HX' });
  ssl.write('pool.pem', issued.certPem);
  const r = ssl.run(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'pool.pem']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /pool\.pem: OK/);
  // Not usable as a server certificate.
  assert.is.not(ssl.run(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'pool.pem']).status, 0);
  const text = ssl.ok(['x509', '-in', 'pool.pem', '-noout', '-text']);
  assert.match(text, /Subject: CN ?= ?pool-01HX/);
  assert.match(text, /Issuer: CN ?= ?test CA/);
  assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  assert.match(text, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
  assert.match(text, /Extended Key Usage: \s*TLS Web Client Authentication\n/);
  assert.match(text, /Public-Key: \(4096 bit\)/);
  assert.match(text, /Subject Key Identifier/);
  assert.match(text, /Authority Key Identifier/);
  // The certificate carries the CSR's key.
  assert.is(ssl.ok(['x509', '-in', 'pool.pem', '-pubkey', '-noout']), ssl.ok(['req', '-in', 'spacelift.csr', '-pubkey', '-noout']));
  // Serial: 16 random bytes in lowercase hex, the same as openssl reads.
  assert.match(issued.serial, /^[0-7][0-9a-f]{31}$/);
  assert.is(issued.serial, certificateSerial(issued.certPem));
  assert.is(`serial=${issued.serial.toUpperCase()}\n`, ssl.ok(['x509', '-in', 'pool.pem', '-noout', '-serial']));
  // notAfter as reported matches the certificate and the default validity.
  const end = new Date(ssl.ok(['x509', '-in', 'pool.pem', '-noout', '-enddate']).replace('notAfter=', '').trim());
  assert.is(end.getTime(), issued.notAfter.getTime());
  const days = (issued.notAfter.getTime() - Date.now()) / 86_400_000;
  assert.ok(Math.abs(days - POOL_VALIDITY_DAYS) < 1, `validity ${days} days`);
  assert.ok(isIssuedBy(issued.certPem, ca.certPem));
});

test('validity is configurable and reissuing a pool gives a new serial', () => {
  const a = issuePoolCertificate(ca, seed.csr, { poolId: 'p', validityDays: 30 });
  const b = issuePoolCertificate(ca, seed.csr, { poolId: 'p', validityDays: 30 });
  assert.is.not(a.serial, b.serial);
  const days = (a.notAfter.getTime() - Date.now()) / 86_400_000;
  assert.ok(Math.abs(days - 30) < 1, `validity ${days} days`);
  expectCode(() => issuePoolCertificate(ca, seed.csr, { poolId: 'p', validityDays: 0 }), 'VALIDITY_INVALID', /expected 1 to 36600 days/);
  expectCode(() => issuePoolCertificate(ca, seed.csr, { poolId: '' }), 'POOL_ID_INVALID');
});

test('a certificate from another CA is not issued by ours; a mismatched CA is refused', () => {
  const other = createCertificateAuthority({ bits: 2048 });
  const foreign = issuePoolCertificate(other, seed.csr, { poolId: 'p' });
  assert.not.ok(isIssuedBy(foreign.certPem, ca.certPem));
  ssl.write('foreign.pem', foreign.certPem);
  assert.is.not(ssl.run(['verify', '-CAfile', 'ca.pem', 'foreign.pem']).status, 0);
  expectCode(() => issuePoolCertificate({ keyPem: other.keyPem, certPem: ca.certPem }, seed.csr, { poolId: 'p' }), 'CA_INVALID', /does not match/);
});

test('the server certificate has serverAuth and the SANs, and serves real mutual TLS with a pool certificate', async () => {
  const server = issueServerCertificate(ca, { dnsNames: ['localhost', 'launcher.internal'], ipAddresses: ['127.0.0.1', '::1'] });
  ssl.write('server.pem', server.certPem);
  const text = ssl.ok(['x509', '-in', 'server.pem', '-noout', '-text']);
  assert.match(text, /Extended Key Usage: \s*TLS Web Server Authentication\n/);
  assert.match(text, /DNS:localhost, DNS:launcher\.internal, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
  const r = ssl.run(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'server.pem']);
  assert.is(r.status, 0, r.stderr);

  const poolKey = generatePoolKey(2048);
  const pool = issuePoolCertificate(ca, createCsr(poolKey.privateKeyPem), { poolId: 'pool-tls' });
  const srv = tls.createServer({ key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (sock) => {
    sock.end(`hello ${sock.getPeerCertificate().subject.CN}`);
  });
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const port = (srv.address() as AddressInfo).port;
  try {
    for (const servername of ['localhost', undefined]) {
      const reply = await new Promise<string>((ok, fail) => {
        const c = tls.connect({ host: '127.0.0.1', port, servername, ca: ca.certPem, key: poolKey.privateKeyPem, cert: pool.certPem }, () => {
          let data = '';
          c.on('data', (d) => { data += d; });
          c.on('end', () => ok(data));
        });
        c.on('error', fail);
      });
      assert.is(reply, 'hello pool-tls');
    }
    // A client without a pool certificate is refused by the server.
    const refused = await new Promise<boolean>((ok) => {
      const c = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem }, () => c.on('data', () => ok(false)).on('end', () => ok(false)));
      c.on('error', () => ok(true));
      c.on('close', () => ok(true));
    });
    assert.ok(refused);
  } finally {
    await new Promise((ok) => srv.close(ok));
  }
  expectCode(() => issueServerCertificate(ca, { dnsNames: [], ipAddresses: [] }), 'CERT_NAMES_MISSING');
  expectCode(() => issueServerCertificate(ca, { dnsNames: ['x'], ipAddresses: ['999.1.1.1'] }), 'CERT_NAMES_INVALID');
  expectCode(() => issueServerCertificate(ca, { dnsNames: ['bad name'], ipAddresses: [] }), 'CERT_NAMES_INVALID', /"bad name" is not a DNS name/);
  // An IP passed as a DNS name becomes an IP SAN.
  ssl.write('moved.pem', issueServerCertificate(ca, { dnsNames: ['127.0.0.2', 'localhost'], ipAddresses: [] }).certPem);
  assert.match(ssl.ok(['x509', '-in', 'moved.pem', '-noout', '-ext', 'subjectAltName']), /DNS:localhost, IP Address:127\.0\.0\.2/);
});

test('inspectCsr reports the key and subject of the seed CSR and of ours', () => {
  const facts = inspectCsr(seed.csr);
  assert.is(facts.bits, 4096);
  assert.is(facts.subject, 'C=AU, ST=Some-State, O=Internet Widgits Pty Ltd');
  assert.is(facts.publicKeyPem, ssl.ok(['req', '-in', 'spacelift.csr', '-pubkey', '-noout']));
  const k = generatePoolKey(2048);
  const ours = inspectCsr(createCsr(k.privateKeyPem, { commonName: 'mine' }));
  assert.is(ours.bits, 2048);
  assert.is(ours.subject, 'CN=mine');
  assert.is(ours.publicKeyPem, k.publicKeyPem);
  // Surrounding whitespace and CRLF line ends are fine.
  assert.is(inspectCsr(`\n${seed.csr.replace(/\n/g, '\r\n')}\n`).bits, 4096);
});

test('the seed command answered interactively (defaults, or a challenge password) and an empty subject are accepted', () => {
  // The seed runs openssl req without -subj, so it prompts; pressing Enter takes the defaults.
  ssl.ok(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'i.key', '-out', 'i.csr'], '\n'.repeat(9));
  assert.is(inspectCsr(ssl.read('i.csr')).subject, 'C=AU, ST=Some-State, O=Internet Widgits Pty Ltd');
  // A challenge password becomes a CSR attribute, which is ignored (and never shown).
  ssl.ok(['req', '-new', '-key', 'i.key', '-out', 'pw.csr'], 'NZ\n\n\n\n\nops team\n\nhunter2\n\n');
  const facts = inspectCsr(ssl.read('pw.csr'));
  assert.is(facts.subject, 'C=NZ, ST=Some-State, O=Internet Widgits Pty Ltd, CN=ops team');
  ssl.write('pw.pem', issuePoolCertificate(ca, ssl.read('pw.csr'), { poolId: 'p' }).certPem);
  assert.not.match(ssl.ok(['x509', '-in', 'pw.pem', '-noout', '-text']), /hunter2/);
  ssl.ok(['req', '-new', '-key', 'i.key', '-out', 'empty.csr', '-subj', '/']);
  assert.is(inspectCsr(ssl.read('empty.csr')).subject, '');
});

test('pool ids outside PrintableString (underscore, @, non-ASCII) are encoded as UTF8String', () => {
  const issued = issuePoolCertificate(ca, seed.csr, { poolId: 'team_a@prod-ü' });
  ssl.write('utf8.pem', issued.certPem);
  assert.match(ssl.ok(['x509', '-in', 'utf8.pem', '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus']), /CN=team_a@prod-ü/);
  assert.match(ssl.ok(['asn1parse', '-in', 'utf8.pem']), /UTF8STRING\s*:team_a@prod-/);
  assert.is(ssl.run(['verify', '-CAfile', 'ca.pem', 'utf8.pem']).status, 0);
});

test('CSRs that openssl makes but we must refuse: EC, RSA 1024, SHA-1', () => {
  ssl.ok(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ec.key', '-out', 'ec.csr', '-subj', '/CN=ec']);
  expectCode(() => inspectCsr(ssl.read('ec.csr')), 'CSR_INVALID', /^Cannot accept the CSR: its key is ec, expected RSA/);
  ssl.ok(['req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', 'small.key', '-out', 'small.csr', '-subj', '/CN=small']);
  expectCode(() => inspectCsr(ssl.read('small.csr')), 'CSR_INVALID', /its RSA key has 1024 bits, expected at least 2048/);
  const sha1 = ssl.run(['req', '-new', '-sha1', '-key', 'spacelift.key', '-out', 'sha1.csr', '-subj', '/CN=old']);
  assert.is(sha1.status, 0, sha1.stderr);
  expectCode(() => inspectCsr(ssl.read('sha1.csr')), 'CSR_INVALID', /signed with sha1WithRSAEncryption, expected SHA-256 or stronger/);
  ssl.ok(['req', '-new', '-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-nodes', '-keyout', 'pss.key', '-out', 'pss.csr', '-subj', '/CN=pss']);
  expectCode(() => inspectCsr(ssl.read('pss.csr')), 'CSR_INVALID', /its key is rsa-pss, expected RSA/);
  // SHA-512 signatures are fine.
  ssl.ok(['req', '-new', '-sha512', '-key', 'spacelift.key', '-out', 'sha512.csr', '-subj', '/CN=new']);
  assert.is(inspectCsr(ssl.read('sha512.csr')).bits, 4096);
  // Issuance applies the same checks.
  expectCode(() => issuePoolCertificate(ca, ssl.read('ec.csr'), { poolId: 'p' }), 'CSR_INVALID', /expected RSA/);
});

test('malformed CSRs get an error that says what is wrong', () => {
  const der = derOf(seed.csr);
  const tampered = Buffer.from(der);
  const at = tampered.indexOf(Buffer.from('Some-State'));
  tampered[at] = 'X'.charCodeAt(0);
  const trailing = Buffer.concat([der, Buffer.from([0, 0])]);
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['hello', /it is not PEM/],
    [seed.csr.slice(0, 500), /not one complete PEM block/],
    [seed.csr.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'), /labelled "CERTIFICATE", expected "CERTIFICATE REQUEST"/],
    [seed.csr.replace('-----END CERTIFICATE REQUEST-----', '-----END CERTIFICATE-----'), /ends as "CERTIFICATE"/],
    [seed.csr.replace(/\n([A-Za-z0-9+/]{8})/, '\n$1%'), /PEM body is not valid base64/],
    [pemOf(tampered), /signature does not verify/],
    [pemOf(der.subarray(0, der.length - 10)), /truncated/],
    [pemOf(trailing), /trailing bytes/],
    [pemOf(Buffer.from([0x30, 0x80, 0, 0])), /indefinite length/],
    [seed.csr + '\n' + seed.csr, /holds 2 PEM blocks/],
    ['x'.repeat(MAX_CSR_BYTES + 1), /larger than 64 KiB/],
  ];
  for (const [pem, why] of cases) {
    const err = expectCode(() => inspectCsr(pem), 'CSR_INVALID', /^Cannot accept the CSR: /);
    assert.match(err.message, why);
    assert.is(err.exitCode, 2);
  }
});

test('fuzz: mutated CSRs always end in CSR_INVALID (or still verify), never another exception', () => {
  const rand = prng(0xc5a);
  const der = derOf(createCsr(generatePoolKey(2048).privateKeyPem, { commonName: 'fuzz' }));
  const pick = (n: number) => Math.floor(rand() * n);
  let refused = 0;
  const total = 1500;
  for (let i = 0; i < total; i++) {
    const m = Buffer.from(der);
    let input: string;
    switch (i % 6) {
      case 0: // flip 1..4 bits anywhere
        for (let j = 0, n = 1 + pick(4); j < n; j++) { const p = pick(m.length); m[p] = m[p]! ^ (1 << pick(8)); }
        input = pemOf(m);
        break;
      case 1: // flip a bit in the first 40 bytes, where the lengths and tags are
        { const p = pick(40); m[p] = m[p]! ^ (1 << pick(8)); }
        input = pemOf(m);
        break;
      case 2: // truncate the DER
        input = pemOf(m.subarray(0, pick(m.length)));
        break;
      case 3: // truncate the PEM text
        { const pem = pemOf(m); input = pem.slice(0, pick(pem.length)); }
        break;
      case 4: // random bytes inside a valid-looking PEM
        { const r = Buffer.alloc(pick(600)); for (let j = 0; j < r.length; j++) r[j] = pick(256); if (r.length) r[0] = 0x30; input = pemOf(r); }
        break;
      default: // overwrite a random byte with a random value
        m[pick(m.length)] = pick(256);
        input = pemOf(m);
    }
    try {
      const facts = inspectCsr(input);
      assert.is(facts.bits, 2048); // a mutation that still verifies must still be our key
    } catch (e) {
      if (!(e instanceof LauncherError) || e.code !== 'CSR_INVALID') {
        throw new Error(`iteration ${i}: expected CSR_INVALID, got ${e instanceof Error ? e.stack : String(e)}`);
      }
      refused++;
    }
  }
  assert.ok(refused > total * 0.95, `only ${refused} of ${total} mutations refused`);
});

test.after(() => ssl.cleanup());
test.run();
