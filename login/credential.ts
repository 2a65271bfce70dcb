import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeJwt } from 'jose';
import { Agent, fetch } from 'undici';
import { LoginError } from './login-error.ts';
import { discover, loginWithBrowser, loginWithDevice } from './oidc-client.ts';
import { sessionPath, writeSecret } from './session-file.ts';
import type { Say } from './commands.ts';

/** Options of `portcullis credential`. */
export interface CredentialOptions {
  readonly proxy: string;
  readonly ca?: string;
  readonly device?: boolean;
}

/** Tokens are renewed this long before they expire, so kubectl never sends one that lapses on the way. */
const RENEW_BEFORE_S = 60;

/**
 * `portcullis credential`: kubectl's exec credential plugin (`client.authentication.k8s.io/v1`
 * ExecCredential) for those who prefer the identity provider's own tokens to a proxy session. It
 * prints the cached ID token while it is valid, and signs in again (browser or device) when it is
 * not; the cache is 0600 beside the session file, one entry per proxy.
 */
export async function execCredential(o: CredentialOptions, say: Say, now = Date.now()): Promise<string> {
  const cacheFile = join(dirname(sessionPath()), 'id-tokens.json');
  let cache: Record<string, string> = {};
  try {
    cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, string>;
  } catch {
    // no cache yet
  }
  let token = cache[o.proxy];
  const exp = (t: string | undefined): number => {
    try {
      return Number(decodeJwt(t ?? '').exp ?? 0);
    } catch {
      return 0;
    }
  };
  if (token === undefined || exp(token) - RENEW_BEFORE_S <= now / 1000) {
    const dispatcher = o.ca !== undefined ? new Agent({ connect: { ca: readFileSync(o.ca, 'utf8') } }) : undefined;
    let cfg: { issuer: string; clientId: string; scopes: string[] };
    try {
      const r = await fetch(`${o.proxy.replace(/\/$/, '')}/portcullis/v1/login`, dispatcher ? { dispatcher } : {});
      if (!r.ok) throw new LoginError('REFUSED', `${o.proxy}: ${r.status}`);
      cfg = (await r.json()) as typeof cfg;
    } catch (err) {
      if (err instanceof LoginError) throw err;
      throw new LoginError('UNREACHABLE', `${o.proxy}: ${(err as Error).message}`);
    }
    const idp = { issuer: cfg.issuer, clientId: cfg.clientId, scopes: cfg.scopes, ...(dispatcher ? { dispatcher } : {}) };
    const d = await discover(idp);
    token = o.device
      ? await loginWithDevice(idp, d, (uri, code, complete) => say(`To sign in, open ${uri} on any device and enter the code ${code}${complete ? ` (or open ${complete})` : ''}`))
      : await loginWithBrowser(idp, d, (url) => say(`Sign in through your browser: ${url}`));
    cache[o.proxy] = token;
    writeSecret(cacheFile, JSON.stringify(cache));
  }
  return JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: { token, expirationTimestamp: new Date(exp(token) * 1000).toISOString() },
  });
}
