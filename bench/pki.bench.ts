// Pool certificate issuance from a CSR, per second, next to the openssl CLI
// issuing from the same CSR with the same CA in the same run.
//
//   node_modules/.bin/node --import tsx bench/pki.bench.ts [--rounds 5] [--seconds 2]
//
// Ours: issuePoolCertificate() in-process (CSR checks + signature verify +
// certificate build + RSA-4096 CA signature). Peer: one `openssl x509 -req`
// process per certificate, so its figure includes process spawn; a third
// line measures `openssl version` spawns alone to show that floor, and a
// fourth the bare RSA-4096 signature every issuer must make. node-forge on its
// own (pure-JS RSA) shows why signing goes through node:crypto.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import forge from 'node-forge';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCertificateAuthority, issuePoolCertificate } from '../lib/pki.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '2' } } });
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);

const dir = mkdtempSync(join(tmpdir(), 'launcher-bench-pki-'));
try {
  const ossl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  // The seed's CSR: RSA 4096 from openssl req.
  ossl(['req', '-new', '-newkey', 'rsa:4096', '-nodes', '-keyout', 'spacelift.key', '-out', 'spacelift.csr', '-subj', '/O=bench']);
  const csr = readFileSync(join(dir, 'spacelift.csr'), 'utf8');
  const ca = createCertificateAuthority({ commonName: 'bench CA' }); // RSA 4096, the default
  const caKey = createPrivateKey(ca.keyPem);
  const forgeCaKey = forge.pki.privateKeyFromPem(caKey.export({ type: 'pkcs1', format: 'pem' }) as string);
  const forgeCaCert = forge.pki.certificateFromPem(ca.certPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'ca.key'), ca.keyPem);
  // The same profile we issue: clientAuth, digitalSignature + keyEncipherment.
  writeFileSync(join(dir, 'ext.cnf'), [
    '[pool]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = clientAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n'));

  type Contender = { name: string; once: (i: number) => void };
  const contenders: Contender[] = [
    { name: 'launcher issuePoolCertificate (in-process)', once: (i) => { issuePoolCertificate(ca, csr, { poolId: `pool-${i}` }); } },
    {
      name: 'openssl x509 -req (one process per cert)',
      once: (i) => {
        ossl(['x509', '-req', '-in', 'spacelift.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${(i + 1).toString(16)}`,
          '-days', '365', '-sha256', '-subj', `/CN=pool-${i}`, '-extfile', 'ext.cnf', '-extensions', 'pool', '-out', 'pool.pem']);
      },
    },
    {
      // What node-forge alone would do: pure-JS signature check and RSA signing.
      name: 'node-forge alone (pure-JS verify + sign, in-process)',
      once: (i) => {
        const req = forge.pki.certificationRequestFromPem(csr);
        if (!req.verify()) throw new Error('forge: CSR does not verify');
        const cert = forge.pki.createCertificate();
        cert.serialNumber = (i + 1).toString(16).padStart(32, '1');
        cert.validity.notBefore = new Date();
        cert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
        cert.publicKey = req.publicKey!;
        cert.setSubject([{ name: 'commonName', value: `pool-${i}` }]);
        cert.setIssuer(forgeCaCert.subject.attributes);
        cert.setExtensions([
          { name: 'basicConstraints', cA: false, critical: true },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
          { name: 'extKeyUsage', clientAuth: true },
        ]);
        cert.sign(forgeCaKey, forge.md.sha256.create());
        forge.pki.certificateToPem(cert);
      },
    },
    { name: 'openssl version (spawn floor, no crypto)', once: () => { ossl(['version']); } },
    { name: 'RSA-4096 SHA-256 signature alone (node:crypto; the limit for any issuer)', once: (i) => { sign('sha256', Buffer.from(`tbs-${i}`), caKey); } },
  ];

  // Warm-up, and a check the peer really issues a verifying certificate.
  for (const c of contenders) c.once(0);
  ossl(['verify', '-CAfile', 'ca.pem', 'pool.pem']);

  const results = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate contenders within each round so machine noise hits both.
    for (const c of contenders) {
      let n = 0;
      const start = process.hrtime.bigint();
      const end = start + BigInt(Math.round(seconds * 1e9));
      let now = start;
      while (now < end) {
        c.once(n++);
        now = process.hrtime.bigint();
      }
      results.get(c.name)!.push(n / (Number(now - start) / 1e9));
    }
  }
  const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
  const ours = median(results.get(contenders[0]!.name)!);
  console.log(`Pool certificate issuance from an RSA-4096 CSR, CA key RSA-4096, ${rounds} rounds x ${seconds}s, Node ${process.versions.node}, ${execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim()}`);
  console.log('| contender | median certs/s | runs (certs/s) | ours ÷ this |');
  console.log('| --- | ---: | --- | ---: |');
  for (const c of contenders) {
    const xs = results.get(c.name)!;
    const m = median(xs);
    console.log(`| ${c.name} | ${m.toFixed(1)} | ${xs.map((x) => x.toFixed(1)).join(', ')} | ${(ours / m).toFixed(2)}× |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
