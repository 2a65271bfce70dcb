import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { decide, indexRuleSet, type RuleSet, type Subject } from '../../core/index.ts';
import { checkClaims, type ClusterUnderTest } from '../../compiler/assertions.ts';
import type { Claim } from '../../compiler/lang/assertion.ts';
import { grantArb, ruleArb, ruleSetArb, scopeArb, subjectArb } from '../core/arbitraries.ts';

const NOW = Date.parse('2026-12-04T12:00:00Z');
const at = { file: 'policies/x.assert.ts', line: 7 };
const cluster = (ruleSet: RuleSet, labels: Record<string, string> = { env: 'prod' }): ClusterUnderTest => ({ name: 'c', labels, ruleSet });

// The vocabulary of test/core/arbitraries.ts, and one of each kind it does not name.
const USERS = ['u1', 'u2', 'u-unnamed'];
const GROUP_SETS = [[], ['g1'], ['g2'], ['g1', 'g2']];
const NAMESPACES = ['', 'ns1', 'ns2', 'ns-unnamed'];
const NAMES = ['', 'a', 'b', 'name-unnamed'];
const RESOURCES = ['pods', 'secrets', 'pods/exec', 'deployments.apps', 'deployments.apps/scale'];

/** Brute force: is anyone outside `except` allowed `verb resource` anywhere, at any time, with any break-glass? */
function anyoneAllowed(rs: RuleSet, except: readonly Subject[], verb: string, resource: string): boolean {
  const anyTime = indexRuleSet({ ...rs, grants: rs.grants.map((g) => ({ ...g, conditions: {} })) });
  const [head = '', subresource = ''] = resource.split('/');
  const [res = '', ...group] = head.split('.');
  for (const user of USERS) {
    for (const groups of GROUP_SETS) {
      if (except.some((e) => (e.kind === 'User' ? e.name === user : groups.includes(e.name)))) continue;
      for (const namespace of NAMESPACES) {
        for (const name of NAMES) {
          const attrs = { user, groups, verb, isResourceRequest: true, path: '', apiGroup: group.join('.'), apiVersion: '', resource: res, subresource, namespace, name };
          if (decide(attrs, anyTime, { now: NOW }).decision.allowed) return true;
        }
      }
    }
  }
  return false;
}

// Rule sets heavy in denies with exceptions, where who may still do what is least obvious.
const denyHeavyArb: fc.Arbitrary<RuleSet> = fc
  .record({
    grants: fc.tuple(grantArb('g0'), grantArb('g1'), grantArb('g2')),
    denies: fc.array(
      fc.record({ subjects: fc.oneof(fc.constant('everyone' as const), fc.array(subjectArb, { minLength: 1, maxLength: 2 })), except: fc.array(subjectArb, { maxLength: 2 }), rules: fc.array(ruleArb, { minLength: 1, maxLength: 2 }), scope: scopeArb }),
      { minLength: 1, maxLength: 3 },
    ),
  })
  .map(({ grants, denies }) => ({
    apiVersion: 'portcullis.dev/v1' as const,
    kind: 'RuleSet' as const,
    cluster: 'c',
    grants,
    denies: denies.map((d, i) => ({ id: `d${i}`, source: { file: 'p.ts', line: 2 }, ...d })),
    impersonable: { users: ['u1', 'u2'], groups: ['g1', 'g2'] },
  }));

