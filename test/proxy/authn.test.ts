/**
 * SECURITY rule 8 (authentication must positively succeed) and rule 9 (an
 * issuer restricted to clusters), against a real oidc-provider on loopback.
 */
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK } from 'jose';
import { BEARER_PROTOCOL_PREFIX, createAuthenticator, type AuthnResult, type Authenticator, type IssuerConfig } from '../../runtime-proxy/authn/index.ts';
import { createLocalCa, type LocalCa } from '../../sandbox/local-ca.ts';
import { startOidcProvider, type LocalOidcProvider } from '../../sandbox/oidc-issuer.ts';

let people: LocalOidcProvider;
let github: LocalOidcProvider;
let clientCa: LocalCa;
let otherCa: LocalCa;
let authn: Authenticator;
let peopleIssuer: IssuerConfig;

const bearer = (token: string) => ['Authorization', `Bearer ${token}`];
const subprotocol = (token: string) => ['Sec-WebSocket-Protocol', `v5.channel.k8s.io, ${BEARER_PROTOCOL_PREFIX}${Buffer.from(token).toString('base64url')}`];

function failed(r: AuthnResult, code: string): void {
  assert.equal(r.ok, false, `expected ${code}, got ${JSON.stringify(r)}`);
  if (!r.ok) assert.equal(r.code, code, r.message);
}

function user(r: AuthnResult): { user: string; groups: readonly string[] } {
  assert.ok(r.ok, JSON.stringify(r));
  return { user: r.identity.user, groups: r.identity.groups };
}

before(async () => {
  [people, github] = await Promise.all([startOidcProvider(), startOidcProvider()]);
  clientCa = createLocalCa('portcullis client CA');
  otherCa = createLocalCa('someone else');
  peopleIssuer = { issuer: people.issuer, audiences: ['portcullis'], usernamePrefix: 'oidc:', groupsClaim: 'groups', caFile: people.caFile };
  authn = createAuthenticator({
    issuers: [
      peopleIssuer,
      // A GitHub-Actions-style workload issuer: other claims, other prefix, restricted to one cluster.
      { issuer: github.issuer, audiences: ['https://github.com/acme'], usernamePrefix: 'github:', caFile: github.caFile, clusters: ['staging'], algorithms: ['RS256'] },
    ],
    clientCertificates: { caFile: clientCa.caFile, usernamePrefix: 'x509:', groupsPrefix: 'x509:' },
  });
});

after(async () => {
  await Promise.all([people?.stop(), github?.stop()]);
  clientCa?.remove();
  otherCa?.remove();
});

describe('credential extraction (rawHeaders)', () => {
  it('GIVEN no credential WHEN authenticating THEN NO_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: ['Accept', 'application/json'] }, Date.now()), 'NO_CREDENTIALS');
  });

  it('GIVEN an empty, non-Bearer or malformed Authorization THEN INVALID_CREDENTIALS', async () => {
    // 'Bearer a, Bearer b' is how a folded duplicate (e.g. HTTP/2 joining repeated fields) arrives: still refused.
    for (const value of ['Bearer ', 'Bearer', '', 'Basic YWxpY2U6c2VjcmV0', 'Bearer a b', 'Bearer  tok', 'Token abc', 'Bearer tok\t', 'Bearer a.b.c, Bearer d.e.f']) {
      failed(await authn.authenticate({ rawHeaders: ['authorization', value] }, Date.now()), 'INVALID_CREDENTIALS');
    }
  });

  it('GIVEN two Authorization headers (folded away in req.headers) THEN AMBIGUOUS_CREDENTIALS, even if both are valid', async () => {
    const t = await people.token({ sub: 'alice' });
    failed(await authn.authenticate({ rawHeaders: [...bearer(t), ...bearer(t)] }, Date.now()), 'AMBIGUOUS_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: ['authorization', `Bearer ${t}`, 'AUTHORIZATION', 'Bearer x'] }, Date.now()), 'AMBIGUOUS_CREDENTIALS');
  });

  it('GIVEN two bearer subprotocol entries, in one header or two THEN AMBIGUOUS_CREDENTIALS', async () => {
    const t = await people.token({ sub: 'alice' });
    const e = `${BEARER_PROTOCOL_PREFIX}${Buffer.from(t).toString('base64url')}`;
    failed(await authn.authenticate({ rawHeaders: ['Sec-WebSocket-Protocol', `${e}, ${e}`] }, Date.now()), 'AMBIGUOUS_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: ['Sec-WebSocket-Protocol', e, 'sec-websocket-protocol', e] }, Date.now()), 'AMBIGUOUS_CREDENTIALS');
  });

  it('GIVEN an Authorization header and a bearer subprotocol entry THEN AMBIGUOUS_CREDENTIALS', async () => {
    const t = await people.token({ sub: 'alice' });
    failed(await authn.authenticate({ rawHeaders: [...bearer(t), ...subprotocol(t)] }, Date.now()), 'AMBIGUOUS_CREDENTIALS');
  });

  it('GIVEN the kubectl WebSocket bearer subprotocol alone THEN it authenticates', async () => {
    const t = await people.token({ sub: 'alice', groups: ['devs'] });
    assert.deepEqual(user(await authn.authenticate({ rawHeaders: subprotocol(t) }, Date.now())), { user: 'oidc:alice', groups: ['oidc:devs'] });
  });

  it('GIVEN a subprotocol entry that is empty or not raw base64url THEN INVALID_CREDENTIALS', async () => {
    const t = await people.token({ sub: 'alice' });
    const padded = Buffer.from(`${t}x`).toString('base64');
    for (const enc of ['', 'abc$def', `${Buffer.from(t).toString('base64url')}=`, padded.includes('=') ? padded : `${padded}=`, 'a']) {
      failed(await authn.authenticate({ rawHeaders: ['Sec-WebSocket-Protocol', `${BEARER_PROTOCOL_PREFIX}${enc}`] }, Date.now()), 'INVALID_CREDENTIALS');
    }
  });

  it('GIVEN a bearer token that is not a JWT THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer('abcdef') }, Date.now()), 'INVALID_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: bearer('a.b.c') }, Date.now()), 'INVALID_CREDENTIALS');
  });
});

