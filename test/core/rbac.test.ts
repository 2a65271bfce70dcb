import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ruleAllows, type PolicyRule, type RequestAttributes } from '../../core/index.ts';

// Cases follow k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac (RuleAllows) and
// pkg/apis/rbac/v1/evaluation_helpers.go; the expected values are Kubernetes' semantics.
const res = (resource: string, subresource = '', extra: Partial<RequestAttributes> = {}): RequestAttributes => ({
  user: 'u', groups: [], verb: 'get', isResourceRequest: true, path: '', apiGroup: '', apiVersion: 'v1', resource, subresource, namespace: 'ns', name: '', ...extra,
});
const url = (path: string, verb = 'get'): RequestAttributes => ({ ...res(''), isResourceRequest: false, path, verb });
const rule = (r: Partial<PolicyRule>): PolicyRule => ({ verbs: ['get'], apiGroups: [''], resources: ['pods'], ...r });

const cases: [string, PolicyRule, RequestAttributes, boolean][] = [
  ['pods covers pods', rule({}), res('pods'), true],
  ['pods covers no subresource', rule({}), res('pods', 'log'), false],
  ['pods covers not pods/exec', rule({}), res('pods', 'exec', { verb: 'create' }), false],
  ['pods/log covers pods/log', rule({ resources: ['pods/log'] }), res('pods', 'log'), true],
  ['pods/log does not cover pods', rule({ resources: ['pods/log'] }), res('pods'), false],
  ['* covers every resource', rule({ resources: ['*'] }), res('secrets'), true],
  ['* covers subresources', rule({ resources: ['*'] }), res('pods', 'exec'), true],
  ['*/scale covers deployments/scale', rule({ resources: ['*/scale'], apiGroups: ['apps'] }), res('deployments', 'scale', { apiGroup: 'apps' }), true],
  ['*/scale does not cover deployments', rule({ resources: ['*/scale'], apiGroups: ['apps'] }), res('deployments', '', { apiGroup: 'apps' }), false],
  ['*/scale does not cover pods/log', rule({ resources: ['*/scale'] }), res('pods', 'log'), false],
  ['*/cale does not match scale', rule({ resources: ['*/cale'] }), res('deployments', 'scale'), false],
  ['verb * covers any verb', rule({ verbs: ['*'] }), res('pods', '', { verb: 'deletecollection' }), true],
  ['verb mismatch', rule({ verbs: ['list'] }), res('pods'), false],
  ['apiGroups * covers apps', rule({ apiGroups: ['*'], resources: ['deployments'] }), res('deployments', '', { apiGroup: 'apps' }), true],
  ['core group does not cover apps', rule({ resources: ['deployments'] }), res('deployments', '', { apiGroup: 'apps' }), false],
  ['no apiGroups matches nothing', rule({ apiGroups: [] }), res('pods'), false],
  ['resourceNames restrict', rule({ resourceNames: ['a'] }), res('pods', '', { name: 'b' }), false],
  ['resourceNames allow the name', rule({ resourceNames: ['a'] }), res('pods', '', { name: 'a' }), true],
  ['resourceNames do not match a list (no name)', rule({ resourceNames: ['a'], verbs: ['list'] }), res('pods', '', { verb: 'list' }), false],
  ['empty resourceNames allow all names', rule({ resourceNames: [] }), res('pods', '', { name: 'zz' }), true],
  ['non-resource exact', { verbs: ['get'], nonResourceURLs: ['/healthz'] }, url('/healthz'), true],
  ['non-resource prefix*', { verbs: ['get'], nonResourceURLs: ['/logs/*'] }, url('/logs/kube.log'), true],
  ['non-resource prefix* covers the bare prefix', { verbs: ['get'], nonResourceURLs: ['/logs/*'] }, url('/logs/'), true],
  ['non-resource prefix is not a path match', { verbs: ['get'], nonResourceURLs: ['/healthz'] }, url('/healthz/etcd'), false],
  ['non-resource *', { verbs: ['*'], nonResourceURLs: ['*'] }, url('/anything', 'post'), true],
  ['a resource rule never matches a URL', rule({ resources: ['*'], apiGroups: ['*'], verbs: ['*'] }), url('/healthz'), false],
  ['a URL rule never matches a resource', { verbs: ['*'], nonResourceURLs: ['*'] }, res('pods'), false],
];

describe('ruleAllows mirrors Kubernetes RuleAllows', () => {
  for (const [name, r, a, want] of cases) {
    it(name, () => assert.equal(ruleAllows(a, r), want));
  }
});
