// Every Deny holds at the proxy and in RBAC, for the four ways the issue found it did not
// (a deny on a group no grant names; a deny on other subjects than the grant's; the same
// through a conditional grant; `except` by group against a grant to a named user). The policy
// is compiled in-process, its RBAC applied to a real kube-apiserver, and for each caller the
// proxy's decision (core/decide) is compared with SubjectAccessReviews: for exactly what the
// proxy would send upstream, and for the caller going around the proxy with all its groups.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import type { Catalog } from '../../compiler/catalog.ts';
import { Cluster, Deny, Fleet, Grant, IdentityProvider, Role, Team } from '../../compiler/index.ts';
import { resolveFleet } from '../../compiler/resolve.ts';
import { synthCluster } from '../../compiler/synth.ts';
import { decide } from '../../core/decide.ts';
import { indexRuleSet } from '../../core/rule-index.ts';
import type { RequestAttributes } from '../../core/attributes.ts';
import type { RuleSet } from '../../core/rule-set.ts';
import { getTestFleet, type TestCluster, type TestFleet } from '../support/fleet.ts';

const NS = 'deny-rbac';
const NOW = Date.now();
const catalog = JSON.parse(readFileSync('generated/catalog/dev.json', 'utf8')) as Catalog;
const pods = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }];
const secrets = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['secrets'] }];

function policy(): RuleSet {
  const f = new Fleet('deny-rbac');
  const idp = new IdentityProvider(f, 'corp', { issuer: 'https://idp.example', usernamePrefix: 'oidc:' });
  new Cluster(f, 'dev', { server: 'https://dev:6443', labels: { env: 'dev' } });
  new Team(f, 'owners', { group: idp.group('owners'), namespaces: [NS] });
  const podReader = new Role(f, 'pod-reader', { rules: pods });
  const secretReader = new Role(f, 'secret-reader', { rules: secrets });
  // 1: a deny on a group no grant names
  new Grant(f, 'ops-pods', { to: [idp.group('ops')], role: podReader, clusters: 'all', namespaces: [NS] });
  new Deny(f, 'no-contractor-pods', { subjects: [idp.group('contractors')], rules: pods, clusters: 'all', namespaces: [NS] });
  // 2: a deny on other subjects than the grant's (a member of both)
  new Grant(f, 'dev-pods', { to: [idp.group('dev')], role: podReader, clusters: 'all', namespaces: [NS] });
  new Deny(f, 'no-dev-pods', { subjects: [idp.group('dev')], rules: pods, clusters: 'all', namespaces: [NS] });
  // 3: the same through a conditional grant
  new Grant(f, 'oncall-pods', { to: [idp.group('oncall')], role: podReader, clusters: 'all', namespaces: [NS], expires: new Date(NOW + 86_400_000).toISOString() });
  // 4: `except` by group, against a grant to a named user
  new Grant(f, 'frank-secrets', { to: [idp.user('frank')], role: secretReader, clusters: 'all', namespaces: [NS] });
  new Deny(f, 'no-secrets', { subjects: 'everyone', except: [idp.group('sre')], rules: secrets, clusters: 'all', namespaces: [NS] });
  const r = resolveFleet(f, new Map([['dev', catalog]]), NOW);
  assert.deepEqual(r.problems.filter((p) => p.severity === 'error'), []);
  const rc = r.clusters[0];
  assert.ok(rc);
  rbacYaml = synthCluster(rc);
  return rc.ruleSet;
}
let rbacYaml = '';

describe('denies hold in RBAC, not only at the proxy', () => {
  let fleet: TestFleet;
  let cluster: TestCluster;
  let rs: RuleSet;
  const admin = (args: readonly string[], input = '') => spawnSync(fleet.bin.kubectl, ['--kubeconfig', cluster.adminKubeconfig, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  before(async () => {
    fleet = await getTestFleet();
    cluster = fleet.cluster('dev');
    rs = policy();
    // The grants' RBAC as the compiler writes it (not its proxy ServiceAccount and role: other tests own those).
    const ours = parseAllDocuments(rbacYaml)
      .map((d) => d.toJSON() as { kind: string; metadata: { name: string; namespace?: string } })
      .filter((o) => ['ClusterRole', 'ClusterRoleBinding', 'RoleBinding'].includes(o.kind) && /^portcullis:(grant|role):/.test(o.metadata.name));
    const r = admin(['apply', '-f', '-'], [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, ...ours].map((o) => stringify(o)).join('---\n'));
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => {
    admin(['delete', 'namespace', NS, '--wait=false']);
  });

  /** RBAC's answer (a SubjectAccessReview through kubectl auth can-i) for `user` with `groups`. */
  const rbac = (verb: string, resource: string, user: string, groups: readonly string[]): boolean => {
    const r = admin(['auth', 'can-i', verb, resource, '-n', NS, '--as', user, ...groups.flatMap((g) => ['--as-group', g])]);
    return r.stdout.trim() === 'yes';
  };

  const cases: [string, string, string[], string, boolean][] = [
    ['1: in contractors and ops', 'oidc:u1', ['oidc:contractors', 'oidc:ops'], 'pods', false],
    ['1: in ops only', 'oidc:u2', ['oidc:ops'], 'pods', true],
    ['2: in dev and ops', 'oidc:u3', ['oidc:dev', 'oidc:ops'], 'pods', false],
    ['3: in dev and oncall (conditional grant)', 'oidc:u4', ['oidc:dev', 'oidc:oncall'], 'pods', false],
    ['3: in oncall only', 'oidc:u5', ['oidc:oncall'], 'pods', true],
    ['4: frank in sre (excepted)', 'oidc:frank', ['oidc:sre'], 'secrets', true],
    ['4: frank without sre', 'oidc:frank', [], 'secrets', false],
  ];
  for (const [name, user, groups, resource, allowed] of cases) {
    it(`GIVEN ${name} WHEN getting ${resource} THEN the proxy ${allowed ? 'allows' : 'refuses'}, RBAC agrees for what it would send, and going around it gets no more`, () => {
      const attrs: RequestAttributes = { user, groups: [...groups, 'system:authenticated'], verb: 'get', isResourceRequest: true, path: '', apiGroup: '', apiVersion: 'v1', resource, subresource: '', namespace: NS, name: '' };
      const v = decide(attrs, indexRuleSet(rs), { now: NOW });
      assert.equal(v.decision.allowed, allowed, JSON.stringify(v.decision));
      if (v.impersonate) assert.equal(rbac('get', resource, v.impersonate.user, v.impersonate.groups), true, `upstream refuses what the proxy allows: ${JSON.stringify(v.impersonate)}`);
      // Around the proxy a caller asserts no portcullis: group; with all its own groups it gets at most what the proxy allows.
      if (!allowed) assert.equal(rbac('get', resource, user, groups), false, 'a deny bypassed by going around the proxy');
    });
  }

  it('GIVEN the guards THEN each grant a deny of other subjects overlaps has one, and one that denies alike has none', () => {
    const guard = (id: string) => rs.grants.find((g) => g.id === id)?.guard;
    assert.deepEqual(guard('ops-pods')?.denies, ['no-contractor-pods', 'no-dev-pods']);
    assert.equal(guard('dev-pods'), undefined, 'no-dev-pods binds dev-pods\' subjects alike: it narrows the grant itself');
    assert.deepEqual(guard('frank-secrets')?.denies, ['no-secrets']);
    assert.equal(rs.grants.find((g) => g.id === 'dev-pods')?.rules.length, 0, 'dev-pods grants nothing once its own deny is subtracted');
  });
});