describe('token verification against the real provider', () => {
  it('GIVEN a real token with groups WHEN authenticating THEN user and groups are prefixed and expiresAt is exp plus the clock tolerance', async () => {
    const t = await people.token({ sub: 'alice', groups: ['devs', 'sre', 'devs'], ttlSeconds: 300 });
    const r = await authn.authenticate({ rawHeaders: bearer(t) }, Date.now());
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.identity.user, 'oidc:alice');
    assert.deepEqual(r.identity.groups, ['oidc:devs', 'oidc:sre']);
    assert.equal(r.identity.issuer, people.issuer);
    assert.equal(r.identity.method, 'oidc');
    const exp = JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()).exp as number;
    assert.equal(r.identity.expiresAt, (exp + 30) * 1000);
    assert.ok(people.hits.get('/.well-known/openid-configuration'), 'discovery was fetched from the issuer');
    assert.ok(people.hits.get('/jwks'), 'JWKS was fetched from the issuer');
  });

  it('GIVEN an ES256 token from the provider WHEN the issuer allows the defaults THEN it verifies; WHEN pinned to RS256 THEN it is refused', async () => {
    const t = await people.token({ sub: 'alice', alg: 'ES256' });
    assert.equal(user(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now())).user, 'oidc:alice');
    const rsOnly = createAuthenticator({ issuers: [{ ...peopleIssuer, algorithms: ['RS256'] }] });
    failed(await rsOnly.authenticate({ rawHeaders: bearer(t) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN HS256 keyed with the public key, or alg none THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.hs256Token()) }, Date.now()), 'INVALID_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: bearer(people.noneToken()) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a configuration with a symmetric or none algorithm THEN createAuthenticator refuses it', () => {
    for (const alg of ['HS256', 'none']) {
      assert.throws(() => createAuthenticator({ issuers: [{ ...peopleIssuer, algorithms: [alg] }] }), /not allowed/);
    }
  });

  it('GIVEN a token signed by a foreign key under the provider kid THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.foreignKeyToken()) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a foreign-signed token embedding its own key in the header (jwk) THEN the embedded key is ignored', async () => {
    const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const now = Math.floor(Date.now() / 1000);
    const t = await new SignJWT({ sub: 'mallory' })
      .setProtectedHeader({ alg: 'RS256', jwk: await exportJWK(k.publicKey) })
      .setIssuer(people.issuer)
      .setAudience('portcullis')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(k.privateKey);
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a token from an issuer nobody configured THEN INVALID_CREDENTIALS', async () => {
    const peopleOnly = createAuthenticator({ issuers: [peopleIssuer] });
    failed(await peopleOnly.authenticate({ rawHeaders: bearer(await github.token({ sub: 'alice' })) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a token whose iss claims the configured issuer but that another provider signed THEN INVALID_CREDENTIALS', async () => {
    const t = await github.token({ sub: 'alice', claims: { iss: people.issuer } });
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a wrong audience THEN INVALID_CREDENTIALS; GIVEN one right audience among several THEN ok', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.wrongAudienceToken()) }, Date.now()), 'INVALID_CREDENTIALS');
    const t = await people.token({ sub: 'alice', aud: ['other', 'portcullis'] });
    assert.equal(user(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now())).user, 'oidc:alice');
  });

  it('GIVEN an expired token THEN EXPIRED', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.expiredToken()) }, Date.now()), 'EXPIRED');
  });

  it('GIVEN nbf in the future beyond the leeway THEN INVALID_CREDENTIALS; within the leeway THEN ok', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.futureNbfToken()) }, Date.now()), 'INVALID_CREDENTIALS');
    const soon = await people.token({ sub: 'alice', nbfSeconds: 10 });
    assert.equal(user(await authn.authenticate({ rawHeaders: bearer(soon) }, Date.now())).user, 'oidc:alice');
  });

  it('GIVEN a token WHEN the clock is 20 s past exp THEN the 30 s leeway accepts it; 40 s past THEN EXPIRED; with 0 leeway 1 s past THEN EXPIRED', async () => {
    const t = await people.token({ sub: 'alice', ttlSeconds: 60 });
    const exp = (JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()).exp as number) * 1000;
    assert.equal(user(await authn.authenticate({ rawHeaders: bearer(t) }, exp + 20_000)).user, 'oidc:alice');
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, exp + 40_000), 'EXPIRED');
    const strict = createAuthenticator({ issuers: [{ ...peopleIssuer, clockToleranceSeconds: 0 }] });
    failed(await strict.authenticate({ rawHeaders: bearer(t) }, exp + 1_000), 'EXPIRED');
  });

  it('GIVEN a real token without exp THEN INVALID_CREDENTIALS (exp is required)', async () => {
    const t = await people.token({ sub: 'alice', ttlSeconds: null });
    assert.equal(JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()).exp, undefined);
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN the issuer CA is not trusted (system store only) THEN discovery fails and the token is INVALID_CREDENTIALS', async () => {
    const { caFile: _ca, ...noCa } = peopleIssuer;
    const untrusting = createAuthenticator({ issuers: [noCa] });
    failed(await untrusting.authenticate({ rawHeaders: bearer(await people.token({ sub: 'alice' })) }, Date.now()), 'INVALID_CREDENTIALS');
  });
});

