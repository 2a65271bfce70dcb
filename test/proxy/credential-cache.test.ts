// The success cache in front of the authenticator.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cachingAuthenticator } from '../../runtime-proxy/credential-cache.ts';
import type { AuthnRequest, AuthnResult, Authenticator } from '../../runtime-proxy/identity.ts';

function counting(result: (req: AuthnRequest) => AuthnResult): Authenticator & { calls: number } {
  const a = {
    calls: 0,
    async authenticate(req: AuthnRequest): Promise<AuthnResult> {
      a.calls++;
      return result(req);
    },
  };
  return a;
}
const OK: AuthnResult = { ok: true, identity: { user: 'oidc:a', groups: [], issuer: 'i', method: 'oidc', expiresAt: 100_000 } };

describe('cachingAuthenticator', () => {
  it('GIVEN one Authorization header WHEN it authenticated THEN it is reused for 10 s, never past expiry, and per cluster', async () => {
    const inner = counting(() => OK);
    const c = cachingAuthenticator(inner);
    const req = { rawHeaders: ['Authorization', 'Bearer t'] };
    await c.authenticate(req, 0, 'dev');
    await c.authenticate(req, 9_999, 'dev');
    assert.equal(inner.calls, 1);
    await c.authenticate(req, 10_000, 'dev');
    assert.equal(inner.calls, 2);
    await c.authenticate(req, 10_001, 'prod');
    assert.equal(inner.calls, 3);
    await c.authenticate(req, 99_999, 'dev');
    await c.authenticate(req, 100_000, 'dev');
    assert.equal(inner.calls, 5, 'expiry bounds the cache');
  });

  it('GIVEN doubled, subprotocol or certificate credentials, or a failure WHEN authenticating THEN the authenticator decides every time', async () => {
    const inner = counting((req) => (req.rawHeaders.length > 2 ? { ok: false, code: 'AMBIGUOUS_CREDENTIALS', message: 'x' } : OK));
    const c = cachingAuthenticator(inner);
    await c.authenticate({ rawHeaders: ['Authorization', 'Bearer t'] }, 0, 'dev');
    const doubled = { rawHeaders: ['Authorization', 'Bearer t', 'authorization', 'Bearer t'] };
    assert.equal((await c.authenticate(doubled, 1, 'dev')).ok, false);
    assert.equal((await c.authenticate(doubled, 2, 'dev')).ok, false);
    await c.authenticate({ rawHeaders: ['Authorization', 'Bearer t', 'Sec-WebSocket-Protocol', 'base64url.bearer.authorization.k8s.io.x'] }, 3, 'dev');
    const bad = counting(() => ({ ok: false, code: 'INVALID_CREDENTIALS', message: 'x' }));
    const cb = cachingAuthenticator(bad);
    await cb.authenticate({ rawHeaders: ['Authorization', 'Bearer bad'] }, 0, 'dev');
    await cb.authenticate({ rawHeaders: ['Authorization', 'Bearer bad'] }, 1, 'dev');
    assert.equal(inner.calls, 4);
    assert.equal(bad.calls, 2);
    assert.equal(cb.size(), 0);
  });
});
