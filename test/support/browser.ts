// A real headless Chromium (Debian's `chromium` package) driven by playwright-core: nothing
// downloads a browser. Each browser gets a fresh profile (playwright's own temporary
// --user-data-dir); the proxy's and the identity provider's certificates are trusted by their
// public-key pins only (--ignore-certificate-errors-spki-list), not by ignoring TLS errors.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Where Debian installs it; `.ci/run` installs the package. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags known to keep headless Chromium quiet and steady on a shared CI machine. */
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** The base64 SHA-256 of the SPKI of the certificate a TLS server at `url` presents. */
export function spkiPinOf(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, servername: u.hostname === '127.0.0.1' ? undefined : u.hostname }, () => {
      const raw = s.getPeerX509Certificate?.() ?? new X509Certificate(s.getPeerCertificate().raw);
      s.end();
      resolve(createHash('sha256').update(raw.publicKey.export({ type: 'spki', format: 'der' })).digest('base64'));
    });
    s.on('error', reject);
  });
}

/** Launches Chromium trusting exactly the servers at `trust` (their public keys). */
export async function launchChromium(trust: readonly string[]): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
  const pins = await Promise.all(trust.map(spkiPinOf));
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...ARGS, `--ignore-certificate-errors-spki-list=${pins.join(',')}`], timeout: 60_000 });
}

/** A fresh browser context (its own cookies) at desktop size unless told otherwise. */
export function newContext(b: Browser, viewport = { width: 1280, height: 800 }): Promise<BrowserContext> {
  return b.newContext({ viewport, acceptDownloads: true });
}

/** Saves a screenshot of the page to docs/console/NAME.png (the README shows them). */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = join(import.meta.dirname, '..', '..', 'docs', 'console');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false, animations: 'disabled', caret: 'hide' });
}
