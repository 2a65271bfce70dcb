// The pure pipeline stages: routing, parsing, authorization and deadlines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RuleSet } from '../../core/rule-set.ts';
import { authorizationVerb, parseRequestInfo } from '../../core/request-info.ts';
import { checkRequestTarget } from '../../core/request-target.ts';
import { decisionIndex, type ActiveBundle } from '../../runtime-proxy/bundle-store.ts';
import { ProxyError } from '../../runtime-proxy/errors.ts';
import { authenticateStage, authorizeStage, deadlineOf, parseRequestStage, route, type AuthorizeFacts } from '../../runtime-proxy/pipeline.ts';

const NOW = Date.parse('2026-06-01T10:00:00Z');
const RS: RuleSet = {
  apiVersion: 'portcullis.dev/v1',
  kind: 'RuleSet',
  cluster: 'dev',
  grants: [
    { id: 'read', source: { file: 'p.ts', line: 3 }, subjects: [{ kind: 'Group', name: 'oidc:dev' }], rules: [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }], scope: { kind: 'namespaces', namespaces: ['a'] }, conditions: {} },
    { id: 'temp', source: { file: 'p.ts', line: 9 }, subjects: [{ kind: 'User', name: 'oidc:u' }], rules: [{ verbs: ['delete'], apiGroups: [''], resources: ['pods'] }], scope: { kind: 'namespaces', namespaces: ['a'] }, conditions: { expires: '2026-06-01T11:00:00Z' }, activationGroup: 'portcullis:grant:temp' },
  ],
  denies: [{ id: 'no-kube-system', source: { file: 'p.ts', line: 20 }, subjects: 'everyone', except: [], rules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], scope: { kind: 'namespaces', namespaces: ['kube-system'] } }],
  impersonable: { users: ['oidc:u'], groups: ['oidc:dev', 'portcullis:grant:temp'] },
};
const BUNDLE: ActiveBundle = {
  cluster: 'dev',
  revision: 5,
  notAfter: Date.parse('2026-07-01T00:00:00Z'),
  sourceDigest: 'd',
  ruleSet: RS,
  index: decisionIndex(RS),
  fingerprint: 'f',
  envelopeSha256: '0'.repeat(64),
};
const ID = { user: 'oidc:u', groups: ['oidc:dev', 'oidc:not-named'], issuer: 'https://idp', method: 'oidc' as const, expiresAt: NOW + 30 * 60_000 };

function admit(method: string, target: string, id = ID) {
  const facts: AuthorizeFacts = {};
  try {
    return { a: authorizeStage(parseRequestStage(method, target, false), id, BUNDLE, new Map(), NOW, facts), facts };
  } catch (e) {
    return { e: e as ProxyError, facts };
  }
}

describe('route', () => {
  const cases: [string, ReturnType<typeof route>][] = [
    ['/clusters/dev/api/v1/pods', { cluster: 'dev', target: '/api/v1/pods' }],
    ['/clusters/dev', { cluster: 'dev', target: '/' }],
    ['/clusters/dev?watch=1', { cluster: 'dev', target: '/?watch=1' }],
    ['/clusters/prod-eu/apis', { cluster: 'prod-eu', target: '/apis' }],
    ['/clusters/Dev/api', undefined],
    ['/clusters/d%65v/api', undefined],
    ['/clusters//api', undefined],
    ['/api/v1/pods', undefined],
    ['*', undefined],
  ];
  for (const [target, want] of cases) it(`GIVEN ${target} WHEN routed THEN ${JSON.stringify(want)}`, () => assert.deepEqual(route(target), want));
});

