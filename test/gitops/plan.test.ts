import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Grant, RuleSet } from '../../core/index.ts';
import { accessLines, diffAccess, formatAccessLine } from '../../core/access-diff.ts';
import { normalizeLive, type KubeObject } from '../../gitops/objects.ts';
import { plan, planCluster, planExitCode, type DesiredCluster, type LiveCluster } from '../../gitops/plan.ts';
import { COMMENT_MARKER, renderMarkdown, renderText } from '../../gitops/render.ts';

const labels = { 'app.kubernetes.io/managed-by': 'portcullis', 'portcullis.dev/cluster': 'dev' };

function role(ns: string, name: string, verbs: string[]): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name, namespace: ns, labels },
    rules: [{ apiGroups: [''], resources: ['pods'], verbs }],
  };
}
function binding(ns: string, name: string, roleName: string, group: string): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace: ns, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
    subjects: [{ kind: 'Group', name: group }],
  };
}
function ns(name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}
function grant(id: string, group: string, verbs: string[], namespaces: string[], extra: Partial<Grant> = {}): Grant {
  return {
    id,
    source: { file: 'policies/x.ts', line: 1 },
    subjects: [{ kind: 'Group', name: group }],
    rules: [{ apiGroups: [''], resources: ['pods'], verbs }],
    scope: { kind: 'namespaces', namespaces },
    conditions: {},
    ...extra,
  };
}
function ruleSet(grants: Grant[]): RuleSet {
  return { apiVersion: 'portcullis.dev/v1', kind: 'RuleSet', cluster: 'dev', grants, denies: [], impersonable: { users: [], groups: [] } };
}

