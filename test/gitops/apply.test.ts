import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPlan, pool, renderApplySummary } from '../../gitops/apply.ts';
import type { ClusterClient, LiveBundle } from '../../gitops/kubectl.ts';
import type { KubeObject } from '../../gitops/objects.ts';
import { planCluster } from '../../gitops/plan.ts';

const labels = { 'app.kubernetes.io/managed-by': 'portcullis', 'portcullis.dev/cluster': 'dev' };
const ns = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const role = (n: string, name: string): KubeObject => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: n, labels }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] });
const binding = (n: string, name: string): KubeObject => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'RoleBinding',
  metadata: { name, namespace: n, labels },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
  subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'oidc:x' }],
});
const rs = { apiVersion: 'portcullis.dev/v1' as const, kind: 'RuleSet' as const, cluster: 'dev', grants: [], denies: [], impersonable: { users: [], groups: [] } };

/** Records every call; `fail` makes one operation throw. */
function recorder(existing: readonly string[], fail?: 'apply' | 'delete' | 'deliverBundle'): ClusterClient & { calls: string[] } {
  const calls: string[] = [];
  const op = async (name: 'apply' | 'delete' | 'deliverBundle', what: string) => {
    calls.push(`${name} ${what}`);
    if (fail === name) throw new Error(`${name} refused`);
  };
  return {
    name: 'dev',
    calls,
    listManaged: async () => [],
    readBundle: async (): Promise<LiveBundle | null> => null,
    apply: (objs, o) => op('apply', `${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(',')}${o.dryRun ? ' dry' : ''}`),
    delete: (objs, o) => op('delete', `${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(',')}${o.dryRun ? ' dry' : ''}`),
    deliverBundle: (files, o) => op('deliverBundle', `${Object.keys(files).sort().join(',')}${o.dryRun ? ' dry' : ''}`),
    namespaceExists: async (n) => existing.includes(n),
  };
}

const files = { 'rbac.yaml': 'a', 'rules.json': 'b', 'bundle.sig.json': 'c' };
const planFor = () =>
  planCluster(
    { name: 'dev', objects: [binding('new', 'b'), role('new', 'b'), ns('new'), role('old', 'r')], ruleSet: rs, bundle: { revision: 2, files } },
    { name: 'dev', objects: [binding('gone', 'x'), role('gone', 'x')], bundle: null },
  );

test('GIVEN creates and prunes WHEN applied THEN upserts in kind order, then prunes bindings before roles, then the bundle', async () => {
  const c = recorder(['old', 'gone']);
  const lines: string[] = [];
  const r = await applyPlan(planFor(), c, { onProgress: (l) => lines.push(l), now: () => 0 });
  assert.deepEqual(c.calls, [
    'apply Namespace/new,Role/b,Role/r,RoleBinding/b',
    'delete RoleBinding/x,Role/x',
    'deliverBundle bundle.sig.json,rbac.yaml,rules.json',
  ]);
  assert.deepEqual(r, { cluster: 'dev', ok: true, applied: 4, deleted: 2, bundleDelivered: true, skipped: 0, seconds: 0 });
  assert.deepEqual(lines, ['[dev] applying 4 objects…', '[dev] pruning 2 objects…', '[dev] delivering bundle revision 2…', '[dev] done in 0.0s']);
});

test('GIVEN a namespace no longer generated WHEN applied THEN it is released by applying its bare identity, after the prunes', async () => {
  const c = recorder(['gone']);
  const p = planCluster({ name: 'dev', objects: [], ruleSet: rs, bundle: { revision: 2, files } }, { name: 'dev', objects: [ns('gone'), role('gone', 'x')], bundle: null });
  const r = await applyPlan(p, c, { now: () => 0 });
  assert.deepEqual(c.calls, ['delete Role/x', 'apply Namespace/gone', 'deliverBundle bundle.sig.json,rbac.yaml,rules.json']);
  assert.equal(r.released, 1);
  assert.match(renderApplySummary([r], false), /dev: ok — 0 applied, 1 pruned, 1 namespace released, bundle delivered/);
});

test('GIVEN a dry run WHEN a namespace is only created by this apply THEN objects in it are not sent (the server cannot dry-run them) and are counted', async () => {
  const c = recorder(['old', 'gone']);
  const r = await applyPlan(planFor(), c, { dryRun: true, now: () => 0 });
  assert.deepEqual(c.calls, ['apply Namespace/new,Role/r dry', 'delete RoleBinding/x,Role/x dry', 'deliverBundle bundle.sig.json,rbac.yaml,rules.json dry']);
  assert.equal(r.skipped, 2);
  assert.match(renderApplySummary([r], true), /Apply \(dry run\) summary: 1 of 1 clusters ok\n {2}dev: ok — 2 applied, 2 pruned, bundle delivered, 2 not checked \(namespace created by this apply\)/);
});

test('GIVEN the cluster refuses the prune WHEN applied THEN the result says so, the bundle is not delivered, and the summary fails', async () => {
  const c = recorder(['old', 'gone'], 'delete');
  const r = await applyPlan(planFor(), c, { now: () => 0 });
  assert.equal(r.ok, false);
  assert.equal(r.bundleDelivered, false);
  assert.match(r.error ?? '', /delete refused/);
  assert.deepEqual(c.calls.map((x) => x.split(' ')[0]), ['apply', 'delete']);
  assert.match(renderApplySummary([r], false), /0 of 1 clusters ok, 1 failed\n {2}dev: FAILED — delete refused/);
});

test('GIVEN a bundle too large for a ConfigMap WHEN applied THEN nothing is changed', async () => {
  const big = planCluster({ name: 'dev', objects: [ns('a')], ruleSet: rs, bundle: { revision: 1, files: { ...files, 'rules.json': 'x'.repeat(1_100_000) } } }, { name: 'dev', objects: [], bundle: null });
  const c = recorder([]);
  const r = await applyPlan(big, c, { now: () => 0 });
  assert.equal(r.ok, false);
  assert.match(r.error ?? '', /over a ConfigMap's 1000000; nothing was applied/);
  assert.deepEqual(c.calls, []);
});

test('pool keeps order and never runs more than the limit at once', async () => {
  let running = 0;
  let peak = 0;
  const out = await pool([5, 1, 4, 2, 3], 2, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, n * 3));
    running--;
    return n * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(peak, 2);
});
