export { ensureBinaries, checkGo, defaultBinCacheDir, binaryCacheKeys, KUBERNETES_VERSION, ETCD_VERSION } from './build.ts';
export type { SandboxBinaries, EnsureBinariesOptions } from './build.ts';
export { startCluster, clusterHealth, SANDBOX_USERS } from './cluster.ts';
export type { ClusterInfo, ClusterHealth, SandboxUser, StartClusterOptions } from './cluster.ts';
export { upFleet, downFleet, downFleetSync, fleetStatus, readFleet, fleetFile, clusterNames, DEFAULT_CLUSTER_NAMES } from './fleet.ts';
export type { SandboxFleet, UpOptions } from './fleet.ts';
export { SandboxError } from './errors.ts';
export type { SandboxErrorCode } from './errors.ts';
