import { createHash } from 'node:crypto';
import { ApiObject, App, Chart, YamlOutputType } from 'cdk8s';
import type { Construct } from 'constructs';
import { stringify } from 'yaml';
import { BREAK_GLASS_CONFIGMAP, BUNDLE_CONFIGMAP, BUNDLE_READER, CLUSTER_LABEL, IMPERSONATOR_ROLE, MANAGED_BY, PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT, REVISION_FLOOR_CONFIGMAP } from '../../core/index.ts';

/** The names the chart shares with the compiler and the proxy's config defaults (core/names.ts). */
export { BREAK_GLASS_CONFIGMAP, BUNDLE_CONFIGMAP, BUNDLE_READER, IMPERSONATOR_ROLE, PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT, REVISION_FLOOR_CONFIGMAP };
/**
 * Where the bundle reader's token is mounted (`token`): the credential of the
 * ConfigMap bundle source, which reads and watches the bundle ConfigMap and nothing else.
 */
export const BUNDLE_READER_MOUNT = '/var/run/portcullis/bundle-reader';
/** The Secret the token controller fills with a token of the compiler's bundle-reader ServiceAccount. */
export const BUNDLE_READER_SECRET = `${BUNDLE_READER}-token`;
/** Where the configuration file is mounted; the proxy runs with `--config CONFIG_PATH`. */
export const CONFIG_PATH = '/etc/portcullis/config/config.yaml';
/** Where trusted bundle keys are mounted, one `<keyId>.pub.pem` each. */
export const KEYS_MOUNT = '/etc/portcullis/keys';
/** Where the serving certificate Secret (`tls.crt`, `tls.key`) is mounted. */
export const TLS_MOUNT = '/etc/portcullis/tls';
/** A writable directory for the audit file sink (the root file system is read-only). */
export const AUDIT_MOUNT = '/var/log/portcullis';
/** The metrics listener's port (plain HTTP: /metrics and the probes). */
export const METRICS_PORT = 9464;

/** Compute resources of the proxy container. */
export interface ProxyResources {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly memory: string; readonly cpu?: string };
}

/** Properties of the proxy's deployment chart. */
export interface ProxyChartProps {
  /** Container image whose entrypoint is the `portcullis` CLI. */
  readonly image: string;
  /** The proxy configuration (`portcullis proxy --config`), as its YAML document; stored in a ConfigMap. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Trusted Ed25519 bundle keys, key id → PEM, mounted under `KEYS_MOUNT`. */
  readonly trustedKeys: Readonly<Record<string, string>>;
  /** The cluster this chart is deployed to; the Namespace, ServiceAccount and binding carry the compiler's labels for it so `apply` and this chart agree on them. */
  readonly cluster: string;
  /** Replicas, each with its own audit volume; otherwise stateless. At least 2. @default 2 */
  readonly replicas?: number;
  /** Container port (HTTPS). @default 8443 */
  readonly port?: number;
  /** Secret with `tls.crt` and `tls.key` for serving. @default 'portcullis-proxy-tls' */
  readonly tlsSecretName?: string;
  /** @default requests 250m CPU / 256Mi, limit 512Mi memory */
  readonly resources?: ProxyResources;
  /** Each replica's audit volume (a PersistentVolumeClaim of its own). @default '10Gi' */
  readonly auditVolumeSize?: string;
  /** The audit volumes' StorageClass. @default the cluster's default */
  readonly auditStorageClass?: string;
  /** Service type. @default 'ClusterIP' */
  readonly serviceType?: 'ClusterIP' | 'LoadBalancer' | 'NodePort';
}

const RBAC = 'rbac.authorization.k8s.io';
const NAME = 'portcullis-proxy';
/** The headless Service that names the StatefulSet's pods. */
const PODS_SERVICE = `${NAME}-pods`;
const SELECTOR = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/instance': NAME } as const;

