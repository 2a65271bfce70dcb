// The console's sign-in (authorization code with PKCE, done by the proxy) against the real
// sandbox identity provider and a real Redis: a sign-in started on one replica finishes on
// another; a callback is redeemed once; a wrong state or an unknown key finishes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { LOGIN_CLIENT_ID, startOidcProvider, type LocalOidcProvider } from '../../sandbox/oidc-issuer.ts';
import { ConsoleSignIn } from '../../console/sign-in.ts';
import { MemoryPendingSignIns, RedisPendingSignIns } from '../../console/pending-sign-ins.ts';
import { signIn } from '../support/oidc-browser.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const REDIRECT = 'https://127.0.0.1:8443/console/callback';

describe('the console sign-in', { timeout: 120_000 }, () => {
  let idp: LocalOidcProvider;
  let redis: TestRedis;
  const made: ConsoleSignIn[] = [];
  const replica = (shared: boolean) => {
    const s = new ConsoleSignIn({ issuer: idp.issuer, clientId: LOGIN_CLIENT_ID, scopes: ['openid', 'groups'], caPem: idp.caPem }, Date.now, shared ? new RedisPendingSignIns(redis.url, () => undefined) : new MemoryPendingSignIns());
    made.push(s);
    return s;
  };
  /** Alice at the provider's forms, up to the redirect back to the console. */
  const atProvider = async (url: string) => {
    const back = await signIn(url, { login: 'alice', caPem: idp.caPem, stopAt: (u) => u.pathname === '/console/callback' });
    assert.match(back.url, /^https:\/\/127\.0\.0\.1:8443\/console\/callback\?code=/);
    return new URL(back.url).searchParams;
  };

  before(async () => {
    idp = await startOidcProvider({ people: { alice: ['sre'] } });
    redis = await startRedis();
  });
  after(async () => {
    for (const s of made) await s.close();
    await idp?.stop();
    await redis?.stop();
  });

  it('GIVEN two replicas sharing the store WHEN a sign-in starts on one and comes back to the other THEN it finishes with the ID token of this very sign-in (nonce), once', async () => {
    const a = replica(true);
    const b = replica(true);
    const { key, url } = await a.start(REDIRECT);
    const u = new URL(url);
    assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(u.searchParams.get('redirect_uri'), REDIRECT);
    assert.equal(u.searchParams.has('code_verifier'), false, 'the verifier never leaves the proxy');
    const query = await atProvider(url);
    const idToken = await b.finish(key, query, REDIRECT);
    const claims = decodeJwt(idToken);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.nonce, u.searchParams.get('nonce'));
    await assert.rejects(a.finish(key, query, REDIRECT), /no sign-in in progress/, 'a replayed callback finds nothing');
  });

  it('GIVEN a callback with another state, or an unknown key THEN nothing finishes, and the sign-in is spent', async () => {
    const a = replica(true);
    const { key, url } = await a.start(REDIRECT);
    const query = await atProvider(url);
    const forged = new URLSearchParams(query);
    forged.set('state', 'guessed');
    await assert.rejects(a.finish(key, forged, REDIRECT), /another state/);
    await assert.rejects(a.finish(key, query, REDIRECT), /no sign-in in progress/, 'spent by the failed attempt');
    await assert.rejects(a.finish('x'.repeat(32), query, REDIRECT), /no sign-in in progress/);
    await assert.rejects(a.finish(undefined, query, REDIRECT), /no sign-in in progress/);
  });

  it('GIVEN replicas without a shared store THEN a sign-in cannot finish on another one (why the console uses the store)', async () => {
    const a = replica(false);
    const b = replica(false);
    const { key, url } = await a.start(REDIRECT);
    const query = await atProvider(url);
    await assert.rejects(b.finish(key, query, REDIRECT), /no sign-in in progress/);
    assert.equal(decodeJwt(await a.finish(key, query, REDIRECT)).sub, 'alice');
  });
});