describe('authorizeStage', () => {
  it('GIVEN a group grant WHEN listing pods THEN allowed by it, with the unnamed group dropped and file:line recorded', () => {
    const { a, facts } = admit('GET', '/api/v1/namespaces/a/pods');
    assert.equal(a?.grant.id, 'read');
    assert.deepEqual(a?.impersonate.groups, ['oidc:dev']);
    assert.deepEqual(a?.impersonate.extra, { 'portcullis.dev/grant': 'read', 'portcullis.dev/authenticated-by': 'https://idp' });
    assert.equal(facts.source, 'p.ts:3');
    // Denies see it (SECURITY rule 22); no grant names it, so it is not impersonated.
    assert.ok(a?.attributes.groups.includes('oidc:not-named'));
    assert.ok(!a?.impersonate.groups.includes('oidc:not-named'));
  });

  it('GIVEN a conditional grant WHEN it determines the decision THEN its activation group is impersonated and the deadline is its expiry', () => {
    const { a } = admit('DELETE', '/api/v1/namespaces/a/pods/p');
    assert.equal(a?.grant.id, 'temp');
    assert.deepEqual(a?.impersonate.groups, ['oidc:dev', 'portcullis:grant:temp']);
    assert.deepEqual(a?.deadline, { at: Date.parse('2026-06-01T10:30:00Z'), reason: 'token-expired' });
    const later = { ...ID, expiresAt: NOW + 2 * 3600_000 };
    assert.deepEqual(admit('DELETE', '/api/v1/namespaces/a/pods/p', later).a?.deadline, { at: Date.parse('2026-06-01T11:00:00Z'), reason: 'window-ended' });
  });

  it('GIVEN a deny for everyone WHEN it matches THEN 403 naming the deny in the facts only', () => {
    const { e, facts } = admit('GET', '/api/v1/namespaces/kube-system/pods');
    assert.equal(e?.code, 'FORBIDDEN');
    assert.equal(facts.denyId, 'no-kube-system');
    assert.equal(facts.source, 'p.ts:20');
    assert.doesNotMatch(e?.safeMessage ?? '', /no-kube-system|p\.ts/);
  });

  it('GIVEN a user the policy does not name WHEN in a granted group THEN allowed what the group is granted, impersonated as portcullis:member with its name as an extra; in no granted group THEN 403', () => {
    const { a } = admit('GET', '/api/v1/namespaces/a/pods', { ...ID, user: 'oidc:new-hire' });
    assert.equal(a?.grant.id, 'read');
    assert.equal(a?.impersonate.user, 'portcullis:member');
    assert.deepEqual(a?.impersonate.groups, ['oidc:dev']);
    assert.deepEqual(a?.impersonate.extra, { 'portcullis.dev/grant': 'read', 'portcullis.dev/authenticated-by': 'https://idp', 'portcullis.dev/user': 'oidc:new-hire' });
    assert.equal(admit('GET', '/api/v1/namespaces/a/pods', { ...ID, user: 'oidc:x', groups: ['oidc:not-named'] }).e?.code, 'FORBIDDEN');
  });

  it('GIVEN a deny on a group no grant names WHEN a user carries it besides a granted group THEN the deny holds (SECURITY rule 22)', () => {
    const denyGroup = { ...RS, denies: [...RS.denies, { id: 'no-contractor-pods', source: { file: 'p.ts', line: 30 }, subjects: [{ kind: 'Group' as const, name: 'oidc:contractors' }], except: [], rules: [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }], scope: { kind: 'cluster' as const } }] };
    const bundle = { ...BUNDLE, ruleSet: denyGroup, index: decisionIndex(denyGroup) };
    const facts: { denyId?: string } = {};
    assert.throws(() => authorizeStage(parseRequestStage('GET', '/api/v1/namespaces/a/pods', false), { ...ID, groups: ['oidc:contractors', 'oidc:dev'] }, bundle, new Map(), NOW, facts), (e: unknown) => (e as { code?: string }).code === 'FORBIDDEN');
    assert.equal(facts.denyId, 'no-contractor-pods');
  });

  it('GIVEN any user WHEN running discovery THEN the built-in grant allows and system:authenticated is never impersonated', () => {
    const { a } = admit('GET', '/apis/apps/v1');
    assert.equal(a?.grant.id, 'builtin:discovery');
    assert.ok(!a?.impersonate.groups.includes('system:authenticated'));
  });

  it('GIVEN an unknown method or a target NewRequestInfo cannot parse WHEN authorizing THEN 403 before any grant is consulted', () => {
    assert.equal(admit('OPTIONS', '/api/v1/namespaces/a/pods').e?.code, 'FORBIDDEN');
    assert.equal(admit('GET', '/api/v1/watch').e?.code, 'FORBIDDEN');
  });

  it('GIVEN a non-canonical target WHEN parsed THEN 400', () => {
    assert.throws(() => parseRequestStage('GET', '/api/v1/namespaces//pods', false), (e: unknown) => e instanceof ProxyError && e.code === 'BAD_REQUEST');
  });

  it('GIVEN watch, follow logs, exec and plain gets WHEN parsed THEN only the first three are long-running', () => {
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/a/pods?watch=1', false).longRunning, true);
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/a/pods/p/log?follow=true', false).longRunning, true);
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/a/pods/p/exec?command=ls', true).longRunning, true);
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/a/pods/p/log', false).longRunning, false);
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/a/pods', false).longRunning, false);
  });

  it('GIVEN a target parsed before WHEN parsed again THEN the same frozen result, told apart by method and upgrade; a refusal is refused every time; long targets and old entries are not kept', () => {
    const t = '/api/v1/namespaces/memo/pods/p?timeoutSeconds=5';
    const first = parseRequestStage('GET', t, false);
    assert.equal(parseRequestStage('GET', t, false), first, 'the kept result');
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.info) && Object.isFrozen(first.info.parts));
    assert.throws(() => ((first.info as { verb: string }).verb = 'delete'), TypeError, 'no caller can change what the next request gets');
    assert.equal(parseRequestStage('DELETE', t, false).verb, 'delete');
    assert.equal(parseRequestStage('GET', t, false).verb, 'get');
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/memo/pods', false).longRunning, false);
    assert.equal(parseRequestStage('GET', '/api/v1/namespaces/memo/pods', true).longRunning, true);
    for (let i = 0; i < 2; i++) assert.throws(() => parseRequestStage('GET', '/api/v1/namespaces/memo/%2e%2e/pods', false), (e: unknown) => e instanceof ProxyError && e.code === 'BAD_REQUEST');
    const long = `/api/v1/namespaces/memo/pods?labelSelector=${'a'.repeat(600)}`;
    assert.notEqual(parseRequestStage('GET', long, false), parseRequestStage('GET', long, false), 'a long target is parsed every time');
    assert.deepEqual(parseRequestStage('GET', long, false), parseRequestStage('GET', long, false));
    // Past the bound, the oldest entry goes: the first target is parsed afresh (an equal, new result).
    for (let i = 0; i < 3000; i++) parseRequestStage('GET', `/api/v1/namespaces/memo/configmaps/cm-${i}`, false);
    const again = parseRequestStage('GET', t, false);
    assert.notEqual(again, first);
    assert.deepEqual(again, first);
  });

  it('GIVEN random targets WHEN each is parsed twice THEN the kept result equals a fresh parse (property)', () => {
    // Mostly plain segments, some with escapes (most of those refused) and dots.
    const seg = fc.oneof({ weight: 8, arbitrary: fc.stringMatching(/^[a-z0-9~_-]{1,6}$/) }, { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9.%]{1,4}$/) }, { weight: 1, arbitrary: fc.constantFrom('api', 'v1', 'namespaces', 'pods', 'apis') });
    let parsed = 0;
    fc.assert(
      fc.property(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'), fc.array(seg, { minLength: 1, maxLength: 7 }), fc.constantFrom('', '?watch=1', '?labelSelector=a%3Db', '?fieldSelector=metadata.name%3Dx&limit=5', '?follow=true'), fc.boolean(), (method, parts, query, upgrade) => {
        const target = `/${parts.join('/')}${query}`;
        let once;
        try {
          once = parseRequestStage(method, target, upgrade);
        } catch (err) {
          assert.ok(err instanceof ProxyError && err.code === 'BAD_REQUEST');
          assert.throws(() => parseRequestStage(method, target, upgrade), ProxyError);
          return;
        }
        parsed++;
        assert.equal(parseRequestStage(method, target, upgrade), once);
        // What the stage computes without its cache.
        const t = checkRequestTarget(target);
        assert.ok(t.ok);
        const info = parseRequestInfo(method, t.path, t.query);
        assert.deepEqual(once.info, info);
        assert.equal(once.verb, authorizationVerb(info, { isUpgrade: upgrade }));
      }),
      { numRuns: 400, seed: 1807 },
    );
    assert.ok(parsed >= 100, `only ${parsed} of 400 targets parsed`);
  });
});

