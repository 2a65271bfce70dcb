// The audit policy (issue 15): kube's audit.k8s.io/v1 Policy levels by user, group, verb,
// resource, namespace and path, evaluated as kube-apiserver's checker.go does; Secret bodies never
// logged; level None never hides a refusal. Unit cases, then real kubectl through the proxy.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RequestAttributes } from '../../core/attributes.ts';
import { auditDecision, parseAuditPolicy } from '../../runtime-proxy/audit/policy.ts';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import { verifyAuditFiles } from '../../runtime-proxy/audit/verify-files.ts';
import { grant, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, type Harness } from './harness.ts';

const attrs = (o: Partial<RequestAttributes>): RequestAttributes => ({
  user: 'oidc:alice',
  groups: ['oidc:dev', 'system:authenticated'],
  verb: 'get',
  isResourceRequest: true,
  path: '/api/v1/namespaces/team/pods/web',
  apiGroup: '',
  apiVersion: 'v1',
  resource: 'pods',
  subresource: '',
  namespace: 'team',
  name: 'web',
  ...o,
});

describe('audit policy: which level a request gets (checker.go)', () => {
  const policy = parseAuditPolicy(`
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: [oidc:quiet]
  - level: None
    nonResourceURLs: ['/healthz*', /version]
  - level: RequestResponse
    userGroups: [oidc:auditors]
    resources: [{ group: '', resources: ['pods/log'] }]
  - level: Request
    resources: [{ group: apps, resources: ['*/scale'] }]
  - level: Request
    resources: [{ group: '', resources: ['pods/*'] }]
  - level: RequestResponse
    namespaces: [prod]
    verbs: [create, update, patch]
  - level: RequestResponse
    resources: [{ group: '', resources: [configmaps, secrets], resourceNames: [settings, creds] }]
  - level: Metadata
    omitStages: [ResponseStarted]
    resources: [{ group: '' }]
`);
  const cases: [string, Partial<RequestAttributes>, string, boolean?][] = [
    ['a user rule', { user: 'oidc:quiet' }, 'None'],
    ['a path with a trailing *', { isResourceRequest: false, path: '/healthz/ready', resource: '', namespace: '', name: '' }, 'None'],
    ['an exact path', { isResourceRequest: false, path: '/version', resource: '', namespace: '', name: '' }, 'None'],
    ['a path no rule names matches no resource rule: the default, None', { isResourceRequest: false, path: '/metrics', resource: '', namespace: '', name: '' }, 'None'],
    ['a group rule on a subresource', { groups: ['oidc:auditors'], subresource: 'log' }, 'RequestResponse'],
    ['the same subresource outside the group falls to pods/*', { subresource: 'log' }, 'Request'],
    ['*/scale of any resource of the group', { apiGroup: 'apps', resource: 'deployments', subresource: 'scale' }, 'Request'],
    ['*/scale does not match the resource itself', { apiGroup: 'apps', resource: 'deployments' }, 'None'],
    ['a namespace and verb rule', { apiGroup: 'apps', resource: 'deployments', namespace: 'prod', verb: 'patch' }, 'RequestResponse'],
    ['pods/* also matches pods themselves', { namespace: 'dev', verb: 'patch' }, 'Request'],
    ['the same verb elsewhere on a configmap', { resource: 'configmaps', name: 'x', namespace: 'dev', verb: 'patch' }, 'Metadata', true],
    ['resourceNames: a named configmap', { resource: 'configmaps', name: 'settings' }, 'RequestResponse'],
    ['resourceNames: another configmap', { resource: 'configmaps', name: 'other' }, 'Metadata', true],
    ['a named secret: capped at Metadata, whatever the policy', { resource: 'secrets', name: 'creds' }, 'Metadata'],
    ['a secret in prod, created: capped', { resource: 'secrets', namespace: 'prod', verb: 'create', name: '' }, 'Metadata'],
    ['a ServiceAccount token in prod: capped', { resource: 'serviceaccounts', subresource: 'token', namespace: 'prod', verb: 'create' }, 'Metadata'],
    ['a ServiceAccount itself in prod: not capped', { resource: 'serviceaccounts', namespace: 'prod', verb: 'create' }, 'RequestResponse'],
    ['another API group no rule names', { apiGroup: 'batch', resource: 'jobs' }, 'None'],
  ];
  for (const [what, o, level, omitStarted] of cases) {
    it(`GIVEN ${what} THEN ${level}`, () => {
      const d = auditDecision(policy, attrs(o));
      assert.equal(d.level, level);
      if (omitStarted !== undefined) assert.equal(d.omitStarted, omitStarted);
    });
  }

  it('GIVEN bad policies THEN each is refused with every problem named', () => {
    const bad: [string, RegExp][] = [
      ['apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{ level: Everything }]', /rules\[0\]\.level: one of None, Metadata, Request, RequestResponse/],
      ['apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseComplete]\nrules: []', /ResponseComplete cannot be omitted/],
      ['apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{ level: None, user: [x] }]', /rules\[0\]: unknown field user/],
      ['apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{ level: None, resources: [{group: ""}], nonResourceURLs: ["/x"] }]', /do not go together/],
      ['apiVersion: v1\nkind: ConfigMap', /apiVersion must be audit.k8s.io\/v1 and kind Policy; rules: a list of rules/],
      ['rules: [', /not YAML/],
      ['apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\nomitStage: [RequestReceived]', /unknown field omitStage/],
    ];
    for (const [text, why] of bad) assert.throws(() => parseAuditPolicy(text), why, text);
  });
});

