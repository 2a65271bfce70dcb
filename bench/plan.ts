/**
 * Benchmark: plan and apply for 3 sandbox clusters × N managed objects (default 1,000).
 * `node bin/run-ts.js bench/plan.ts [--objects N] [--fleet FLEET.json]`
 * Starts its own sandbox fleet unless --fleet names a running one (whose
 * managed objects it then replaces). Prints wall time and objects per second
 * for: first plan (all creates), first apply, plan with nothing to do, drift
 * on 10% of the objects (plan + apply), and prune of 10%.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ENVELOPE_FILE, canonicalJson, keyIdOf, sha256, signStatement, type Grant, type RuleSet } from '../core/index.ts';
import { readCredentials } from '../gitops/fleet.ts';
import { KubectlClient } from '../gitops/kubectl.ts';
import { MANAGED_KINDS, type KubeObject } from '../gitops/objects.ts';
import { countChanges, type Plan } from '../gitops/plan.ts';
import { runApply, runPlan } from '../gitops/run.ts';
import { downFleet, readFleet, upFleet } from '../sandbox/index.ts';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(arg('--objects') ?? 1000);
const CLUSTERS = ['dev', 'staging', 'prod-eu'];
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const keyId = keyIdOf(publicKey);

/** N objects for a cluster: 10% namespaces, then roles and bindings in them, some cluster-wide. */
function objectsFor(cluster: string, n: number, variant: number): { objects: KubeObject[]; ruleSet: RuleSet } {
  // Namespaces stay the same when n shrinks, so a smaller n only prunes roles and bindings.
  const labels = { 'app.kubernetes.io/managed-by': 'portcullis', 'portcullis.dev/cluster': cluster };
  const nsCount = Math.max(1, Math.floor(N / 10));
  const objects: KubeObject[] = [];
  const grants: Grant[] = [];
  for (let i = 0; i < nsCount; i++) objects.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `bench-${i}`, labels } });
  let i = 0;
  while (objects.length < n) {
    const ns = `bench-${i % nsCount}`;
    const verbs = i % 10 < variant ? ['get', 'list', 'watch', 'delete'] : ['get', 'list', 'watch'];
    const rules = [{ apiGroups: [''], resources: ['configmaps', 'pods'], verbs }];
    const clusterWide = i % 8 === 0;
    const roleKind = clusterWide ? 'ClusterRole' : 'Role';
    const name = `bench-grant-${i}`;
    objects.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: roleKind, metadata: { name, ...(clusterWide ? {} : { namespace: ns }), labels }, rules });
    if (objects.length < n) {
      objects.push({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: clusterWide ? 'ClusterRoleBinding' : 'RoleBinding',
        metadata: { name, ...(clusterWide ? {} : { namespace: ns }), labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: `oidc:team-${i % 50}` }],
      });
    }
    grants.push({ id: name, source: { file: 'bench', line: i }, subjects: [{ kind: 'Group', name: `oidc:team-${i % 50}` }], rules, scope: clusterWide ? { kind: 'cluster' } : { kind: 'namespaces', namespaces: [ns] }, conditions: {} });
    i++;
  }
  const ruleSet: RuleSet = { apiVersion: 'portcullis.dev/v1', kind: 'RuleSet', cluster, grants, denies: [], impersonable: { users: [], groups: [] } };
  return { objects, ruleSet };
}

/** Writes a signed generated/ for the three clusters. */
function writeGenerated(dir: string, fleetFile: string, n: number, variant: number, revision: number): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'keys'), { recursive: true });
  writeFileSync(join(dir, 'keys', `${keyId}.pub.pem`), publicKey.export({ type: 'spki', format: 'pem' }));
  const fleet = readFleet(fleetFile);
  writeFileSync(join(dir, 'fleet.json'), canonicalJson({ clusters: fleet.clusters.map((c) => ({ name: c.name, server: c.server, proxyUrl: '', labels: {} })) }));
  for (const c of CLUSTERS) {
    const { objects, ruleSet } = objectsFor(c, n, variant);
    const rbac = objects.map((o) => stringify(o)).join('---\n');
    const rules = canonicalJson(ruleSet);
    mkdirSync(join(dir, c));
    writeFileSync(join(dir, c, 'rbac.yaml'), rbac);
    writeFileSync(join(dir, c, 'rules.json'), rules);
    const env = signStatement(
      { _type: 'https://portcullis.dev/bundle/v1', cluster: c, revision, notAfter: new Date(Date.now() + 86_400_000).toISOString(), sourceDigest: sha256(`bench ${variant}`), keyId, files: { 'rbac.yaml': sha256(rbac), 'rules.json': sha256(rules) } },
      privateKey,
    );
    writeFileSync(join(dir, c, ENVELOPE_FILE), env);
  }
}

