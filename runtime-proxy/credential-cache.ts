import { hash } from 'node:crypto';
import type { AuthnRequest, AuthnResult, Authenticator } from './identity.ts';

/** How long a successful authentication is reused at most (kube-apiserver's token cache uses 10 s as well). */
export const AUTHN_CACHE_TTL_MS = 10_000;
const MAX_ENTRIES = 10_000;

/**
 * Reuses successful authentications of the plain case — exactly one
 * `Authorization` header, no WebSocket protocol header, no client certificate
 * — for at most 10 s and never past the credential's expiry. Everything else
 * (doubled or mixed credentials, failures) goes to the authenticator every
 * time, so its checks of odd requests are never bypassed. Keyed by sha256 of
 * the cluster and the header value; bounded in size.
 */
export function cachingAuthenticator(inner: Authenticator, ttlMs = AUTHN_CACHE_TTL_MS): Authenticator & { readonly size: () => number } {
  const cache = new Map<string, { readonly result: AuthnResult; readonly until: number }>();
  return {
    size: () => cache.size,
    async authenticate(req: AuthnRequest, now: number, cluster?: string): Promise<AuthnResult> {
      const key = plainKey(req, cluster);
      if (key !== undefined) {
        const hit = cache.get(key);
        if (hit && now < hit.until) return hit.result;
        if (hit) cache.delete(key);
      }
      const result = await inner.authenticate(req, now, cluster);
      if (key !== undefined && result.ok) {
        const until = Math.min(now + ttlMs, result.identity.expiresAt ?? Number.POSITIVE_INFINITY);
        if (cache.size >= MAX_ENTRIES) {
          const oldest = cache.keys().next();
          if (!oldest.done) cache.delete(oldest.value);
        }
        cache.set(key, { result, until });
      }
      return result;
    },
  };
}

const AUTHORIZATION = 'authorization';
const WEBSOCKET_PROTOCOL = 'sec-websocket-protocol';

function plainKey(req: AuthnRequest, cluster: string | undefined): string | undefined {
  if (req.peerCertificate !== undefined) return undefined;
  let auth: string | undefined;
  const h = req.rawHeaders;
  for (let i = 0; i + 1 < h.length; i += 2) {
    // This runs for every request: lower-case only the names of the two lengths that matter.
    const raw = h[i] ?? '';
    if (raw.length !== AUTHORIZATION.length && raw.length !== WEBSOCKET_PROTOCOL.length) continue;
    const name = raw.toLowerCase();
    if (name === WEBSOCKET_PROTOCOL) return undefined;
    if (name === AUTHORIZATION) {
      if (auth !== undefined) return undefined;
      auth = h[i + 1] ?? '';
    }
  }
  if (auth === undefined) return undefined;
  return hash('sha256', `${cluster ?? ''}\0${auth}`, 'base64');
}
