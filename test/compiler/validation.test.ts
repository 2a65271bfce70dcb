import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Catalog } from '../../compiler/catalog.ts';
import { Cluster, Fleet, Grant, IdentityProvider, Role, Roles, SessionLimits, Team, type GrantProps } from '../../compiler/index.ts';
import type { ProblemCode } from '../../compiler/problem.ts';
import { resolveFleet } from '../../compiler/resolve.ts';

const catalog = JSON.parse(readFileSync('generated/catalog/dev.json', 'utf8')) as Catalog;
const NOW = Date.parse('2026-11-22T12:00:00Z');

/** A small valid fleet; `edit` adds one thing to it. */
function build(edit: (f: Fleet, idp: IdentityProvider) => void) {
  const f = new Fleet('t');
  const idp = new IdentityProvider(f, 'corp', { issuer: 'https://idp.example', usernamePrefix: 'oidc:' });
  new Cluster(f, 'dev', { server: 'https://dev:6443', labels: { env: 'dev' } });
  new Cluster(f, 'prod-eu', { server: 'https://prod:6443', labels: { env: 'prod' } });
  new Team(f, 'shop', { group: idp.group('shop'), namespaces: ['shop'] });
  edit(f, idp);
  return resolveFleet(f, new Map([['dev', catalog], ['prod-eu', catalog]]), NOW);
}
const grant = (over: Partial<GrantProps>) => (f: Fleet, idp: IdentityProvider) =>
  new Grant(f, 'g', { to: [idp.group('devs')], role: Roles.view, clusters: 'all', namespaces: ['shop'], ...over });
const custom = (rules: Role['rules'], over: Partial<GrantProps> = {}) => (f: Fleet, idp: IdentityProvider) =>
  new Grant(f, 'g', { to: [idp.group('devs')], role: new Role(f, 'r', { rules }), clusters: 'all', namespaces: ['shop'], ...over });