describe('names: claims, prefixes, system:', () => {
  it('GIVEN sub system:admin THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.systemUserToken()) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a group system:masters (any case) THEN INVALID_CREDENTIALS', async () => {
    for (const g of ['system:masters', 'SYSTEM:masters']) {
      failed(await authn.authenticate({ rawHeaders: bearer(await people.token({ sub: 'alice', groups: ['devs', g] })) }, Date.now()), 'INVALID_CREDENTIALS');
    }
  });

  it('GIVEN a prefix that is empty or starts with system: THEN the configuration is refused', () => {
    for (const usernamePrefix of ['', 'system:', 'system:oidc:']) {
      assert.throws(() => createAuthenticator({ issuers: [{ ...peopleIssuer, usernamePrefix }] }), /usernamePrefix/);
    }
    assert.throws(() => createAuthenticator({ issuers: [{ ...peopleIssuer, groupsPrefix: 'system:' }] }), /groupsPrefix/);
  });

  it('GIVEN a missing or empty sub THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await people.token({ sub: null })) }, Date.now()), 'INVALID_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: bearer(await people.token({ sub: '' })) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN usernameClaim email and a distinct groupsPrefix THEN those are used; an unverified email is refused', async () => {
    const a = createAuthenticator({ issuers: [{ ...peopleIssuer, usernameClaim: 'email', groupsPrefix: 'team:' }] });
    const ok = await people.token({ sub: 'u-123', groups: ['devs'], claims: { email: 'alice@example.com', email_verified: true } });
    assert.deepEqual(user(await a.authenticate({ rawHeaders: bearer(ok) }, Date.now())), { user: 'oidc:alice@example.com', groups: ['team:devs'] });
    const unverified = await people.token({ sub: 'u-123', claims: { email: 'alice@example.com', email_verified: false } });
    failed(await a.authenticate({ rawHeaders: bearer(unverified) }, Date.now()), 'INVALID_CREDENTIALS');
    failed(await a.authenticate({ rawHeaders: bearer(await people.token({ sub: 'u-123' })) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN the groups claim missing THEN no groups; a single string THEN one group', async () => {
    assert.deepEqual(user(await authn.authenticate({ rawHeaders: bearer(await people.token({ sub: 'alice' })) }, Date.now())).groups, []);
    assert.deepEqual(user(await authn.authenticate({ rawHeaders: bearer(await people.token({ sub: 'alice', groups: 'devs' })) }, Date.now())).groups, ['oidc:devs']);
  });

  it('GIVEN a groups claim of an odd type THEN INVALID_CREDENTIALS', async () => {
    for (const groups of [42, { devs: true }, ['devs', 7], [['devs']], true, ['']]) {
      failed(await authn.authenticate({ rawHeaders: bearer(await people.token({ sub: 'alice', groups })) }, Date.now()), 'INVALID_CREDENTIALS');
    }
  });

  it('GIVEN an issuer without groupsClaim THEN groups in the token are ignored', async () => {
    const a = createAuthenticator({ issuers: [{ issuer: people.issuer, audiences: ['portcullis'], usernamePrefix: 'oidc:', caFile: people.caFile }] });
    assert.deepEqual(user(await a.authenticate({ rawHeaders: bearer(await people.token({ sub: 'alice', groups: ['devs'] })) }, Date.now())).groups, []);
  });
});

describe('a second issuer for CI workloads, restricted to clusters (rule 9)', () => {
  const ciToken = () =>
    github.token({ sub: 'repo:acme/app:ref:refs/heads/main', aud: 'https://github.com/acme', claims: { repository: 'acme/app', ref: 'refs/heads/main' } });

  it('GIVEN a GitHub-Actions-style token WHEN the target cluster is allowed THEN the user is github:repo:…', async () => {
    const r = await authn.authenticate({ rawHeaders: bearer(await ciToken()) }, Date.now(), 'staging');
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.identity.user, 'github:repo:acme/app:ref:refs/heads/main');
    assert.equal(r.identity.issuer, github.issuer);
  });

  it('GIVEN the same token WHEN the target is another cluster or none is given THEN INVALID_CREDENTIALS', async () => {
    const t = await ciToken();
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now(), 'prod-eu'), 'INVALID_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a people token (audience portcullis) presented as the CI issuer audience THEN refused; CI token to people audience THEN refused', async () => {
    failed(await authn.authenticate({ rawHeaders: bearer(await github.token({ sub: 'x' })) }, Date.now(), 'staging'), 'INVALID_CREDENTIALS');
    const t = await people.token({ sub: 'alice', aud: 'https://github.com/acme' });
    failed(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now(), 'staging'), 'INVALID_CREDENTIALS');
  });

  it('GIVEN an unrestricted issuer THEN any cluster is fine', async () => {
    const t = await people.token({ sub: 'alice' });
    assert.equal(user(await authn.authenticate({ rawHeaders: bearer(t) }, Date.now(), 'prod-eu')).user, 'oidc:alice');
  });

  it('GIVEN the same issuer configured twice THEN the configuration is refused', () => {
    assert.throws(() => createAuthenticator({ issuers: [peopleIssuer, peopleIssuer] }), /twice/);
  });
});