describe('authenticateStage', () => {
  const authn = (identity: Record<string, unknown>) => ({ authenticate: async () => ({ ok: true as const, identity: identity as never }) });
  const cases: [string, Record<string, unknown>, boolean][] = [
    ['a plain identity', { user: 'oidc:a', groups: ['oidc:g'], issuer: 'i', method: 'oidc' }, true],
    ['an empty user', { user: '', groups: [], issuer: 'i', method: 'oidc' }, false],
    ['a system: user', { user: 'system:admin', groups: [], issuer: 'i', method: 'oidc' }, false],
    ['a system: group', { user: 'oidc:a', groups: ['system:masters'], issuer: 'i', method: 'oidc' }, false],
    ['a newline in the user', { user: 'oidc:a\r\nImpersonate-User: x', groups: [], issuer: 'i', method: 'oidc' }, false],
    ['a control character in a group', { user: 'oidc:a', groups: ['oidc:\u0000'], issuer: 'i', method: 'oidc' }, false],
    ['an expired credential', { user: 'oidc:a', groups: [], issuer: 'i', method: 'oidc', expiresAt: NOW }, false],
    ['an activation group (the proxy asserts those itself)', { user: 'oidc:a', groups: ['portcullis:grant:sre-break-glass'], issuer: 'i', method: 'oidc' }, false],
    ['the member user (whom the proxy impersonates for unnamed members)', { user: 'portcullis:member', groups: [], issuer: 'i', method: 'oidc' }, false],
  ];
  for (const [name, identity, ok] of cases) {
    it(`GIVEN ${name} from the authenticator WHEN the stage checks it THEN ${ok ? 'it passes' : '401'}`, async () => {
      const r = await authenticateStage(authn(identity), { rawHeaders: [] }, NOW, 'dev').then(
        () => 'ok',
        (e: unknown) => (e as ProxyError).code,
      );
      assert.equal(r, ok ? 'ok' : 'UNAUTHENTICATED');
    });
  }
});

describe('deadlineOf', () => {
  it('GIVEN token, grant, break-glass and bundle ends WHEN combined THEN the earliest wins with its reason', () => {
    const g = RS.grants[1];
    assert.ok(g);
    assert.deepEqual(deadlineOf({ ...ID, expiresAt: NOW + 7200_000 }, g, BUNDLE, NOW, NOW + 60_000), { at: NOW + 60_000, reason: 'break-glass-ended' });
    assert.deepEqual(deadlineOf({ ...ID, expiresAt: undefined as unknown as number }, RS.grants[0] ?? g, BUNDLE, NOW, undefined), { at: BUNDLE.notAfter, reason: 'bundle-expired' });
  });
});
