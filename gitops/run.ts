import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BundleError, type TrustedKeys } from '../core/index.ts';
import { applyPlan, pool, type ApplyResult } from './apply.ts';
import { selectClusters, type Credentials } from './fleet.ts';
import { readClusterBundle, readGenerated, verifyGeneratedBundle, type FleetCluster, type Generated } from './generated.ts';
import { checkCommitCheckedOut } from './git.ts';
import { GitopsError } from './gitops-error.ts';
import { KubectlClient, readLive, type ClusterClient } from './kubectl.ts';
import { planCluster, type ClusterPlan, type Plan } from './plan.ts';

/** Everything plan and apply need to reach the fleet. */
export interface FleetOptions {
  /** The compiler's output. @default "generated" */
  readonly generatedDir: string;
  /** fleet.json to read clusters from. @default `<generatedDir>/fleet.json` */
  readonly fleetFile?: string;
  /** Cluster names and label selectors. @default every cluster */
  readonly selector?: string;
  /** Admin kubeconfig per cluster. */
  readonly credentials: Credentials;
  /** The kubectl binary. @default "kubectl" */
  readonly kubectl?: string;
  /** How many clusters at once. @default 4 */
  readonly concurrency?: number;
  /** The clock, for bundle expiry. @default Date.now */
  readonly now?: () => number;
  /**
   * The keys bundles must be signed with. @default the keys in `<generatedDir>/keys/`
   * (which whoever can change generated/ can also change: pin keys from elsewhere where that matters)
   */
  readonly trustedKeys?: TrustedKeys;
  /** Delete managed namespaces no longer generated instead of releasing them. @default false */
  readonly pruneNamespaces?: boolean;
  /** Builds the client for a cluster. @default kubectl with the cluster's kubeconfig */
  readonly clientFor?: (cluster: FleetCluster, kubeconfig: string) => ClusterClient;
}

async function planOne(opts: FleetOptions, gen: Generated, cluster: FleetCluster): Promise<{ plan: ClusterPlan; client?: ClusterClient }> {
  const fail = (error: string): { plan: ClusterPlan } => ({ plan: { cluster: cluster.name, status: 'error', error } });
  const cred = opts.credentials.get(cluster.name);
  if (!cred) return fail(`no credentials for ${cluster.name} in the fleet credentials file`);
  let bundle;
  try {
    bundle = await readClusterBundle(gen.dir, cluster.name);
  } catch (e) {
    return fail((e as Error).message);
  }
  const client = opts.clientFor ? opts.clientFor(cluster, cred.kubeconfig) : new KubectlClient(cluster.name, cred.kubeconfig, opts.kubectl ?? 'kubectl');
  let live;
  try {
    live = await readLive(client);
  } catch (e) {
    const msg = (e as Error).message;
    return fail(e instanceof GitopsError && e.code === 'CLUSTER_UNREACHABLE' ? `unreachable: ${msg}` : msg);
  }
  try {
    verifyGeneratedBundle(bundle, cluster.name, opts.trustedKeys ?? gen.keys, { revision: live.bundle?.revision ?? null, envelope: live.bundle?.envelope }, (opts.now ?? Date.now)());
  } catch (e) {
    if (e instanceof BundleError) return fail(`refusing generated/${cluster.name}: ${e.message}`);
    throw e;
  }
  return { plan: planCluster(bundle.desired, live, { pruneNamespaces: opts.pruneNamespaces ?? false }), client };
}

/** Plans every selected cluster; a cluster that fails is reported in the plan, never hides the others. */
export async function runPlan(opts: FleetOptions): Promise<Plan> {
  const gen = await readGenerated(opts.generatedDir, opts.fleetFile);
  const clusters = selectClusters(gen.clusters, opts.selector);
  const results = await pool(clusters, opts.concurrency ?? 4, (c) => planOne(opts, gen, c));
  return { clusters: results.map((r) => r.plan) };
}

/** Options for apply beyond reaching the fleet. */
export interface RunApplyOptions extends FleetOptions {
  readonly dryRun?: boolean;
  readonly onProgress?: (line: string) => void;
  /** The git commit generated/ is applied from, recorded on each delivered bundle; it must be what is checked out. */
  readonly commit?: string;
  /** Refuses when generated/ is stale relative to the policies. */
  readonly checkFresh: () => Promise<void>;
}

/**
 * Apply across the fleet: refuse a stale generated/, or one that is not the commit it is
 * delivered under; then per cluster plan (verified) and apply, bounded concurrency.
 */
export async function runApply(opts: RunApplyOptions): Promise<{ plan: Plan; results: ApplyResult[] }> {
  if (opts.commit !== undefined) await checkCommitCheckedOut(opts.generatedDir, opts.commit);
  await opts.checkFresh();
  const gen = await readGenerated(opts.generatedDir, opts.fleetFile);
  const clusters = selectClusters(gen.clusters, opts.selector);
  const say = opts.onProgress ?? (() => {});
  const out = await pool(clusters, opts.concurrency ?? 4, async (c) => {
    say(`[${c.name}] planning…`);
    const { plan, client } = await planOne(opts, gen, c);
    if (plan.status === 'error' || !client) {
      say(`[${c.name}] FAILED: ${plan.status === 'error' ? plan.error : 'no client'}`);
      return { plan, result: { cluster: c.name, ok: false, applied: 0, deleted: 0, bundleDelivered: false, skipped: 0, error: plan.status === 'error' ? plan.error : 'no client', seconds: 0 } };
    }
    const result = await applyPlan(plan, client, { dryRun: opts.dryRun ?? false, onProgress: say, ...(opts.commit !== undefined ? { commit: opts.commit } : {}) });
    return { plan, result };
  });
  return { plan: { clusters: out.map((o) => o.plan) }, results: out.map((o) => o.result) };
}

/**
 * The compiler's own staleness check: `portcullis compile --check` must exit
 * 0 for `policies/` against `generated/`. Anything else refuses the apply.
 */
export function compilerFreshnessCheck(policiesDir: string, generatedDir: string): () => Promise<void> {
  return () =>
    new Promise((resolvePromise, reject) => {
      const bin = fileURLToPath(new URL('../bin/portcullis.js', import.meta.url));
      const child = spawn(process.execPath, [bin, 'compile', '--check', '--no-typecheck', '--policies', policiesDir, '--out', generatedDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => out.push(b));
      child.on('error', (e) => reject(new GitopsError('GENERATED_STALE', `cannot run the compiler check: ${e.message}`)));
      child.on('close', (code) => {
        if (code === 0) return resolvePromise();
        const detail = Buffer.concat(out).toString('utf8').trim().split('\n').slice(-8).join('\n');
        reject(new GitopsError('GENERATED_STALE', `${generatedDir} is not what ${policiesDir} compiles to (compile --check exited ${code}); run \`portcullis compile\` and commit the result\n${detail}`));
      });
    });
}