describe('client certificates', () => {
  const cert = (ca: LocalCa, cn: string, o: string[] = [], days = 30) => new X509Certificate(ca.issue({ cn, o, usage: 'clientAuth', days }).certPem);

  it('GIVEN a certificate from the client CA THEN CN is the user and each O a group, prefixed; expiresAt is notAfter', async () => {
    const c = cert(clientCa, 'carol', ['devs', 'sre']);
    const r = await authn.authenticate({ rawHeaders: [], peerCertificate: c }, Date.now());
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual({ user: r.identity.user, groups: r.identity.groups, method: r.identity.method }, { user: 'x509:carol', groups: ['x509:devs', 'x509:sre'], method: 'x509' });
    assert.equal(r.identity.expiresAt, Date.parse(c.validTo));
  });

  it('GIVEN a certificate from another CA THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: [], peerCertificate: cert(otherCa, 'carol') }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN the clock past notAfter THEN EXPIRED; before notBefore THEN INVALID_CREDENTIALS', async () => {
    const c = cert(clientCa, 'carol', [], 1);
    failed(await authn.authenticate({ rawHeaders: [], peerCertificate: c }, Date.parse(c.validTo) + 1000), 'EXPIRED');
    failed(await authn.authenticate({ rawHeaders: [], peerCertificate: c }, Date.parse(c.validFrom) - 1000), 'INVALID_CREDENTIALS');
  });

  it('GIVEN CN or O in system: THEN INVALID_CREDENTIALS', async () => {
    failed(await authn.authenticate({ rawHeaders: [], peerCertificate: cert(clientCa, 'system:kube-controller-manager') }, Date.now()), 'INVALID_CREDENTIALS');
    failed(await authn.authenticate({ rawHeaders: [], peerCertificate: cert(clientCa, 'carol', ['system:masters']) }, Date.now()), 'INVALID_CREDENTIALS');
  });

  it('GIVEN a certificate and a bearer token together THEN AMBIGUOUS_CREDENTIALS', async () => {
    const t = await people.token({ sub: 'alice' });
    failed(await authn.authenticate({ rawHeaders: bearer(t), peerCertificate: cert(clientCa, 'carol') }, Date.now()), 'AMBIGUOUS_CREDENTIALS');
  });

  it('GIVEN client certificates are not configured THEN a certificate is no credential', async () => {
    const noCerts = createAuthenticator({ issuers: [peopleIssuer] });
    failed(await noCerts.authenticate({ rawHeaders: [], peerCertificate: cert(clientCa, 'carol') }, Date.now()), 'NO_CREDENTIALS');
  });
});
