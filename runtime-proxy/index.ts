/** The runtime proxy: configuration, the server and its pipeline stages. Authentication lives in ./authn. */
export { ConfigError, loadConfig, parseConfig, type AuditFailureMode, type BundleSourceConfig, type ClusterConfig, type ProxyConfig } from './config.ts';
export { PortcullisProxy, loadKeys, type ProxyOptions } from './server.ts';
export { authenticateStage, authorizeStage, parseRequestStage, route, type Admission, type ParsedRequest } from './pipeline.ts';
export { BundleStore, type ActiveBundle, type OfferResult } from './bundle-store.ts';
export { ProxyError, statusFor, type KubeStatus, type ProxyErrorCode } from './errors.ts';
export { buildUpstreamHeaders, type UpstreamIdentity } from './headers.ts';
export { StreamRegistry, type LiveStream, type StreamEndReason } from './streams.ts';
export { ActivationStore, checkBreakGlass, type Activation, type BreakGlassRequest } from './break-glass.ts';
export { DISCOVERY_GRANT } from './discovery.ts';
export { toAuditEvent, AuditSink, type AuditEvent } from './audit/index.ts';
export { runProxy, registerProxyCommands } from './cli.ts';
