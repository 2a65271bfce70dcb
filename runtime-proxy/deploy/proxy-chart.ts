import { createHash } from 'node:crypto';
import { ApiObject, App, Chart, YamlOutputType } from 'cdk8s';
import type { Construct } from 'constructs';
import { stringify } from 'yaml';
import { BREAK_GLASS_CONFIGMAP, BUNDLE_CONFIGMAP, CLUSTER_LABEL, IMPERSONATOR_ROLE, MANAGED_BY, PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT } from '../../core/index.ts';

/** The names the chart shares with the compiler and the proxy's config defaults (core/names.ts). */
export { BREAK_GLASS_CONFIGMAP, BUNDLE_CONFIGMAP, IMPERSONATOR_ROLE, PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT };
/** Where the bundle ConfigMap is mounted; point the local cluster's `bundle.directory` here. */
export const BUNDLE_MOUNT = '/var/run/portcullis/bundle';
/** Where the configuration file is mounted; the proxy runs with `--config CONFIG_PATH`. */
export const CONFIG_PATH = '/etc/portcullis/config/config.yaml';
/** Where trusted bundle keys are mounted, one `<keyId>.pub.pem` each. */
export const KEYS_MOUNT = '/etc/portcullis/keys';
/** Where the serving certificate Secret (`tls.crt`, `tls.key`) is mounted. */
export const TLS_MOUNT = '/etc/portcullis/tls';
/** A writable directory for the audit file sink (the root file system is read-only). */
export const AUDIT_MOUNT = '/var/log/portcullis';

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
  /** Replicas; stateless, so scale freely. At least 2. @default 2 */
  readonly replicas?: number;
  /** Container port (HTTPS). @default 8443 */
  readonly port?: number;
  /** Secret with `tls.crt` and `tls.key` for serving. @default 'portcullis-proxy-tls' */
  readonly tlsSecretName?: string;
  /** Mount the bundle ConfigMap `portcullis-bundle` at `BUNDLE_MOUNT`. @default true */
  readonly mountBundleConfigMap?: boolean;
  /** @default requests 250m CPU / 256Mi, limit 512Mi memory */
  readonly resources?: ProxyResources;
  /** Service type. @default 'ClusterIP' */
  readonly serviceType?: 'ClusterIP' | 'LoadBalancer' | 'NodePort';
}

const RBAC = 'rbac.authorization.k8s.io';
const NAME = 'portcullis-proxy';
const SELECTOR = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/instance': NAME } as const;

/**
 * The proxy itself as cdk8s objects: Deployment (≥ 2 replicas, spread by
 * anti-affinity, probes on /readyz and /healthz, non-root, read-only root),
 * Service, PodDisruptionBudget, its configuration and keys as ConfigMaps and
 * the bundle ConfigMap mounted as a volume (kubelet delivers it, so reading
 * the bundle needs no API credential at all). The ServiceAccount is bound to
 * exactly the compiler's impersonate-only ClusterRole; the chart never
 * defines that role (its resourceNames come from the policy). Its one Role
 * lets the replicas read and update the single ConfigMap in which they share
 * break-glass activations (resourceNames-bound: get and update, nothing else),
 * so an activation through one replica holds on every replica.
 */
export class ProxyChart extends Chart {
  constructor(scope: Construct, id: string, props: ProxyChartProps) {
    super(scope, id);
    const replicas = props.replicas ?? 2;
    if (!Number.isInteger(replicas) || replicas < 2) throw new Error(`replicas must be an integer ≥ 2, got ${replicas}`);
    const port = props.port ?? 8443;
    const tlsSecret = props.tlsSecretName ?? 'portcullis-proxy-tls';
    const mountBundle = props.mountBundleConfigMap ?? true;
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
    // Shared break-glass state. No `data` here: re-applying the chart leaves the replicas' entries alone.
    add('v1', 'ConfigMap', { name: BREAK_GLASS_CONFIGMAP, namespace: PROXY_NAMESPACE, labels: own });
    add(`${RBAC}/v1`, 'Role', { name: `${NAME}:break-glass-state`, namespace: PROXY_NAMESPACE, labels: own }, {
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [BREAK_GLASS_CONFIGMAP], verbs: ['get', 'update'] }],
    });
    add(`${RBAC}/v1`, 'RoleBinding', { name: `${NAME}:break-glass-state`, namespace: PROXY_NAMESPACE, labels: own }, {
      roleRef: { apiGroup: RBAC, kind: 'Role', name: `${NAME}:break-glass-state` },
      subjects: [{ kind: 'ServiceAccount', name: PROXY_SERVICE_ACCOUNT, namespace: PROXY_NAMESPACE }],
    });

    const volumes: Record<string, unknown>[] = [
      { name: 'config', configMap: { name: `${NAME}-config` } },
      { name: 'keys', configMap: { name: `${NAME}-keys` } },
      { name: 'tls', secret: { secretName: tlsSecret } },
      { name: 'audit', emptyDir: { sizeLimit: '1Gi' } },
      { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ];
    const mounts: Record<string, unknown>[] = [
      { name: 'config', mountPath: '/etc/portcullis/config', readOnly: true },
      { name: 'keys', mountPath: KEYS_MOUNT, readOnly: true },
      { name: 'tls', mountPath: TLS_MOUNT, readOnly: true },
      { name: 'audit', mountPath: AUDIT_MOUNT },
      { name: 'tmp', mountPath: '/tmp' },
    ];
    if (mountBundle) {
      // optional: until the first `apply` delivers a bundle the pod starts, stays not-ready and denies everything.
      volumes.push({ name: 'bundle', configMap: { name: BUNDLE_CONFIGMAP, optional: true } });
      mounts.push({ name: 'bundle', mountPath: BUNDLE_MOUNT, readOnly: true });
    }
    const probe = (path: string, period: number, failures: number) => ({
      httpGet: { path, port: 'https', scheme: 'HTTPS' },
      periodSeconds: period,
      timeoutSeconds: 2,
      failureThreshold: failures,
    });

    add('apps/v1', 'Deployment', { name: NAME, namespace: PROXY_NAMESPACE, labels: own }, {
      spec: {
        replicas,
        revisionHistoryLimit: 5,
        selector: { matchLabels: SELECTOR },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
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
                ports: [{ name: 'https', containerPort: port, protocol: 'TCP' }],
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