/** What the API server returns for an object Portcullis applied: server fields, defaults, managedFields. */
function asServerReturns(o: KubeObject): KubeObject {
  const fields: Record<string, unknown> = { 'f:metadata': { 'f:labels': Object.fromEntries(Object.keys(o.metadata.labels ?? {}).map((k) => [`f:${k}`, {}])) } };
  for (const k of Object.keys(o)) if (!['apiVersion', 'kind', 'metadata'].includes(k)) fields[`f:${k}`] = {};
  const out: Record<string, unknown> = {
    ...o,
    metadata: {
      ...o.metadata,
      uid: '3f1c',
      resourceVersion: '812',
      creationTimestamp: '2026-11-22T10:00:00Z',
      labels: { ...o.metadata.labels, ...(o.kind === 'Namespace' ? { 'kubernetes.io/metadata.name': o.metadata.name } : {}) },
      managedFields: [{ manager: 'portcullis', operation: 'Apply', apiVersion: o.apiVersion, fieldsType: 'FieldsV1', fieldsV1: fields }],
    },
  };
  if (o.kind === 'Namespace') Object.assign(out, { spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
  if (Array.isArray(o['subjects'])) out['subjects'] = (o['subjects'] as object[]).map((s) => ({ apiGroup: 'rbac.authorization.k8s.io', ...s }));
  return out as KubeObject;
}

const bundleFiles = { 'rbac.yaml': 'a', 'rules.json': 'b', 'bundle.sig.json': 'c' };

test('GIVEN an empty cluster WHEN planned THEN every object is a create in apply order and the exit code is 2', () => {
  const desired: DesiredCluster = {
    name: 'dev',
    objects: [binding('team-a', 'viewers', 'viewer', 'oidc:devs'), role('team-a', 'viewer', ['get']), ns('team-a')],
    ruleSet: ruleSet([grant('g1', 'oidc:devs', ['get'], ['team-a'])]),
    bundle: { revision: 1, files: bundleFiles },
  };
  const p = planCluster(desired, { name: 'dev', objects: [], bundle: null });
  assert.equal(p.status, 'ok');
  if (p.status !== 'ok') return;
  assert.deepEqual(
    p.changes.map((c) => `${c.action} ${c.ref}`),
    ['create Namespace team-a', 'create Role team-a/viewer', 'create RoleBinding team-a/viewers'],
  );
  assert.equal(p.bundle.changed, true);
  assert.equal(planExitCode({ clusters: [p] }), 2);
  assert.deepEqual(accessLines(p.access).map(formatAccessLine), ['+ Group oidc:devs can now get on pods in namespace team-a']);
});

test('GIVEN a cluster as the server returns it after apply WHEN planned again THEN there are no changes (exit 0)', () => {
  const objects = [ns('team-a'), role('team-a', 'viewer', ['get']), binding('team-a', 'viewers', 'viewer', 'oidc:devs')];
  const rs = ruleSet([grant('g1', 'oidc:devs', ['get'], ['team-a'])]);
  const desired: DesiredCluster = { name: 'dev', objects, ruleSet: rs, bundle: { revision: 1, files: bundleFiles } };
  const live: LiveCluster = { name: 'dev', objects: objects.map(asServerReturns), bundle: { revision: 1, files: bundleFiles, ruleSet: rs } };
  const p = planCluster(desired, live);
  assert.equal(p.status === 'ok' && p.changes.length, 0);
  assert.equal(planExitCode({ clusters: [p] }), 0);
  assert.match(renderText({ clusters: [p] }), /dev: no changes \(3 objects up to date, bundle revision 1 \(unchanged\)\)/);
});

test('GIVEN a policy edit WHEN planned THEN exactly the changed role is an update with a readable diff and the access change names the verb', () => {
  const before = [ns('team-a'), role('team-a', 'viewer', ['get']), binding('team-a', 'viewers', 'viewer', 'oidc:devs')];
  const after = [ns('team-a'), role('team-a', 'viewer', ['get', 'list']), binding('team-a', 'viewers', 'viewer', 'oidc:devs')];
  const p = planCluster(
    { name: 'dev', objects: after, ruleSet: ruleSet([grant('g1', 'oidc:devs', ['get', 'list'], ['team-a'])]), bundle: { revision: 2, files: { ...bundleFiles, 'rules.json': 'b2' } } },
    { name: 'dev', objects: before.map(asServerReturns), bundle: { revision: 1, files: bundleFiles, ruleSet: ruleSet([grant('g1', 'oidc:devs', ['get'], ['team-a'])]) } },
  );
  assert.ok(p.status === 'ok');
  if (p.status !== 'ok') return;
  assert.deepEqual(p.changes.map((c) => `${c.action} ${c.ref}`), ['update Role team-a/viewer']);
  const diff = p.changes[0]?.diff ?? '';
  assert.match(diff, /^\+ {6}- list$/m);
  assert.doesNotMatch(diff, /uid|resourceVersion|managedFields/);
  assert.deepEqual(accessLines(p.access).map(formatAccessLine), ['+ Group oidc:devs can now list on pods in namespace team-a']);
  assert.deepEqual(p.bundle, { changed: true, fromRevision: 1, toRevision: 2, files: { ...bundleFiles, 'rules.json': 'b2' } });
});

test('GIVEN managed objects no longer generated WHEN planned THEN bindings are deleted before roles, and the namespace is released, not deleted', () => {
  const live = [ns('team-b'), role('team-b', 'r', ['get']), binding('team-b', 'b', 'r', 'oidc:x')].map(asServerReturns);
  const desired: DesiredCluster = { name: 'dev', objects: [], ruleSet: ruleSet([]), bundle: { revision: 1, files: bundleFiles } };
  const p = planCluster(desired, { name: 'dev', objects: live, bundle: null });
  assert.ok(p.status === 'ok');
  if (p.status !== 'ok') return;
  assert.deepEqual(p.changes.map((c) => `${c.action} ${c.ref}`), ['delete RoleBinding team-b/b', 'delete Role team-b/r', 'release Namespace team-b']);
  const release = p.changes[2];
  assert.deepEqual(release?.object, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } });
  assert.match(release?.diff ?? '', /^- {4}app\.kubernetes\.io\/managed-by: portcullis$/m);
  assert.match(renderText({ clusters: [p] }), /release Namespace team-b \(kept; Portcullis stops managing it/);
  const pruning = planCluster(desired, { name: 'dev', objects: live, bundle: null }, { pruneNamespaces: true });
  assert.deepEqual(pruning.status === 'ok' && pruning.changes.map((c) => `${c.action} ${c.ref}`), ['delete RoleBinding team-b/b', 'delete Role team-b/r', 'delete Namespace team-b']);
});

test('GIVEN drift (a verb added by hand, a label added by another tool) WHEN planned THEN the verb shows, the foreign label does not', () => {
  const want = role('team-a', 'viewer', ['get']);
  const drifted = asServerReturns(role('team-a', 'viewer', ['get', 'delete']));
  const foreign = { ...drifted, metadata: { ...drifted.metadata, labels: { ...drifted.metadata.labels, 'team.example/owner': 'bob' } } } as KubeObject;
  assert.equal(normalizeLive(foreign, want).metadata.labels?.['team.example/owner'], undefined);
  const p = planCluster({ name: 'dev', objects: [want], ruleSet: ruleSet([]), bundle: { revision: 1, files: bundleFiles } }, { name: 'dev', objects: [foreign], bundle: { revision: 1, files: bundleFiles, ruleSet: ruleSet([]) } });
  assert.ok(p.status === 'ok');
  if (p.status !== 'ok') return;
  assert.deepEqual(p.changes.map((c) => c.action), ['update']);
  assert.match(p.changes[0]?.diff ?? '', /^- {6}- delete$/m);
});

test('GIVEN a label Portcullis owns but no longer declares WHEN planned THEN its removal shows', () => {
  const old = { ...role('team-a', 'viewer', ['get']), metadata: { name: 'viewer', namespace: 'team-a', labels: { ...labels, 'portcullis.dev/tier': 'x' } } } as KubeObject;
  const p = planCluster({ name: 'dev', objects: [role('team-a', 'viewer', ['get'])], ruleSet: ruleSet([]), bundle: { revision: 1, files: bundleFiles } }, { name: 'dev', objects: [asServerReturns(old)], bundle: null });
  assert.ok(p.status === 'ok' && p.changes.length === 1);
  assert.match(p.status === 'ok' ? (p.changes[0]?.diff ?? '') : '', /^- +portcullis\.dev\/tier: x$/m);
});

test('effective access: moving a verb between grants or splitting a rule is no change; wildcards cover; conditions count', () => {
  const a = ruleSet([grant('g1', 'oidc:devs', ['get', 'list'], ['team-a'])]);
  const split = ruleSet([grant('g1', 'oidc:devs', ['get'], ['team-a']), grant('g2', 'oidc:devs', ['list'], ['team-a'])]);
  assert.deepEqual(diffAccess(a, split), []);
  const star = ruleSet([grant('g1', 'oidc:devs', ['*'], ['team-a'])]);
  assert.deepEqual(diffAccess(star, a).map((c) => `${c.change} ${c.verb}`), ['lost *']);
  assert.deepEqual(
    diffAccess(a, star).map((c) => `${c.change} ${c.verb}`),
    ['gained *'],
  );
  const clusterWide = ruleSet([{ ...grant('g1', 'oidc:devs', ['get', 'list'], []), scope: { kind: 'cluster' } }]);
  assert.deepEqual(diffAccess(a, clusterWide).map((c) => `${c.change} ${c.namespace} ${c.verb}`), ['gained * get', 'gained * list']);
  assert.deepEqual(diffAccess(clusterWide, a).map((c) => `${c.change} ${c.namespace} ${c.verb}`), ['lost * get', 'lost * list']);
  const timed = ruleSet([grant('g1', 'oidc:devs', ['get', 'list'], ['team-a'], { conditions: { expires: '2027-01-01T00:00:00Z' }, activationGroup: 'portcullis:grant:g1' })]);
  assert.deepEqual(accessLines(diffAccess(a, timed)).map(formatAccessLine), [
    '- Group oidc:devs can no longer get, list on pods in namespace team-a',
    '+ Group oidc:devs can now get, list on pods in namespace team-a (when until 2027-01-01T00:00:00Z)',
  ]);
});

test('effective access: a deny takes what it forbids out of the grants (except its exceptions), so adding one shows who loses what', () => {
  const grants = [grant('g1', 'oidc:devs', ['get', 'list'], ['team-a']), grant('g2', 'oidc:sre', ['get'], ['team-a'])];
  const before = ruleSet(grants);
  const after: RuleSet = {
    ...before,
    denies: [{ id: 'd1', source: { file: 'x', line: 1 }, subjects: 'everyone', except: [{ kind: 'Group', name: 'oidc:sre' }], rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }], scope: { kind: 'cluster' } }],
  };
  assert.deepEqual(accessLines(diffAccess(before, after)).map(formatAccessLine), [
    '- Group oidc:devs can no longer get on pods in namespace team-a',
    '+ everyone except Group oidc:sre is now denied get on pods in every namespace and cluster-wide',
  ]);
});

