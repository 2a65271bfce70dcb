/** The proxy's own deployment chart: snapshot, invariants, and the real apiserver's verdict (server-side dry run). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { BUNDLE_CONFIGMAP as COMPILER_BUNDLE_CONFIGMAP, IMPERSONATOR_ROLE as COMPILER_IMPERSONATOR_ROLE, PROXY_NAMESPACE as COMPILER_NAMESPACE, PROXY_SERVICE_ACCOUNT as COMPILER_SA } from '../../compiler/synth.ts';
import { ActivationStore, ConfigMapActivations } from '../../runtime-proxy/break-glass.ts';
import { ConfigMapFloors } from '../../runtime-proxy/revision-floor.ts';
import { parseConfig } from '../../runtime-proxy/config.ts';
import { getTestFleet } from '../support/fleet.ts';
import {
  BREAK_GLASS_CONFIGMAP,
  BUNDLE_CONFIGMAP,
  BUNDLE_READER,
  BUNDLE_READER_MOUNT,
  BUNDLE_READER_SECRET,
  CONFIG_PATH,
  IMPERSONATOR_ROLE,
  PROXY_NAMESPACE,
  PROXY_SERVICE_ACCOUNT,
  REVISION_FLOOR_CONFIGMAP,
  inClusterProxyConfig,
  synthProxyChart,
  type ProxyChartProps,
} from '../../runtime-proxy/deploy/index.ts';

const SNAPSHOT = fileURLToPath(new URL('./deploy.snapshot.yaml', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const props: ProxyChartProps = {
  image: 'ghcr.io/example/portcullis:0.1.0',
  cluster: 'dev',
  trustedKeys: { '0123456789abcdef': '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n' },
  config: inClusterProxyConfig({
    cluster: 'dev',
    issuers: [
      { issuer: 'https://login.example.com', audiences: ['portcullis'], usernamePrefix: 'oidc:', groupsClaim: 'groups' },
      { issuer: 'https://token.actions.githubusercontent.com', audiences: ['https://github.com/acme'], usernamePrefix: 'github:', clusters: ['dev'] },
    ],
    trustedKeyIds: ['0123456789abcdef'],
  }),
};

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };
const objects = (yaml: string): Obj[] => parseAllDocuments(yaml).map((d) => d.toJSON() as Obj);
// The parts of the chart's objects the tests read (a view, not a schema).
interface Probe {
  readonly httpGet: { readonly path: string };
}
interface Container {
  readonly args: string[];
  readonly readinessProbe: Probe;
  readonly livenessProbe: Probe;
  readonly resources: { readonly requests: { readonly cpu?: string }; readonly limits: { readonly memory?: string } };
  readonly securityContext: { readonly readOnlyRootFilesystem: boolean; readonly allowPrivilegeEscalation: boolean; readonly capabilities: { readonly drop: string[] } };
  readonly volumeMounts: { readonly name: string; readonly mountPath: string; readonly readOnly?: boolean }[];
}
interface Viewed extends Obj {
  readonly spec: {
    readonly replicas: number;
    readonly minAvailable: number;
    readonly volumeClaimTemplates?: { readonly metadata: { readonly name: string }; readonly spec: { readonly accessModes: string[]; readonly resources: { readonly requests: { readonly storage: string } }; readonly storageClassName?: string } }[];
    readonly persistentVolumeClaimRetentionPolicy?: Record<string, string>;
    readonly selector: Record<string, string> & { readonly matchLabels: Record<string, string> };
    readonly template: {
      readonly metadata: { readonly annotations: Record<string, string> };
      readonly spec: {
        readonly serviceAccountName: string;
        readonly securityContext: { readonly runAsNonRoot: boolean };
        readonly affinity: { readonly podAntiAffinity: { readonly preferredDuringSchedulingIgnoredDuringExecution: unknown[] } };
        readonly containers: Container[];
        readonly volumes: { readonly name: string; readonly configMap?: unknown; readonly secret?: unknown; readonly emptyDir?: unknown }[];
      };
    };
  };
  readonly roleRef: unknown;
  readonly subjects: unknown;
}
const find = (objs: Obj[], kind: string): Viewed => {
  const o = objs.find((x) => x.kind === kind);
  assert.ok(o, `no ${kind}`);
  return o as Viewed;
};

describe('proxy deployment chart', () => {
  it('GIVEN the example props WHEN synthesized THEN the YAML matches the snapshot (UPDATE_SNAPSHOTS=1 rewrites it)', () => {
    const yaml = synthProxyChart(props);
    if (process.env.UPDATE_SNAPSHOTS === '1' || !existsSync(SNAPSHOT)) writeFileSync(SNAPSHOT, yaml);
    assert.equal(yaml, readFileSync(SNAPSHOT, 'utf8'));
  });

  it('GIVEN the same props in another key order WHEN synthesized twice THEN the same bytes', () => {
    const shuffled = { ...props, config: Object.fromEntries(Object.entries(props.config).reverse()) };
    assert.equal(synthProxyChart(props), synthProxyChart(shuffled));
  });

  it('GIVEN the chart THEN exactly these kinds, and names shared with the compiler match its constants', () => {
    const objs = objects(synthProxyChart(props));
    assert.deepEqual(objs.map((o) => o.kind).sort(), ['ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'ConfigMap', 'ConfigMap', 'Namespace', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'Service', 'ServiceAccount', 'StatefulSet']);
    assert.equal(IMPERSONATOR_ROLE, COMPILER_IMPERSONATOR_ROLE);
    assert.equal(PROXY_NAMESPACE, COMPILER_NAMESPACE);
    assert.equal(PROXY_SERVICE_ACCOUNT, COMPILER_SA);
    assert.equal(BUNDLE_CONFIGMAP, COMPILER_BUNDLE_CONFIGMAP);
  });

  it('GIVEN the chart THEN its ServiceAccount can impersonate (the compiler role) and get/update the break-glass and revision-floor ConfigMaps, nothing more', () => {
    const objs = objects(synthProxyChart(props));
    const crb = find(objs, 'ClusterRoleBinding');
    assert.deepEqual(crb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'portcullis:proxy-impersonator' });
    assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'portcullis-proxy', namespace: 'portcullis-system' }]);
    assert.ok(!objs.some((o) => o.kind === 'ClusterRole'), 'no ClusterRole in the chart: the compiler defines the impersonator');
    const role = find(objs, 'Role') as Viewed & { rules: unknown };
    assert.equal(role.metadata.namespace, PROXY_NAMESPACE);
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [BREAK_GLASS_CONFIGMAP, REVISION_FLOOR_CONFIGMAP], verbs: ['get', 'update'] }]);
    const rb = find(objs, 'RoleBinding');
    assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    assert.deepEqual(rb.subjects, [{ kind: 'ServiceAccount', name: 'portcullis-proxy', namespace: 'portcullis-system' }]);
    for (const name of [BREAK_GLASS_CONFIGMAP, REVISION_FLOOR_CONFIGMAP]) {
      const state = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
      assert.ok(state && !('data' in state), `${name} ships without data, so re-applying the chart keeps what the replicas wrote`);
    }
    // The bundle source's credential: a token of the compiler's read-only bundle reader, not the impersonator's.
    const secret = find(objs, 'Secret') as Viewed & { type: string; metadata: { annotations: Record<string, string> } };
    assert.equal(secret.metadata.name, BUNDLE_READER_SECRET);
    assert.equal(secret.type, 'kubernetes.io/service-account-token');
    assert.deepEqual(secret.metadata.annotations, { 'kubernetes.io/service-account.name': BUNDLE_READER });
    assert.equal(find(objs, 'StatefulSet').spec.template.spec.serviceAccountName, 'portcullis-proxy');
    // Shared objects carry the compiler's labels, so `apply` (prune by managed-by) keeps them.
    for (const kind of ['Namespace', 'ServiceAccount', 'ClusterRoleBinding']) {
      assert.deepEqual(find(objs, kind).metadata.labels, { 'app.kubernetes.io/managed-by': 'portcullis', 'portcullis.dev/cluster': 'dev' });
    }
    // The proxy's own objects do not: apply must never prune the StatefulSet.
    assert.ok(!('app.kubernetes.io/managed-by' in (find(objs, 'StatefulSet').metadata.labels ?? {})));
  });

  it('GIVEN the StatefulSet THEN ≥ 2 replicas, anti-affinity, probes, resources, non-root, read-only root, the bundle reader\'s token mounted and no bundle volume', () => {
    const d = find(objects(synthProxyChart(props)), 'StatefulSet');
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    assert.ok(c, 'one container');
    assert.equal(d.spec.replicas, 2);
    assert.ok(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.length >= 1);
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.deepEqual(c.args, ['proxy', '--config', CONFIG_PATH]);
    assert.ok(!pod.volumes.some((v) => (v.configMap as { name?: string } | undefined)?.name === BUNDLE_CONFIGMAP), 'the bundle comes from the ConfigMap watch, not a volume (a minute late, without its commit)');
    const reader = pod.volumes.find((v) => v.name === 'bundle-reader');
    assert.deepEqual(reader?.secret, { secretName: BUNDLE_READER_SECRET, items: [{ key: 'token', path: 'token' }] });
    assert.ok(c.volumeMounts.some((m) => m.name === 'bundle-reader' && m.mountPath === BUNDLE_READER_MOUNT && m.readOnly));
    assert.equal(find(objects(synthProxyChart({ ...props, replicas: 3 })), 'StatefulSet').spec.replicas, 3);
    assert.throws(() => synthProxyChart({ ...props, replicas: 1 }), /replicas/);
  });

  it('GIVEN the StatefulSet THEN each replica keeps its audit log on a persistent volume of its own, never in an emptyDir, and scaling down or deleting keeps the volumes', () => {
    const s = find(objects(synthProxyChart(props)), 'StatefulSet');
    const pod = s.spec.template.spec;
    assert.ok(!pod.volumes.some((v) => v.name === 'audit'), 'no pod volume named audit: it comes from the claim template');
    assert.deepEqual(s.spec.volumeClaimTemplates?.map((t) => [t.metadata.name, t.spec.accessModes, t.spec.resources.requests.storage]), [['audit', ['ReadWriteOnce'], '10Gi']]);
    assert.ok(pod.containers[0]?.volumeMounts.some((m) => m.name === 'audit' && m.mountPath === '/var/log/portcullis' && !m.readOnly));
    assert.deepEqual(s.spec.persistentVolumeClaimRetentionPolicy, { whenDeleted: 'Retain', whenScaled: 'Retain' });
    const sized = find(objects(synthProxyChart({ ...props, auditVolumeSize: '50Gi', auditStorageClass: 'fast' })), 'StatefulSet');
    assert.deepEqual([sized.spec.volumeClaimTemplates?.[0]?.spec.resources.requests.storage, sized.spec.volumeClaimTemplates?.[0]?.spec.storageClassName], ['50Gi', 'fast']);
  });

  it('GIVEN a PDB and Service THEN minAvailable 1 and both select the proxy pods', () => {
    const objs = objects(synthProxyChart(props));
    const sel = find(objs, 'StatefulSet').spec.selector.matchLabels;
    assert.equal(find(objs, 'PodDisruptionBudget').spec.minAvailable, 1);
    assert.deepEqual(find(objs, 'PodDisruptionBudget').spec.selector.matchLabels, sel);
    assert.deepEqual(find(objs, 'Service').spec.selector, sel);
  });

  it('GIVEN a config change THEN the pod template checksum changes (pods roll)', () => {
    const sum = (p: ProxyChartProps) => find(objects(synthProxyChart(p)), 'StatefulSet').spec.template.metadata.annotations['portcullis.dev/config-sha256'];
    assert.notEqual(sum(props), sum({ ...props, config: { ...props.config, listen: { host: '0.0.0.0', port: 9443 } } }));
    assert.notEqual(sum(props), sum({ ...props, trustedKeys: { other: 'PEM' } }));
  });

  it('GIVEN the ConfigMap THEN its config.yaml is accepted by the proxy config parser', () => {
    const cm = objects(synthProxyChart(props)).find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'portcullis-proxy-config') as Obj & { data: Record<string, string> };
    const cfg = parseConfig(cm.data['config.yaml'] ?? '', '/', 'chart config');
    assert.equal(cfg.clusters[0]?.name, 'dev');
    assert.deepEqual(cfg.clusters[0]?.bundle, { kind: 'configMap', tokenFile: `${BUNDLE_READER_MOUNT}/token`, namespace: PROXY_NAMESPACE, name: BUNDLE_CONFIGMAP, pollIntervalMs: 5000 });
    // Replicas share break-glass activations and the revision floor through the chart's ConfigMaps, with the pod's own token.
    const podToken = '/var/run/secrets/kubernetes.io/serviceaccount/token';
    assert.deepEqual(cfg.breakGlass.configMap, { cluster: 'dev', tokenFile: podToken, namespace: PROXY_NAMESPACE, name: BREAK_GLASS_CONFIGMAP });
    assert.deepEqual(cfg.revisionFloor.configMap, { cluster: 'dev', tokenFile: podToken, namespace: PROXY_NAMESPACE, name: REVISION_FLOOR_CONFIGMAP });
  });
});

describe('proxy deployment chart against a real kube-apiserver', () => {
  it('GIVEN a sandbox cluster WHEN kubectl apply --dry-run=server THEN every object is accepted', async () => {
    const fleet = await getTestFleet();
    const cluster = fleet.cluster('dev');
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-deploy-'));
    try {
      const file = join(dir, 'chart.yaml');
      writeFileSync(file, synthProxyChart(props));
      const kubeconfig = cluster.adminKubeconfig;
      // The namespace must exist for namespaced objects to pass a server dry run; creating it is idempotent.
      const ns = await fleet.kubectl(['create', 'namespace', PROXY_NAMESPACE], { kubeconfig });
      assert.ok(ns.code === 0 || /AlreadyExists/.test(ns.stderr), ns.stderr);
      const r = await fleet.kubectl(['apply', '--dry-run=server', '-f', file, '-o', 'name'], { kubeconfig, timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n').sort(), [
        'clusterrolebinding.rbac.authorization.k8s.io/portcullis:proxy-impersonator',
        'configmap/portcullis-break-glass',
        'configmap/portcullis-bundle-revisions',
        'configmap/portcullis-proxy-config',
        'configmap/portcullis-proxy-keys',
        'namespace/portcullis-system',
        'poddisruptionbudget.policy/portcullis-proxy',
        'role.rbac.authorization.k8s.io/portcullis-proxy:shared-state',
        'rolebinding.rbac.authorization.k8s.io/portcullis-proxy:shared-state',
        'secret/portcullis-bundle-reader-token',
        'service/portcullis-proxy',
        'service/portcullis-proxy-pods',
        'serviceaccount/portcullis-proxy',
        'statefulset.apps/portcullis-proxy',
      ]);
      // And the apiserver rejects what it should: the same chart with an invalid object is refused.
      writeFileSync(file, synthProxyChart(props).replace('minAvailable: 1', 'minAvailable: -1'));
      const bad = await fleet.kubectl(['apply', '--dry-run=server', '-f', file, '-o', 'name'], { kubeconfig, timeoutMs: 60_000 });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /minAvailable/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GIVEN the example\'s generated/ WHEN portcullis proxy manifests renders prod-eu THEN it carries the policy\'s issuers with their prefixes, the trusted key, the cluster\'s host name and the image, and the real apiserver accepts it (server-side dry run); a cluster not in the fleet is refused, exit 2', async () => {
    const fleet = await getTestFleet();
    const run = (args: readonly string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/portcullis.js'), 'proxy', 'manifests', ...args], { cwd: ROOT, encoding: 'utf8' });
    const r = run(['--image', 'ghcr.io/acme/portcullis:0.1.0', '--cluster', 'prod-eu', '--generated', join(ROOT, 'generated')]);
    assert.equal(r.status, 0, r.stderr);
    const objs = objects(r.stdout);
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'portcullis-proxy-config') as Obj & { data: Record<string, string> };
    const cfg = parseConfig(cm.data['config.yaml'] ?? '', '/');
    assert.deepEqual(cfg.clusters.map((c) => [c.name, c.hostnames]), [['prod-eu', ['prod-eu.portcullis.acme.example']]]);
    const issuers = (cfg.authn as { issuers: { issuer: string; usernamePrefix: string; audiences: string[] }[] }).issuers;
    assert.deepEqual(issuers.map((i) => [i.issuer, i.usernamePrefix, i.audiences]), [
      ['https://login.acme.example', 'oidc:', ['portcullis']],
      ['https://token.actions.githubusercontent.com', 'github:', ['portcullis']],
    ]);
    const keys = objs.find((o) => o.metadata.name === 'portcullis-proxy-keys') as Obj & { data: Record<string, string> };
    const keyFiles = readdirSync(join(ROOT, 'generated/keys'));
    assert.deepEqual(Object.keys(keys.data), keyFiles, 'the committed key, by its computed id');
    assert.match(r.stdout, /image: ghcr\.io\/acme\/portcullis:0\.1\.0/);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-manifests-'));
    try {
      const file = join(dir, 'chart.yaml');
      writeFileSync(file, r.stdout);
      const kubeconfig = fleet.cluster('prod-eu').adminKubeconfig;
      const ns = await fleet.kubectl(['create', 'namespace', PROXY_NAMESPACE], { kubeconfig });
      assert.ok(ns.code === 0 || /AlreadyExists/.test(ns.stderr), ns.stderr);
      const dry = await fleet.kubectl(['apply', '--dry-run=server', '-f', file, '-o', 'name'], { kubeconfig, timeoutMs: 60_000 });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /statefulset\.apps\/portcullis-proxy/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const unknown = run(['--image', 'x', '--cluster', 'prod-us', '--generated', join(ROOT, 'generated')]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /cluster prod-us is not in .*fleet\.json \(it has dev, prod-eu, staging\)/);
    assert.equal(unknown.stdout, '', 'nothing printed');
  });

  it('GIVEN the chart\'s shared-state Role, ConfigMaps and binding on a real cluster WHEN one replica activates break-glass or raises the revision floor THEN another sees it, with the ServiceAccount able to do nothing else there', async () => {
    const fleet = await getTestFleet();
    const cluster = fleet.cluster('staging');
    const kubeconfig = cluster.adminKubeconfig;
    // The chart's own objects, moved to a namespace of this test (the shared fleet's portcullis-system belongs to apply's tests).
    const ns = `bg-ha-${process.pid}`;
    const sa = 'portcullis-proxy';
    const mine = objects(synthProxyChart(props))
      .filter((o) => ['Role', 'RoleBinding'].includes(o.kind) || (o.kind === 'ConfigMap' && [BREAK_GLASS_CONFIGMAP, REVISION_FLOOR_CONFIGMAP].includes(o.metadata.name)))
      .map((o) => JSON.parse(JSON.stringify(o).replaceAll(`"namespace":"${PROXY_NAMESPACE}"`, `"namespace":"${ns}"`)) as Obj);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-bg-ha-'));
    try {
      assert.equal((await fleet.kubectl(['create', 'namespace', ns], { kubeconfig })).code, 0);
      assert.equal((await fleet.kubectl(['create', 'serviceaccount', sa, '-n', ns], { kubeconfig })).code, 0);
      const file = join(dir, 'objs.json');
      writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: mine }));
      const applied = await fleet.kubectl(['apply', '-f', file], { kubeconfig, timeoutMs: 60_000 });
      assert.equal(applied.code, 0, applied.stderr);
      const token = await fleet.kubectl(['create', 'token', sa, '-n', ns, '--duration=10m'], { kubeconfig });
      assert.equal(token.code, 0, token.stderr);
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, token.stdout.trim(), { mode: 0o600 });
      const can = async (...a: string[]) => (await fleet.kubectl(['auth', 'can-i', ...a, '-n', ns, '--as', `system:serviceaccount:${ns}:${sa}`], { kubeconfig })).stdout.trim();
      const loc = { serverUrl: cluster.server, ca: readFileSync(cluster.caFile), tokenFile, namespace: ns, name: BREAK_GLASS_CONFIGMAP };
      const replicaA = new ActivationStore(new ConfigMapActivations(loc));
      const replicaB = new ActivationStore(new ConfigMapActivations(loc));
      await replicaA.start();
      await replicaB.start();
      try {
        const now = Date.now();
        await replicaA.add({ cluster: 'staging', user: 'oidc:alice', grant: 'oncall-break-glass', reason: 'INC-1: payments down', activatedAt: now, expiresAt: now + 600_000 });
        await replicaB.refresh();
        assert.equal(replicaB.active('staging', 'oidc:alice').get('oncall-break-glass'), now + 600_000);
      } finally {
        replicaA.stop();
        replicaB.stop();
      }
      const floorLoc = { ...loc, name: REVISION_FLOOR_CONFIGMAP };
      const floor = { revision: 7, envelopeSha256: 'a'.repeat(64) };
      await new ConfigMapFloors(floorLoc).raise('staging', floor);
      await new ConfigMapFloors(floorLoc).raise('staging', { revision: 6, envelopeSha256: 'b'.repeat(64) });
      assert.deepEqual([...(await new ConfigMapFloors(floorLoc).load())], [['staging', floor]]);
      assert.equal(await can('update', `configmaps/${REVISION_FLOOR_CONFIGMAP}`), 'yes');
      // Least privilege, as the real RBAC answers it.
      assert.equal(await can('update', `configmaps/${BREAK_GLASS_CONFIGMAP}`), 'yes');
      assert.equal(await can('delete', `configmaps/${BREAK_GLASS_CONFIGMAP}`), 'no');
      assert.equal(await can('get', 'configmaps/portcullis-proxy-config'), 'no');
      assert.equal(await can('list', 'configmaps'), 'no');
    } finally {
      await fleet.kubectl(['delete', 'namespace', ns, '--wait=false'], { kubeconfig });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
