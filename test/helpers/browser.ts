// Real Chromium (Debian's /usr/bin/chromium) driven by playwright-core, for
// the console's tests and benchmarks. A fresh profile each time; the server's
// own certificate is trusted by its SPKI pin (nothing else is), so the page
// is a real secure context with a Secure cookie. Every request and every
// console error is recorded, so tests can prove the page talks only to the
// server and logs no error.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Every URL the pages asked for. */
  requests: string[];
  /** Console errors and uncaught page errors, with the page URL they happened on. */
  errors: string[];
  close(): Promise<void>;
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's pin format). */
export function spkiPin(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

export async function launchBrowser(o: { serverCertPem: string; viewport?: { width: number; height: number } }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (scripts/setup-host.sh does)`);
  const profile = mkdtempSync(join(tmpdir(), 'launcher-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: o.viewport ?? { width: 1280, height: 800 },
    acceptDownloads: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spkiPin(o.serverCertPem)}`,
    ],
  });
  // A loaded machine (several engineers' tests at once) can take long to paint;
  // waits are bounds, not assertions about speed.
  context.setDefaultTimeout(120_000);
  context.setDefaultNavigationTimeout(120_000);
  const requests: string[] = [];
  const errors: string[] = [];
  const watch = (p: Page): void => {
    p.on('request', (r) => { requests.push(r.url()); });
    p.on('console', (m) => { if (m.type() === 'error') errors.push(`${p.url()}: ${m.text()}`); });
    p.on('pageerror', (e) => { errors.push(`${p.url()}: uncaught ${e.message}`); });
    p.on('dialog', (d) => { void d.accept(); });
  };
  context.on('page', watch);
  const page = context.pages()[0] ?? await context.newPage();
  watch(page);
  return {
    context, page, requests, errors,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
