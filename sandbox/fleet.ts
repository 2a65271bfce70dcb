import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { ensureBinaries, KUBERNETES_VERSION, ETCD_VERSION, type SandboxBinaries } from './build.ts';
import { clusterHealth, startCluster, type ClusterHealth, type ClusterInfo } from './cluster.ts';
import { SandboxError } from './errors.ts';
import { isOurs, killProcessesSync, recordedUnder, stopProcesses } from './processes.ts';

/** The example fleet's cluster names; `sandbox up --clusters N` (N ≤ 3) uses the first N. */
export const DEFAULT_CLUSTER_NAMES = ['dev', 'staging', 'prod-eu'] as const;

/** Contents of `<dir>/fleet.json`, written by `sandbox up` and read by plan, apply, proxy and tests. */
export interface SandboxFleet {
  readonly version: 1;
  readonly dir: string;
  readonly kubernetesVersion: string;
  readonly etcdVersion: string;
  readonly bin: SandboxBinaries;
  /** One kubeconfig with an admin context per cluster, named after the cluster. */
  readonly kubeconfig: string;
  readonly clusters: readonly ClusterInfo[];
}

interface KubeconfigDoc {
  clusters: unknown[];
  users: unknown[];
  contexts: unknown[];
}

/** Merges the clusters' admin kubeconfigs (each already names its cluster, user and context after the cluster). */
function mergedKubeconfig(clusters: readonly ClusterInfo[]): string {
  const docs = clusters.map((c) => parse(readFileSync(c.adminKubeconfig, 'utf8')) as KubeconfigDoc);
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: docs.flatMap((d) => d.clusters),
    users: docs.flatMap((d) => d.users),
    contexts: docs.flatMap((d) => d.contexts),
    'current-context': clusters[0]?.name ?? '',
    preferences: {},
  });
}

/** Options for {@link upFleet}. */
export interface UpOptions {
  /** Sandbox state directory. @default `.sandbox` in the current directory */
  readonly dir?: string;
  /** Number of clusters. @default 3 */
  readonly clusters?: number;
  /** Explicit cluster names (overrides `clusters`). */
  readonly names?: readonly string[];
  readonly log?: (message: string) => void;
  /** Pid of the process responsible for stopping this sandbox (recorded in `owner.pid`, so an orphan can be found and stopped). */
  readonly ownerPid?: number;
}

/** The fleet file's path inside a sandbox directory. */
export function fleetFile(dir: string): string {
  return join(resolve(dir), 'fleet.json');
}

/** Cluster names for N clusters: the example fleet's names, then cluster-4, cluster-5, … */
export function clusterNames(n: number): string[] {
  if (!Number.isInteger(n) || n < 1 || n > 10) {
    throw new SandboxError('SANDBOX_BAD_STATE', `--clusters must be an integer from 1 to 10, got ${n}`);
  }
  return Array.from({ length: n }, (_, i) => DEFAULT_CLUSTER_NAMES[i] ?? `cluster-${i + 1}`);
}

/** Reads a fleet file; throws SANDBOX_NOT_RUNNING when there is none. */
export function readFleet(dirOrFile: string): SandboxFleet {
  const file = dirOrFile.endsWith('.json') ? resolve(dirOrFile) : fleetFile(dirOrFile);
  if (!existsSync(file)) {
    throw new SandboxError('SANDBOX_NOT_RUNNING', `no sandbox at ${file}; start one with \`portcullis sandbox up\``);
  }
  const fleet = JSON.parse(readFileSync(file, 'utf8')) as SandboxFleet;
  if (fleet.version !== 1 || !Array.isArray(fleet.clusters)) {
    throw new SandboxError('SANDBOX_BAD_STATE', `${file} is not a sandbox fleet file (version 1)`);
  }
  return fleet;
}

/**
 * Starts a fleet of sandbox clusters in `dir` (building the binaries first if
 * the cache lacks them) and writes `<dir>/fleet.json`. Refuses to start over a
 * running sandbox; a dead one's leftovers are cleaned up first. If any cluster
 * fails to start, everything started is stopped again.
 */