const NS = 'proxy-audit-policy';
const RULES = ruleSet('dev', [
  grant('alice-config', [user('oidc:alice')], [
    { verbs: ['get', 'list', 'create', 'delete'], apiGroups: [''], resources: ['configmaps', 'secrets'] },
  ], ns(NS), { line: 4 }),
  grant('quiet-read', [user('oidc:quiet')], [{ verbs: ['list'], apiGroups: [''], resources: ['configmaps'] }], ns(NS), { line: 9 }),
]);
const RBAC = manifestsYaml([
  ...upstreamRole(NS, 'audit-policy-alice', [user('oidc:alice')], [{ verbs: ['get', 'list', 'create', 'delete'], apiGroups: [''], resources: ['configmaps', 'secrets'] }]),
  ...upstreamRole(NS, 'audit-policy-quiet', [user('oidc:quiet')], [{ verbs: ['list'], apiGroups: [''], resources: ['configmaps'] }]),
]);
const POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
  - level: None
    users: [oidc:quiet]
  - level: RequestResponse
    resources: [{ group: '', resources: [configmaps, secrets] }]
  - level: Metadata
`;

describe('audit policy through the proxy, with real kubectl', () => {
  let h: Harness;
  let alice: string;
  let quiet: string;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-policy-'));
    const policyFile = join(dir, 'audit-policy.yaml');
    writeFileSync(policyFile, POLICY);
    h = await startHarness({
      namespaces: [NS],
      rbac: RBAC,
      impersonable: RULES.impersonable,
      ruleSet: RULES,
      configExtra: { audit: { file: { path: 'audit.log' }, flushIntervalMs: 50, policyFile } },
    });
    alice = h.kubeconfig(await h.token('alice', []));
    quiet = h.kubeconfig(await h.token('quiet', []));
  });
  after(async () => {
    await h?.stop();
  });

  const completes = (events: AuditEvent[], verb: string, resource: string, user: string) =>
    events.filter((e) => e.stage === 'ResponseComplete' && e.verb === verb && e.objectRef?.resource === resource && e.user.username === user && e.objectRef?.namespace === NS);

  it('GIVEN RequestResponse for configmaps WHEN alice applies one from a manifest and reads it THEN the records hold the request and response bodies; a protobuf body is named as left out', async () => {
    const cm = `audited-cm-${Date.now()}`;
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm, namespace: NS }, data: { colour: 'teal' } });
    let r = await h.kubectl(alice, ['create', '-f', '-'], {}, manifest);
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(alice, ['get', 'configmap', cm, '-n', NS, '-o', 'json', '--show-managed-fields']);
    assert.equal(r.status, 0, r.stderr);
    let events = h.auditEvents();
    const created = completes(events, 'create', 'configmaps', 'oidc:alice').at(-1);
    assert.equal(created?.level, 'RequestResponse');
    assert.equal((created?.requestObject as { data?: Record<string, string> })?.data?.['colour'], 'teal');
    assert.equal((created?.responseObject as { metadata?: { name?: string } })?.metadata?.name, cm);
    const read = completes(events, 'get', 'configmaps', 'oidc:alice').at(-1);
    assert.equal(read?.level, 'RequestResponse');
    assert.equal((read?.responseObject as { data?: Record<string, string> })?.data?.['colour'], 'teal');
    assert.equal(read?.requestObject, undefined, 'a GET has no body');
    assert.match(r.stdout, /managedFields/, 'kubectl got managedFields');
    assert.equal((read?.responseObject as { metadata?: { managedFields?: unknown } })?.metadata?.managedFields, undefined, 'omitManagedFields: true');
    // kubectl's typed generators send protobuf, which the proxy does not decode: the record says so.
    r = await h.kubectl(alice, ['create', 'configmap', `${cm}-pb`, '-n', NS, '--from-literal=colour=red']);
    assert.equal(r.status, 0, r.stderr);
    events = h.auditEvents();
    const pb = completes(events, 'create', 'configmaps', 'oidc:alice').at(-1);
    assert.equal(pb?.requestObject, undefined);
    assert.match(pb?.annotations['portcullis.dev/body-omitted'] ?? '', /request: not JSON \(application\/vnd\.kubernetes\.protobuf\)/);
  });

  it('GIVEN RequestResponse for secrets too WHEN alice creates one from a JSON manifest and reads it THEN its records stay at Metadata and its value is nowhere in the log', async () => {
    const secret = `audited-secret-${Date.now()}`;
    const value = `hunter2-${Date.now()}`;
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: secret, namespace: NS }, stringData: { password: value } });
    let r = await h.kubectl(alice, ['create', '-f', '-'], {}, manifest);
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(alice, ['get', 'secret', secret, '-n', NS, '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(Buffer.from(value).toString('base64')), 'kubectl got the secret');
    const events = h.auditEvents();
    for (const verb of ['create', 'get']) {
      const e = completes(events, verb, 'secrets', 'oidc:alice').at(-1);
      assert.equal(e?.level, 'Metadata', verb);
      assert.equal(e?.requestObject, undefined);
      assert.equal(e?.responseObject, undefined);
    }
    const log = readFileSync(h.auditFile, 'utf8');
    assert.ok(!log.includes(value) && !log.includes(Buffer.from(value).toString('base64')), 'the secret value never reaches the audit log');
  });

  it('GIVEN level None for quiet WHEN quiet lists configmaps THEN no record; WHEN quiet is refused THEN the refusal is recorded all the same', async () => {
    let r = await h.kubectl(quiet, ['get', 'configmaps', '-n', NS]);
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(quiet, ['get', 'secrets', '-n', NS]);
    assert.notEqual(r.status, 0);
    const events = h.auditEvents().filter((e) => e.user.username === 'oidc:quiet');
    assert.deepEqual(completes(events, 'list', 'configmaps', 'oidc:quiet'), []);
    const refused = completes(events, 'list', 'secrets', 'oidc:quiet');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]?.level, 'Metadata');
    assert.equal(refused[0]?.annotations['portcullis.dev/decision'], 'deny');
  });

  it('GIVEN records left out by the policy WHEN the log is verified THEN the chain is unbroken (nothing was deleted after writing)', async () => {
    await h.proxy.stop();
    const v = verifyAuditFiles([h.auditFile]);
    assert.equal(v.ok, true, v.text);
  });
});