test('GIVEN a generated object plan could not find again WHEN planned THEN the cluster is refused with the reason', () => {
  const stray = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'a', labels } } as KubeObject;
  const unlabelled = { ...role('a', 'r', ['get']), metadata: { name: 'r', namespace: 'a', labels: { 'portcullis.dev/cluster': 'staging' } } } as KubeObject;
  const p = planCluster({ name: 'dev', objects: [stray, unlabelled], ruleSet: ruleSet([]), bundle: { revision: 1, files: bundleFiles } }, { name: 'dev', objects: [], bundle: null });
  assert.equal(p.status, 'error');
  assert.equal(
    p.status === 'error' ? p.error : '',
    'generated/dev/rbac.yaml: ConfigMap a/x: kind ConfigMap is not one apply manages; Role a/r: it lacks the label app.kubernetes.io/managed-by=portcullis, its portcullis.dev/cluster label is not dev',
  );
});

test('markdown: carries the marker, stays under the limit, folds diffs, and says when it shortened', () => {
  const objects = Array.from({ length: 400 }, (_, i) => role('team-a', `role-${i}`, ['get', 'list', 'watch', `verb-${i}`]));
  const p = planCluster({ name: 'dev', objects, ruleSet: ruleSet([]), bundle: { revision: 1, files: bundleFiles } }, { name: 'dev', objects: [], bundle: null });
  const full = renderMarkdown({ clusters: [p] }, { maxChars: Infinity });
  assert.ok(full.length > 65_536);
  const md = renderMarkdown({ clusters: [p] }, { fullPlanUrl: 'https://example.invalid/run/1' });
  assert.ok(md.startsWith(COMMENT_MARKER));
  assert.ok(md.length <= 65_536, `length ${md.length}`);
  assert.match(md, /<details><summary>400 object changes<\/summary>/);
  assert.match(md, /shortened to fit a GitHub comment; full plan: https:\/\/example\.invalid\/run\/1/);
});

test('an unreachable cluster makes the exit code 1 without hiding the other clusters', () => {
  const desired = (name: string): DesiredCluster => ({ name, objects: [ns('a')], ruleSet: ruleSet([]), bundle: { revision: 1, files: bundleFiles } });
  const p = plan([desired('dev'), desired('prod')], new Map<string, LiveCluster | { error: string }>([
    ['dev', { name: 'dev', objects: [], bundle: null }],
    ['prod', { error: 'unreachable: connection refused' }],
  ]));
  assert.deepEqual(p.clusters.map((c) => c.status), ['ok', 'error']);
  assert.equal(planExitCode(p), 1);
  const text = renderText(p);
  assert.match(text, /== dev: 1 to create/);
  assert.match(text, /== prod: ERROR unreachable: connection refused/);
  assert.match(text, /Summary: 1 of 2 clusters change \(\+1 ~0 -0\); 1 failed/);
});