export async function upFleet(options: UpOptions = {}): Promise<SandboxFleet> {
  const dir = resolve(options.dir ?? '.sandbox');
  const log = options.log ?? ((m: string) => process.stderr.write(`[sandbox] ${m}\n`));
  const names = options.names ? [...options.names] : clusterNames(options.clusters ?? 3);
  const leftovers = recordedUnder(dir);
  if (leftovers.some(isOurs)) {
    throw new SandboxError('SANDBOX_BAD_STATE', `a sandbox is already running in ${dir}; stop it with \`portcullis sandbox down --dir ${dir}\``);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (options.ownerPid !== undefined) writeFileSync(join(dir, 'owner.pid'), String(options.ownerPid));
  const bin = await ensureBinaries({ log });
  const t0 = Date.now();
  log(`starting ${names.length} cluster(s) in ${dir}: ${names.join(', ')}`);
  const results = await Promise.allSettled(names.map((name) => startWithRetry(name, join(dir, name), bin, log)));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    await stopProcesses(recordedUnder(dir).reverse());
    throw failed[0]?.reason instanceof Error ? failed[0].reason : new SandboxError('SANDBOX_START', String(failed[0]?.reason));
  }
  const clusters = results.map((r) => (r as PromiseFulfilledResult<ClusterInfo>).value);
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, mergedKubeconfig(clusters), { mode: 0o600 });
  const fleet: SandboxFleet = { version: 1, dir, kubernetesVersion: KUBERNETES_VERSION, etcdVersion: ETCD_VERSION, bin, kubeconfig, clusters };
  const tmp = `${fleetFile(dir)}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(fleet, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, fleetFile(dir));
  log(`fleet ready in ${((Date.now() - t0) / 1000).toFixed(1)}s → ${fleetFile(dir)}`);
  return fleet;
}

/**
 * Starts one cluster, retrying with fresh ports: the ports are picked free but
 * bound a moment later by etcd, the apiserver and the kubelet, and other
 * processes on the machine may take one in between.
 */
async function startWithRetry(name: string, dir: string, bin: SandboxBinaries, log: (m: string) => void): Promise<ClusterInfo> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCluster({ name, dir, bin });
    } catch (err) {
      if (attempt >= 3 || !(err instanceof SandboxError) || err.code !== 'SANDBOX_START') throw err;
      log(`cluster ${name} failed to start (${err.message.split('\n')[0]}); retrying with fresh ports`);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Stops every process recorded under `dir` (even of a half-started fleet) and removes the directory. */
export async function downFleet(dirOrFile: string = '.sandbox'): Promise<number> {
  const dir = resolve(dirOrFile.endsWith('.json') ? join(dirOrFile, '..') : dirOrFile);
  const procs = recordedUnder(dir);
  // Stop the kubelets and controllers before the apiservers, the apiservers before etcd.
  const order = ['fake-kubelet', 'controllers', 'kube-apiserver', 'etcd'];
  const rank = (role: string) => {
    const i = order.indexOf(role);
    return i < 0 ? order.length : i;
  };
  const live = procs.filter(isOurs);
  for (const role of [...new Set(procs.map((p) => p.role))].sort((a, b) => rank(a) - rank(b))) {
    await stopProcesses(live.filter((p) => p.role === role));
  }
  const ours = existsSync(fleetFile(dir)) || existsSync(join(dir, 'owner.pid')) || procs.length > 0;
  if (existsSync(dir) && ours) rmSync(dir, { recursive: true, force: true });
  return live.length;
}

/** Synchronous teardown for `exit` handlers: SIGKILL every recorded process group, remove the directory. */
export function downFleetSync(dir: string): void {
  killProcessesSync(recordedUnder(dir));
  rmSync(dir, { recursive: true, force: true });
}

/** Health of every cluster of a running sandbox. */
export async function fleetStatus(dir: string = '.sandbox'): Promise<ClusterHealth[]> {
  const fleet = readFleet(dir);
  return Promise.all(fleet.clusters.map(clusterHealth));
}
