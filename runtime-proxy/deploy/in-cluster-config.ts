import type { IssuerConfig } from '../authn/index.ts';
import { AUDIT_MOUNT, METRICS_PORT, BREAK_GLASS_CONFIGMAP, BUNDLE_READER_MOUNT, KEYS_MOUNT, PROXY_NAMESPACE, REVISION_FLOOR_CONFIGMAP, TLS_MOUNT } from './proxy-chart.ts';

/** Inputs of `inClusterProxyConfig`. */
export interface InClusterConfigOptions {
  /** The cluster the proxy runs in and fronts. */
  readonly cluster: string;
  /** OIDC issuers (people, CI). */
  readonly issuers: readonly IssuerConfig[];
  /** Key ids of the trusted bundle keys (files `<id>.pub.pem` under KEYS_MOUNT). */
  readonly trustedKeyIds: readonly string[];
  /** Host names that reach the cluster at the root (docs/addressing.md). @default none: the /clusters prefix only */
  readonly hostnames?: readonly string[];
  /** @default 8443 */
  readonly port?: number;
}

const SA = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * A proxy configuration for the chart's pod fronting its own cluster: upstream
 * `kubernetes.default.svc` with the pod's ServiceAccount token (impersonate
 * only), the bundle from the watched ConfigMap with the bundle reader's token,
 * audit to stdout and a file, and break-glass activations and the revision
 * floor shared by all replicas through the chart's ConfigMaps (so an activation
 * holds whichever replica a request lands on, and no replica, restarted or new,
 * accepts a bundle older than one any of them accepted).
 */
export function inClusterProxyConfig(o: InClusterConfigOptions): Record<string, unknown> {
  return {
    listen: { host: '0.0.0.0', port: o.port ?? 8443 },
    // Plain HTTP for the scraper, apart from the public port (a NetworkPolicy should admit only it).
    metrics: { listen: { host: '0.0.0.0', port: METRICS_PORT } },
    tls: { certFile: `${TLS_MOUNT}/tls.crt`, keyFile: `${TLS_MOUNT}/tls.key` },
    clusters: [
      {
        name: o.cluster,
        ...(o.hostnames?.length ? { hostnames: [...o.hostnames] } : {}),
        upstream: { url: 'https://kubernetes.default.svc', caFile: `${SA}/ca.crt`, tokenFile: `${SA}/token` },
        bundle: { configMap: { tokenFile: `${BUNDLE_READER_MOUNT}/token` } },
        trustedKeyFiles: [...o.trustedKeyIds].sort().map((k) => `${KEYS_MOUNT}/${k}.pub.pem`),
      },
    ],
    authn: { issuers: o.issuers.map((i) => ({ ...i })) },
    audit: { stdout: true, file: { path: `${AUDIT_MOUNT}/audit.log` } },
    breakGlass: { configMap: { cluster: o.cluster, tokenFile: `${SA}/token`, namespace: PROXY_NAMESPACE, name: BREAK_GLASS_CONFIGMAP } },
    revisionFloor: { configMap: { cluster: o.cluster, tokenFile: `${SA}/token`, namespace: PROXY_NAMESPACE, name: REVISION_FLOOR_CONFIGMAP } },
  };
}