describe('validation reports every problem with a stable code, file:line and hints', () => {
  it('GIVEN a valid policy THEN there are no problems', () => {
    assert.deepEqual(build(grant({})).problems, []);
  });

  const invalid: [string, (f: Fleet, idp: IdentityProvider) => unknown, ProblemCode, string?][] = [
    ['an unknown cluster', grant({ clusters: { names: ['prod-e'] } }), 'UNKNOWN_CLUSTER', "did you mean 'prod-eu'?"],
    ['a cluster selector that matches nothing', grant({ clusters: { labels: { env: 'qa' } } }), 'SELECTOR_MATCHES_NOTHING'],
    ['a namespace selector that matches nothing', grant({ namespaces: { labels: { team: 'nobody' } } }), 'SELECTOR_MATCHES_NOTHING'],
    ['a duplicate id (a team grant and a fleet grant named alike)', (f, idp) => {
      (f.node.findChild('shop') as Team).grant('edit', { role: Roles.edit });
      new Grant(f, 'shop.edit', { to: [idp.group('x')], role: Roles.view, clusters: 'all', namespaces: ['shop'] });
    }, 'DUPLICATE_ID'],
    ['an unknown verb', custom([{ verbs: ['gett'], apiGroups: [''], resources: ['pods'] }]), 'UNKNOWN_VERB', "did you mean 'get'?"],
    ['an unknown resource', custom([{ verbs: ['get'], apiGroups: [''], resources: ['pod'] }]), 'UNKNOWN_RESOURCE', "did you mean 'pods'?"],
    ['an unknown API group', custom([{ verbs: ['get'], apiGroups: ['app'], resources: ['deployments'] }]), 'UNKNOWN_API_GROUP', "did you mean 'apps'?"],
    ['an invalid namespace name', grant({ namespaces: ['Shop_Prod'] }), 'INVALID_NAME'],
    ['an invalid team namespace name', (f, idp) => new Team(f, 'bad', { group: idp.group('b'), namespaces: ['UPPER'] }), 'INVALID_NAME'],
    ['an invalid cluster name', (f) => new Cluster(f, 'Prod_EU', { server: 'https://x' }), 'INVALID_NAME'],
    ['a proxyUrl with another cluster\'s path', (f) => new Cluster(f, 'lab', { server: 'https://x', proxyUrl: 'https://p.example/clusters/dev' }), 'INVALID_PROXY_URL'],
    ['a plain-http proxyUrl', (f) => new Cluster(f, 'lab', { server: 'https://x', proxyUrl: 'http://lab.p.example' }), 'INVALID_PROXY_URL'],
    ['a proxyUrl with a query', (f) => new Cluster(f, 'lab', { server: 'https://x', proxyUrl: 'https://lab.p.example/?x=1' }), 'INVALID_PROXY_URL'],
    ['bind without acknowledgement', custom([{ verbs: ['bind'], apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'] }]), 'ESCALATION_NOT_ACKNOWLEDGED'],
    ['escalate without acknowledgement', custom([{ verbs: ['escalate'], apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'] }]), 'ESCALATION_NOT_ACKNOWLEDGED'],
    ['impersonate without acknowledgement', custom([{ verbs: ['impersonate'], apiGroups: [''], resources: ['users'] }], { namespaces: 'cluster' }), 'ESCALATION_NOT_ACKNOWLEDGED'],
    ['nodes/proxy without acknowledgement', custom([{ verbs: ['get'], apiGroups: [''], resources: ['nodes/proxy'] }], { namespaces: 'cluster' }), 'ESCALATION_NOT_ACKNOWLEDGED'],
    ['* on * without acknowledgement', custom([{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], { namespaces: 'cluster' }), 'ESCALATION_NOT_ACKNOWLEDGED'],
    ['pods/* (RBAC does not understand it)', custom([{ verbs: ['get'], apiGroups: [''], resources: ['pods/*'] }]), 'INVALID_SUBRESOURCE_WILDCARD'],
    ['resourceNames with create', custom([{ verbs: ['create'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['a'] }]), 'RESOURCE_NAMES_WITH_CREATE'],
    ['resourceNames with deletecollection', custom([{ verbs: ['deletecollection'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['a'] }]), 'RESOURCE_NAMES_WITH_CREATE'],
    ['break-glass without a maximum duration', grant({ breakGlass: { maxDuration: '' } }), 'BREAK_GLASS_NO_MAX_DURATION'],
    ['break-glass with a malformed duration', grant({ breakGlass: { maxDuration: 'an hour' } }), 'BREAK_GLASS_NO_MAX_DURATION'],
    ['approval without a maximum duration', (f, idp) => grant({ approval: { approvers: [idp.group('sec')], maxDuration: 'a while' } })(f, idp), 'BREAK_GLASS_NO_MAX_DURATION'],
    ['approval with no approvers', grant({ approval: { approvers: [], maxDuration: '1h' } }), 'EMPTY_RULE'],
    ['a grant both break-glass and requestable', (f, idp) => grant({ breakGlass: { maxDuration: '1h' }, approval: { approvers: [idp.group('sec')], maxDuration: '1h' } })(f, idp), 'EMPTY_RULE'],
    ['a window that never opens (start after end)', grant({ windows: [{ days: ['mon'], start: '18:00', end: '08:00', timeZone: 'Europe/Berlin' }] }), 'WINDOW_NEVER_OPENS'],
    ['a window without days', grant({ windows: [{ days: [], start: '08:00', end: '18:00', timeZone: 'Europe/Berlin' }] }), 'WINDOW_NEVER_OPENS'],
    ['a window in an unknown time zone', grant({ windows: [{ days: ['mon'], start: '08:00', end: '18:00', timeZone: 'Mars/Olympus' }] }), 'WINDOW_NEVER_OPENS'],
    ['an unparsable expiry', grant({ expires: 'next tuesday' }), 'INVALID_TIME'],
    ['notBefore after expires', grant({ notBefore: '2027-02-01T00:00:00Z', expires: '2027-01-01T00:00:00Z' }), 'INVALID_TIME'],
    ['a system: subject', (f) => new Grant(f, 'g', { to: [{ kind: 'Group', name: 'system:masters', source: { file: 'x', line: 1 } }], role: Roles.view, clusters: 'all', namespaces: ['shop'] }), 'SYSTEM_NAME'],
    ['an identity provider without prefix', (f) => new IdentityProvider(f, 'bad', { issuer: 'https://x', usernamePrefix: '' }), 'SYSTEM_NAME'],
    ['a rule without verbs', custom([{ verbs: [], apiGroups: [''], resources: ['pods'] }]), 'EMPTY_RULE'],
    ['a grant naming a namespace that nothing declares (its RoleBinding would fail the whole apply)', grant({ namespaces: ['nowhere'] }), 'UNDECLARED_NAMESPACE', "declare it: new Namespace(fleet, 'nowhere', { clusters: { names: ['dev'] } })"],
    ['nonResourceURLs in namespaces', custom([{ verbs: ['get'], nonResourceURLs: ['/healthz'] }]), 'NON_RESOURCE_IN_NAMESPACE'],
    ['a subject with the proxy\'s reserved prefix', (f) => new Grant(f, 'g', { to: [{ kind: 'User', name: 'portcullis:member', source: { file: 'x', line: 1 } }], role: Roles.view, clusters: 'all', namespaces: ['shop'] }), 'SYSTEM_NAME'],
    ['an identity provider with the proxy\'s reserved prefix', (f) => new IdentityProvider(f, 'bad', { issuer: 'https://x', usernamePrefix: 'portcullis:' }), 'SYSTEM_NAME'],
  ];
  for (const [name, edit, code, hint] of invalid) {
    it(`GIVEN ${name} THEN ${code}`, () => {
      const errors = build(edit).problems.filter((p) => p.severity === 'error');
      const p = errors.find((x) => x.code === code);
      assert.ok(p, `expected ${code}, got ${JSON.stringify(errors.map((e) => e.code))}`);
      assert.equal(p.source.file, 'test/compiler/validation.test.ts');
      assert.ok(p.source.line > 0);
      if (hint) assert.equal(p.hint, hint);
    });
  }

  it('GIVEN a grant naming a namespace every cluster has (kube-system, default) THEN it needs no declaration', () => {
    assert.deepEqual(build(grant({ namespaces: ['kube-system', 'default'] })).problems, []);
  });

  it('GIVEN several problems THEN all are reported at once', () => {
    const r = build((f, idp) => {
      grant({ clusters: { names: ['nope'] } })(f, idp);
      new Grant(f, 'h', { to: [idp.group('d')], role: Roles.view, clusters: 'all', namespaces: ['BAD'] });
      new Grant(f, 'i', { to: [idp.group('d')], role: new Role(f, 'r', { rules: [{ verbs: ['gett'], apiGroups: [''], resources: ['pods'] }] }), clusters: 'all', namespaces: ['shop'] });
    });
    assert.deepEqual([...new Set(r.problems.map((p) => p.code))].sort(), ['INVALID_NAME', 'UNKNOWN_CLUSTER', 'UNKNOWN_VERB']);
  });

  it('GIVEN a requestable grant THEN it compiles to an approval condition with its approvers and maximum, bound to its activation group (RBAC holds nothing until approved); Roles.locker to the locks path', () => {
    const r = build((f, idp) => {
      new Grant(f, 'ask', { to: [idp.group('devs')], role: Roles.edit, clusters: 'all', namespaces: ['shop'], approval: { approvers: [idp.group('sec'), idp.user('ann')], maxDuration: '4h' } });
      new Grant(f, 'lockers', { to: [idp.group('sec')], role: Roles.locker, clusters: 'all', namespaces: 'cluster' });
    });
    assert.deepEqual(r.problems, []);
    const g = r.clusters[0]?.ruleSet.grants.find((x) => x.id === 'ask');
    assert.deepEqual(g?.conditions, { approval: { approvers: [{ kind: 'Group', name: 'oidc:sec' }, { kind: 'User', name: 'oidc:ann' }], maxDurationSeconds: 14_400 } });
    assert.equal(g?.activationGroup, 'portcullis:grant:ask');
    const l = r.clusters[0]?.ruleSet.grants.find((x) => x.id === 'lockers');
    assert.deepEqual(l?.rules.map((x) => ({ ...x, verbs: [...x.verbs].sort() })), [{ nonResourceURLs: ['/portcullis/locks'], verbs: ['delete', 'get', 'post'] }]);
  });

  it('GIVEN Roles.auditor granted cluster-wide THEN it compiles to get on the audit path, the right the console checks in the signed bundle', () => {
    const r = build((f, idp) => {
      new Grant(f, 'auditors', { to: [idp.group('audit')], role: Roles.auditor, clusters: 'all', namespaces: 'cluster' });
    });
    assert.deepEqual(r.problems, []);
    for (const c of r.clusters) {
      const a = c.ruleSet.grants.find((x) => x.id === 'auditors');
      assert.deepEqual(a?.rules, [{ nonResourceURLs: ['/portcullis/audit'], verbs: ['get'] }], c.name);
      assert.deepEqual(a?.subjects, [{ kind: 'Group', name: 'oidc:audit' }]);
    }
  });

  it('GIVEN session limits selected by label THEN the selected clusters carry them, the shortest of each wins, others carry none; a limit without a duration is an error', () => {
    const r = build((f) => {
      new SessionLimits(f, 'prod-sessions', { clusters: { labels: { env: 'prod' } }, idleTimeout: '15m', maxLifetime: '4h' });
      new SessionLimits(f, 'everywhere', { clusters: 'all', maxLifetime: '2h' });
    });
    assert.deepEqual(r.problems, []);
    const by = new Map(r.clusters.map((c) => [c.name, c.ruleSet.sessionLimits]));
    assert.deepEqual(by.get('prod-eu'), { idleTimeoutSeconds: 900, maxLifetimeSeconds: 7200 });
    assert.deepEqual(by.get('dev'), { maxLifetimeSeconds: 7200 });
    const bad = build((f) => new SessionLimits(f, 'vague', { clusters: 'all', idleTimeout: 'a bit' }));
    assert.equal(bad.problems[0]?.code, 'BREAK_GLASS_NO_MAX_DURATION');
    assert.equal(bad.problems[0]?.source.file, 'test/compiler/validation.test.ts');
  });

  it('GIVEN an expired grant THEN it is left out with a warning; a future one too, saying when it starts', () => {
    const r = build((f, idp) => {
      grant({ expires: '2026-01-01T00:00:00Z' })(f, idp);
      new Grant(f, 'later', { to: [idp.group('d')], role: Roles.view, clusters: 'all', namespaces: ['shop'], notBefore: '2027-01-01T00:00:00Z' });
    });
    assert.deepEqual(r.problems.map((p) => [p.severity, p.code]), [['warning', 'GRANT_EXPIRED'], ['warning', 'GRANT_NOT_YET_ACTIVE']]);
    assert.match(r.problems[1]?.message ?? '', /starts at 2027-01-01T00:00:00.000Z/);
    assert.deepEqual(r.clusters.flatMap((c) => c.ruleSet.grants.map((g) => g.id)), []);
  });
});
