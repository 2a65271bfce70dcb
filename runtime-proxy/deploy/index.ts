/** The cdk8s chart that deploys the Portcullis proxy itself. */
export {
  AUDIT_MOUNT,
  BREAK_GLASS_CONFIGMAP,
  BUNDLE_CONFIGMAP,
  BUNDLE_READER,
  BUNDLE_READER_MOUNT,
  BUNDLE_READER_SECRET,
  CONFIG_PATH,
  IMPERSONATOR_ROLE,
  KEYS_MOUNT,
  PROXY_NAMESPACE,
  PROXY_SERVICE_ACCOUNT,
  REVISION_FLOOR_CONFIGMAP,
  ProxyChart,
  TLS_MOUNT,
  synthProxyChart,
  type ProxyChartProps,
  type ProxyResources,
} from './proxy-chart.ts';
export { inClusterProxyConfig, type InClusterConfigOptions } from './in-cluster-config.ts';
export { proxyManifests, type ManifestsOptions } from './manifests.ts';