/**
 * The proxy itself as cdk8s objects: StatefulSet (≥ 2 replicas, an audit volume each, spread by
 * anti-affinity, probes on /readyz and /healthz, non-root, read-only root),
 * Service, PodDisruptionBudget, and its configuration and keys as ConfigMaps.
 * The replicas read the bundle from the ConfigMap `apply` delivers, through a
 * watch (a new bundle, a revocation, is in force within a second, with the
 * commit it was applied from), using a token of the compiler's bundle-reader
 * ServiceAccount. The proxy's own ServiceAccount is bound to exactly the
 * compiler's impersonate-only ClusterRole (the chart never defines that role:
 * its resourceNames come from the policy) and to one Role that lets the
 * replicas read and update the two ConfigMaps of their shared state
 * (break-glass activations, the revision floor), resourceNames-bound: get and
 * update, nothing else.
 */
export class ProxyChart extends Chart {
  constructor(scope: Construct, id: string, props: ProxyChartProps) {
    super(scope, id);
    const replicas = props.replicas ?? 2;
    if (!Number.isInteger(replicas) || replicas < 2) throw new Error(`replicas must be an integer ≥ 2, got ${replicas}`);
    const port = props.port ?? 8443;
    const tlsSecret = props.tlsSecretName ?? 'portcullis-proxy-tls';
    const resources = props.resources ?? { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } };
    // Shared with the compiler's rbac.yaml: same names, labels and content, so either may apply them.
    const shared = { [MANAGED_BY.key]: MANAGED_BY.value, [CLUSTER_LABEL]: props.cluster };
    const own = { ...SELECTOR, 'app.kubernetes.io/component': 'proxy', 'app.kubernetes.io/part-of': 'portcullis', [CLUSTER_LABEL]: props.cluster };

    const configYaml = stringify(props.config, { sortMapEntries: true, lineWidth: 0 });
    const keys = Object.fromEntries(Object.keys(props.trustedKeys).sort().map((k) => [`${k}.pub.pem`, props.trustedKeys[k] ?? '']));
    const checksum = createHash('sha256').update(configYaml).update(JSON.stringify(keys)).digest('hex');

    let n = 0;
    const add = (apiVersion: string, kind: string, metadata: Record<string, unknown>, rest: Record<string, unknown> = {}) =>
      new ApiObject(this, `o${n++}`, { apiVersion, kind, metadata, ...rest });