describe('portcullis test: claims checked against a rule set', () => {
  it('PROPERTY: nobodyExcept fails exactly when some identity outside the exceptions is allowed, at some time, somewhere (brute force over every user, group set, namespace and name)', () => {
    let holds = 0;
    let fails = 0;
    fc.assert(
      fc.property(fc.oneof(ruleSetArb, denyHeavyArb), fc.array(subjectArb, { maxLength: 2 }), fc.constantFrom('get', 'list', 'delete', 'create'), fc.constantFrom(...RESOURCES), (rs, except, verb, resource) => {
        const claim: Claim = { source: at, kind: 'nobody-except', except, verbs: [verb], resource, name: '', namespaces: ['*'], clusters: 'all' };
        const [r] = checkClaims([claim], [cluster(rs)], NOW);
        const expected = anyoneAllowed(rs, except, verb, resource);
        if (expected) fails++;
        else holds++;
        assert.equal((r?.failures.length ?? 0) > 0, expected, `${JSON.stringify(rs)}\n${JSON.stringify(except)} ${verb} ${resource}\n${r?.failures.join('\n')}`);
      }),
      { numRuns: 3000, seed: 20261204 },
    );
    // Both verdicts were reached often enough for the agreement to mean something.
    assert.ok(holds > 300 && fails > 300, `holds ${holds}, fails ${fails}`);
  });

  const rs = (over: Partial<RuleSet>): RuleSet => ({ apiVersion: 'portcullis.dev/v1', kind: 'RuleSet', cluster: 'c', grants: [], denies: [], impersonable: { users: [], groups: ['g1', 'g2'] }, ...over });
  const grant = (id: string, subjects: Subject[], resources: string[], extra: object = {}) => ({
    id,
    source: { file: 'policies/access.ts', line: 3 },
    subjects,
    rules: [{ verbs: ['get'], apiGroups: [''], resources }],
    scope: { kind: 'cluster' as const },
    conditions: {},
    ...extra,
  });
  const may = (identity: { user: string; groups: string[] }, resource: string, over: Partial<Claim> = {}): Claim => ({ source: at, kind: 'may', identity, verbs: ['get'], resource, name: '', namespaces: ['payments'], clusters: 'all', ...over });

  it('GIVEN a grant that needs break-glass WHEN a positive claim relies on it THEN it fails and says why; a negative claim on it fails too (break-glass may be invoked)', () => {
    const set = rs({ grants: [grant('bg', [{ kind: 'Group', name: 'g1' }], ['secrets'], { conditions: { breakGlass: { maxDurationSeconds: 60, notify: [] } }, activationGroup: 'portcullis:grant:bg' })] });
    const [pos, neg] = checkClaims([may({ user: '', groups: ['g1'] }, 'secrets'), may({ user: '', groups: ['g1'] }, 'secrets', { kind: 'may-not' })], [cluster(set)], NOW);
    assert.deepEqual(pos?.failures, ['on c: get secrets in payments is denied: grant bg (policies/access.ts:3) would, but break-glass not invoked']);
    assert.deepEqual(neg?.failures, ['on c: someone (groups g1) may get secrets in payments: grant bg (policies/access.ts:3) (while its conditions hold)']);
  });

  it('GIVEN a deny whose exception a user outside the claim has WHEN nobodyExcept is checked THEN that user is the counterexample', () => {
    const set = rs({
      grants: [grant('read', [{ kind: 'Group', name: 'g1' }], ['secrets'])],
      denies: [{ id: 'no-secrets', source: { file: 'policies/access.ts', line: 9 }, subjects: 'everyone', except: [{ kind: 'User', name: 'frank' }], rules: [{ verbs: ['get'], apiGroups: [''], resources: ['secrets'] }], scope: { kind: 'cluster' } }],
    });
    const [r] = checkClaims([{ source: at, kind: 'nobody-except', except: [], verbs: ['get'], resource: 'secrets', name: '', namespaces: ['*'], clusters: 'all' }], [cluster(set)], NOW);
    assert.deepEqual(r?.failures, ['on c: frank (groups g1) may get secrets across all namespaces: grant read (policies/access.ts:3)']);
    const [ok] = checkClaims([{ source: at, kind: 'nobody-except', except: [{ kind: 'User', name: 'frank' }], verbs: ['get'], resource: 'secrets', name: '', namespaces: ['*'], clusters: 'all' }], [cluster(set)], NOW);
    assert.deepEqual(ok?.failures, []);
  });

  it('GIVEN a group that lifts one deny and is the subject of another THEN an identity carrying it is tried as well as one without it', () => {
    const deny = (id: string, subjects: Subject[] | 'everyone', except: Subject[], resource: string) => ({ id, source: { file: 'policies/access.ts', line: 9 }, subjects, except, rules: [{ verbs: ['get'], apiGroups: [''], resources: [resource] }], scope: { kind: 'cluster' as const } });
    const set = rs({
      grants: [grant('read', [{ kind: 'Group', name: 'g2' }], ['secrets'])],
      denies: [deny('a', 'everyone', [{ kind: 'Group', name: 'g1' }], 'secrets'), deny('b', [{ kind: 'Group', name: 'g1' }], [], 'configmaps')],
    });
    const [r] = checkClaims([{ source: at, kind: 'nobody-except', except: [], verbs: ['get'], resource: 'secrets', name: '', namespaces: ['*'], clusters: 'all' }], [cluster(set)], NOW);
    assert.deepEqual(r?.failures, ['on c: someone (groups g1, g2) may get secrets across all namespaces: grant read (policies/access.ts:3)']);
  });

  it('GIVEN a selector that selects no cluster THEN the claim fails (a claim about nothing proves nothing)', () => {
    const [r] = checkClaims([may({ user: 'u', groups: [] }, 'pods', { clusters: { labels: { env: 'prod' } } })], [cluster(rs({}), { env: 'dev' })], NOW);
    assert.deepEqual(r?.failures, ['the cluster selector {"labels":{"env":"prod"}} selects no cluster']);
  });
});

