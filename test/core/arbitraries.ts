import fc from 'fast-check';
import type { Deny, Grant, PolicyRule, RequestAttributes, RuleSet, Scope, Subject } from '../../core/index.ts';

// Small vocabularies so that random grants and requests actually meet.
const verbs = ['get', 'list', 'watch', 'create', 'delete', 'patch', 'update', '*'];
const groups = ['', 'apps', 'batch', '*'];
const resources = ['pods', 'pods/log', 'pods/exec', 'secrets', 'deployments', 'deployments/scale', '*', '*/scale'];
const names = ['a', 'b'];
const namespaces = ['ns1', 'ns2'];
const users = ['u1', 'u2'];
const groupNames = ['g1', 'g2'];

export const subjectArb: fc.Arbitrary<Subject> = fc.oneof(
  fc.constantFrom(...users).map((name) => ({ kind: 'User' as const, name })),
  fc.constantFrom(...groupNames).map((name) => ({ kind: 'Group' as const, name })),
);
export const ruleArb: fc.Arbitrary<PolicyRule> = fc.oneof(
  fc.record({
    verbs: fc.subarray(verbs, { minLength: 1, maxLength: 3 }),
    apiGroups: fc.subarray(groups, { minLength: 1, maxLength: 2 }),
    resources: fc.subarray(resources, { minLength: 1, maxLength: 3 }),
    resourceNames: fc.subarray(names, { maxLength: 1 }),
  }),
  fc.record({ verbs: fc.subarray(['get', 'post', '*'], { minLength: 1 }), nonResourceURLs: fc.subarray(['/healthz', '/logs/*', '*'], { minLength: 1 }) }),
);
export const scopeArb: fc.Arbitrary<Scope> = fc.oneof(
  fc.constant({ kind: 'cluster' as const }),
  fc.subarray(namespaces, { minLength: 1 }).map((ns) => ({ kind: 'namespaces' as const, namespaces: ns })),
);
export const grantArb = (id: string): fc.Arbitrary<Grant> =>
  fc.record({
    subjects: fc.array(subjectArb, { minLength: 1, maxLength: 2 }),
    rules: fc.array(ruleArb, { minLength: 1, maxLength: 2 }),
    scope: scopeArb,
    conditional: fc.constantFrom('none', 'expired', 'break-glass'),
  }).map(({ subjects, rules, scope, conditional }) => ({
    id,
    source: { file: 'p.ts', line: 1 },
    subjects,
    rules,
    scope,
    conditions: conditional === 'expired' ? { expires: '2020-01-01T00:00:00Z' } : conditional === 'break-glass' ? { breakGlass: { maxDurationSeconds: 60, notify: [] } } : {},
    ...(conditional === 'none' ? {} : { activationGroup: `portcullis:grant:${id}` }),
  }));
export const denyArb = (id: string): fc.Arbitrary<Deny> =>
  fc.record({
    subjects: fc.oneof(fc.constant('everyone' as const), fc.array(subjectArb, { minLength: 1, maxLength: 2 })),
    except: fc.array(subjectArb, { maxLength: 1 }),
    rules: fc.array(ruleArb, { minLength: 1, maxLength: 2 }),
    scope: scopeArb,
  }).map((d) => ({ id, source: { file: 'p.ts', line: 2 }, ...d }));
export const ruleSetArb: fc.Arbitrary<RuleSet> = fc
  .record({ g: fc.integer({ min: 0, max: 6 }), d: fc.integer({ min: 0, max: 2 }) })
  .chain(({ g, d }) =>
    fc.record({
      grants: fc.tuple(...Array.from({ length: g }, (_, i) => grantArb(`g${i}`))),
      denies: fc.tuple(...Array.from({ length: d }, (_, i) => denyArb(`d${i}`))),
    }),
  )
  .map(({ grants, denies }) => ({
    apiVersion: 'portcullis.dev/v1' as const,
    kind: 'RuleSet' as const,
    cluster: 'c',
    grants,
    denies,
    impersonable: { users, groups: groupNames },
  }));
export const requestArb: fc.Arbitrary<RequestAttributes> = fc.oneof(
  fc.record({
    user: fc.constantFrom(...users),
    groups: fc.subarray(groupNames),
    verb: fc.constantFrom(...verbs.filter((v) => v !== '*')),
    isResourceRequest: fc.constant(true),
    path: fc.constant(''),
    apiGroup: fc.constantFrom('', 'apps', 'batch'),
    apiVersion: fc.constant('v1'),
    resource: fc.constantFrom('pods', 'secrets', 'deployments'),
    subresource: fc.constantFrom('', 'log', 'exec', 'scale'),
    namespace: fc.constantFrom('', ...namespaces),
    name: fc.constantFrom('', ...names),
  }),
  fc.record({
    user: fc.constantFrom(...users),
    groups: fc.subarray(groupNames),
    verb: fc.constantFrom('get', 'post'),
    isResourceRequest: fc.constant(false),
    path: fc.constantFrom('/healthz', '/logs/x', '/metrics'),
    apiGroup: fc.constant(''),
    apiVersion: fc.constant(''),
    resource: fc.constant(''),
    subresource: fc.constant(''),
    namespace: fc.constant(''),
    name: fc.constant(''),
  }),
);