    add('v1', 'Namespace', { name: PROXY_NAMESPACE, labels: shared });
    add('v1', 'ServiceAccount', { name: PROXY_SERVICE_ACCOUNT, namespace: PROXY_NAMESPACE, labels: shared });
    add(`${RBAC}/v1`, 'ClusterRoleBinding', { name: IMPERSONATOR_ROLE, labels: shared }, {
      roleRef: { apiGroup: RBAC, kind: 'ClusterRole', name: IMPERSONATOR_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: PROXY_SERVICE_ACCOUNT, namespace: PROXY_NAMESPACE }],
    });
    add('v1', 'ConfigMap', { name: `${NAME}-config`, namespace: PROXY_NAMESPACE, labels: own }, { data: { 'config.yaml': configYaml } });
    add('v1', 'ConfigMap', { name: `${NAME}-keys`, namespace: PROXY_NAMESPACE, labels: own }, { data: keys });
    // State the replicas share: break-glass activations and the highest accepted bundle revision.
    // No `data` here: re-applying the chart leaves the replicas' entries alone.
    add('v1', 'ConfigMap', { name: BREAK_GLASS_CONFIGMAP, namespace: PROXY_NAMESPACE, labels: own });
    add('v1', 'ConfigMap', { name: REVISION_FLOOR_CONFIGMAP, namespace: PROXY_NAMESPACE, labels: own });
    add(`${RBAC}/v1`, 'Role', { name: `${NAME}:shared-state`, namespace: PROXY_NAMESPACE, labels: own }, {
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [BREAK_GLASS_CONFIGMAP, REVISION_FLOOR_CONFIGMAP], verbs: ['get', 'update'] }],
    });
    add(`${RBAC}/v1`, 'RoleBinding', { name: `${NAME}:shared-state`, namespace: PROXY_NAMESPACE, labels: own }, {
      roleRef: { apiGroup: RBAC, kind: 'Role', name: `${NAME}:shared-state` },
      subjects: [{ kind: 'ServiceAccount', name: PROXY_SERVICE_ACCOUNT, namespace: PROXY_NAMESPACE }],
    });
    // A long-lived token of the compiler's bundle-reader ServiceAccount (get/list/watch on the
    // bundle ConfigMap only), filled in by the token controller: the ConfigMap source's credential.
    add('v1', 'Secret', { name: BUNDLE_READER_SECRET, namespace: PROXY_NAMESPACE, labels: own, annotations: { 'kubernetes.io/service-account.name': BUNDLE_READER } }, {
      type: 'kubernetes.io/service-account-token',
    });

    const volumes: Record<string, unknown>[] = [
      { name: 'config', configMap: { name: `${NAME}-config` } },
      { name: 'keys', configMap: { name: `${NAME}-keys` } },
      { name: 'tls', secret: { secretName: tlsSecret } },
      { name: 'bundle-reader', secret: { secretName: BUNDLE_READER_SECRET, items: [{ key: 'token', path: 'token' }] } },
      { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ];
    const mounts: Record<string, unknown>[] = [
      { name: 'config', mountPath: '/etc/portcullis/config', readOnly: true },
      { name: 'keys', mountPath: KEYS_MOUNT, readOnly: true },
      { name: 'tls', mountPath: TLS_MOUNT, readOnly: true },
      { name: 'bundle-reader', mountPath: BUNDLE_READER_MOUNT, readOnly: true },
      { name: 'audit', mountPath: AUDIT_MOUNT },
      { name: 'tmp', mountPath: '/tmp' },
    ];
    const probe = (path: string, period: number, failures: number) => ({
      httpGet: { path, port: 'https', scheme: 'HTTPS' },
      periodSeconds: period,
      timeoutSeconds: 2,
      failureThreshold: failures,
    });

    // A StatefulSet so that each replica keeps its audit log on a volume of its own: the hash
    // chain continues across restarts and the records outlive the pod (issue 15; not an emptyDir).
    add('v1', 'Service', { name: PODS_SERVICE, namespace: PROXY_NAMESPACE, labels: own }, {
      spec: { clusterIP: 'None', selector: SELECTOR, ports: [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }] },
    });
    add('apps/v1', 'StatefulSet', { name: NAME, namespace: PROXY_NAMESPACE, labels: own }, {
      spec: {
        replicas,
        revisionHistoryLimit: 5,
        serviceName: PODS_SERVICE,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: SELECTOR },
        updateStrategy: { type: 'RollingUpdate' },
        // Scaling down or deleting the proxy never deletes an audit log.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        volumeClaimTemplates: [
          {
            metadata: { name: 'audit', labels: own },
            spec: {
              accessModes: ['ReadWriteOnce'],
              resources: { requests: { storage: props.auditVolumeSize ?? '10Gi' } },
              ...(props.auditStorageClass !== undefined ? { storageClassName: props.auditStorageClass } : {}),
            },
          },
        ],
        template: {
          metadata: { labels: own, annotations: { 'portcullis.dev/config-sha256': checksum } },
          spec: {
            serviceAccountName: PROXY_SERVICE_ACCOUNT,
            automountServiceAccountToken: true,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 45,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            affinity: {
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [
                  { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: SELECTOR }, topologyKey: 'kubernetes.io/hostname' } },
                ],
              },
            },
            topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: SELECTOR } }],
            containers: [
              {
                name: 'proxy',
                image: props.image,
                imagePullPolicy: 'IfNotPresent',
                args: ['proxy', '--config', CONFIG_PATH],
                ports: [
                  { name: 'https', containerPort: port, protocol: 'TCP' },
                  { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
                ],
                readinessProbe: probe('/readyz', 5, 2),
                livenessProbe: { ...probe('/healthz', 10, 3), initialDelaySeconds: 5 },
                resources,
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: mounts,
              },
            ],
            volumes,
          },
        },
      },
    });

    add('v1', 'Service', { name: NAME, namespace: PROXY_NAMESPACE, labels: own }, {
      spec: { type: props.serviceType ?? 'ClusterIP', selector: SELECTOR, ports: [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }] },
    });
    add('policy/v1', 'PodDisruptionBudget', { name: NAME, namespace: PROXY_NAMESPACE, labels: own }, {
      spec: { minAvailable: 1, selector: { matchLabels: SELECTOR } },
    });
  }
}

/** Synthesizes the proxy's chart to YAML (a multi-document stream). Deterministic: same props, same bytes. */
export function synthProxyChart(props: ProxyChartProps): string {
  const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_APP });
  new ProxyChart(app, 'portcullis-proxy', props);
  return app.synthYaml();
}