describe('portcullis test (the CLI, offline)', () => {
  const BIN = resolve('bin/portcullis.js');
  const test = (args: string[]) => spawnSync(process.execPath, [BIN, 'test', ...args], { encoding: 'utf8', timeout: 120_000 });
  // Assertions beside a copy of nothing: they import the example policy, as a policy repository's own would.
  const dir = mkdtempSync(join(resolve('test'), '.assertions-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const rel = (p: string) => relative(process.cwd(), p).split('\\').join('/');
  const write = (name: string, body: string) => {
    mkdirSync(join(dir, 'policies'), { recursive: true });
    const p = join(dir, 'policies', name);
    writeFileSync(p, `import { expectAccess } from '../../../compiler/index.ts';\nimport { id } from '../../../policies/index.ts';\n${body}`);
    return rel(p);
  };

  it("GIVEN the example policy's own assertions THEN every claim holds, each reported at its file:line", () => {
    const r = test([]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^policies\/access\.assert\.ts:10: ok {3}someone \(groups oidc:team-payments\) may create pods\/exec in payments on dev$/m);
    assert.match(r.stdout, /^policies\/access\.assert\.ts:16: ok {3}nobody except oidc:sre, oidc:frank@acme\.example, oidc:grace@acme\.example may get,list,watch secrets in every namespace on env=prod$/m);
    assert.match(r.stdout, /^10 claims on 3 clusters: 10 hold, 0 fail$/m);
  });

  it('GIVEN claims the example does not satisfy THEN exit 1, each FAIL at its own line, naming the grant that allows what is claimed impossible and the deny or condition behind what is claimed possible', () => {
    const file = write(
      'wrong.assert.ts',
      [
        "expectAccess.nobodyExcept([id.sre]).may('get', 'secrets').in('*').on({ labels: { env: 'prod' } });",
        "expectAccess.that(id.developers).may('get', 'secrets').in('payments').on({ names: ['prod-eu'] });",
        "expectAccess.that(id.shopDeployer).may('patch', 'deployments.apps').in('payments').on({ names: ['dev'] });",
        "expectAccess.that(id.developers).may('get', 'pods').in('payments').on({ labels: { env: 'nope' } });",
        "expectAccess.that(id.developers).may('get', 'pods').in('payments');",
        "expectAccess.that(id.developers).may('get', 'pods').in('payments').on({ names: ['prod-eu'] });",
      ].join('\n'),
    );
    const r = test(['--policies', rel(join(dir, 'policies')), '--now', '2026-12-05T23:00:00Z']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const lines = r.stdout.split('\n');
    const block = (line: number) => lines.slice(lines.findIndex((l) => l.startsWith(`${file}:${line}: `))).join('\n');
    assert.match(block(3), new RegExp(`^${file}:3: FAIL nobody except oidc:sre may get secrets in every namespace on env=prod\\n {4}on prod-eu: oidc:frank@acme\\.example may get secrets across all namespaces: grant sre-break-glass-prod \\(policies/access\\.ts:\\d+\\) \\(while its conditions hold\\)`));
    assert.match(block(3), /oidc:frank@acme\.example \(groups oidc:platform\) may get secrets across all namespaces: grant platform-edit/);
    assert.match(block(4), new RegExp(`^${file}:4: FAIL .*\\n {4}on prod-eu: get secrets in payments is denied: deny no-secrets-in-prod \\(policies/access\\.ts:\\d+\\)`));
    assert.match(block(5), /^[^\n]*:5: FAIL [^\n]*\n {4}on dev: patch deployments\.apps in payments is denied: grant shop-ci-deploy \(policies\/access\.ts:\d+\) would, but outside its time windows/);
    assert.match(block(6), /^[^\n]*:6: FAIL [^\n]*\n {4}the cluster selector \{"labels":\{"env":"nope"\}\} selects no cluster/);
    assert.match(r.stdout, new RegExp(`^${file}:7: error UNFINISHED_CLAIM: this claim never says where: end it with \\.on\\(clusters\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^${file}:8: ok `, 'm'));
    assert.match(r.stdout, /^5 claims on 3 clusters: 1 hold, 4 fail; 1 problems$/m);
    rmSync(join(dir, 'policies', 'wrong.assert.ts'));
  });

  it('GIVEN an assertion file that throws THEN exit 1 with POLICY_LOAD at the line that threw; no assertion files THEN it says so and exits 0', () => {
    const file = write('throws.assert.ts', "\nexpectAccess.that(id.sre).may('get', '/healthz').in('x').on('all');\n");
    const r = test(['--policies', rel(join(dir, 'policies'))]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^${file}:4: error POLICY_LOAD: /healthz is a non-resource path: it has no namespace$`, 'm'));
    rmSync(join(dir, 'policies'), { recursive: true });
    mkdirSync(join(dir, 'policies'));
    const none = test(['--policies', rel(join(dir, 'policies'))]);
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /^no assertions: no test\/\.assertions-\w+\/policies\/\*\*\/\*\.assert\.ts files$/m);
  });

  it('GIVEN a bundle that does not verify THEN exit 1 naming the cluster: claims are checked only against what a proxy would load', () => {
    const r = test(['--now', '2099-01-01T00:00:00Z']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /generated\/dev: BUNDLE_EXPIRED: bundle expired at .*; run 'portcullis compile'/);
  });
});