function totals(plan: Plan): { create: number; update: number; delete: number } {
  const t = { create: 0, update: 0, delete: 0 };
  for (const c of plan.clusters) {
    if (c.status === 'error') throw new Error(`${c.cluster}: ${c.error}`);
    const k = countChanges(c);
    t.create += k.create;
    t.update += k.update;
    t.delete += k.delete;
  }
  return t;
}

async function timed<T>(label: string, objects: number, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  const s = (performance.now() - t0) / 1000;
  console.log(`${label.padEnd(44)} ${s.toFixed(2).padStart(7)} s   ${(objects / s).toFixed(0).padStart(7)} objects/s   (${objects} objects)`);
  return r;
}

const work = mkdtempSync(join(tmpdir(), 'portcullis-bench-plan-'));
let ownFleet: string | undefined;
let fleetFile = arg('--fleet');
try {
  if (!fleetFile) {
    ownFleet = join(work, 'fleet');
    const f = await upFleet({ dir: ownFleet, clusters: 3, log: () => {} });
    fleetFile = join(f.dir, 'fleet.json');
  }
  const { credentials, kubectl } = await readCredentials(fleetFile);
  const kc = kubectl ?? 'kubectl';
  // Start from no managed objects and no bundle.
  const kinds = MANAGED_KINDS.map((k) => (k.group ? `${k.resource}.${k.group}` : k.resource)).join(',');
  await Promise.all(
    CLUSTERS.map(async (c) => {
      const client = new KubectlClient(c, credentials.get(c)?.kubeconfig ?? '', kc, 120);
      await client.run(['delete', kinds, '--all-namespaces', '-l', 'app.kubernetes.io/managed-by=portcullis', '--ignore-not-found', '--wait=true']);
      await client.run(['delete', 'configmap', 'portcullis-bundle', '-n', 'portcullis-system', '--ignore-not-found']);
    }),
  );
  const gen = join(work, 'generated');
  const total = N * CLUSTERS.length;
  const opts = { generatedDir: gen, credentials, kubectl: kc, concurrency: 3 };
  console.log(`plan/apply benchmark: ${CLUSTERS.length} sandbox clusters × ${N} managed objects, kubectl ${kc}`);
  const wall0 = performance.now();

  writeGenerated(gen, fleetFile, N, 0, 1);
  const p1 = await timed('plan, empty clusters (all creates)', total, () => runPlan(opts));
  console.log(`  → ${JSON.stringify(totals(p1))}`);
  const a1 = await timed('apply, empty clusters', total, () => runApply({ ...opts, checkFresh: async () => {} }));
  if (a1.results.some((r) => !r.ok)) throw new Error(a1.results.map((r) => r.error).join('; '));
  const p2 = await timed('plan, nothing to do', total, () => runPlan(opts));
  console.log(`  → ${JSON.stringify(totals(p2))}`);

  writeGenerated(gen, fleetFile, N, 1, 2); // ~10% of the roles gain a verb
  const p3 = await timed('plan, ~5% of objects changed', total, () => runPlan(opts));
  const t3 = totals(p3);
  console.log(`  → ${JSON.stringify(t3)}`);
  await timed('apply, ~5% of objects changed', total, () => runApply({ ...opts, checkFresh: async () => {} }));

  writeGenerated(gen, fleetFile, Math.floor(N * 0.9), 1, 3); // prune 10%
  const p4 = await timed('plan, 10% pruned', total, () => runPlan(opts));
  console.log(`  → ${JSON.stringify(totals(p4))}`);
  await timed('apply, 10% pruned', total, () => runApply({ ...opts, checkFresh: async () => {} }));
  const p5 = await runPlan(opts);
  const t5 = totals(p5);
  if (t5.create + t5.update + t5.delete !== 0) throw new Error(`plan after apply is not empty: ${JSON.stringify(t5)}`);
  console.log(`wall time (all rounds): ${((performance.now() - wall0) / 1000).toFixed(1)} s; final plan empty`);
} finally {
  if (ownFleet) await downFleet(ownFleet);
  rmSync(work, { recursive: true, force: true });
}
