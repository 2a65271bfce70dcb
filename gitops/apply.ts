import type { ClusterClient } from './kubectl.ts';
import type { KubeObject } from './objects.ts';
import type { ClusterPlan } from './plan.ts';

/** What fits in a ConfigMap's data (the API server caps an object at 1 MiB; leave room for metadata). */
const CONFIGMAP_LIMIT = 1_000_000;

/** What applying one cluster's plan did. */
export interface ApplyResult {
  readonly cluster: string;
  readonly ok: boolean;
  readonly applied: number;
  readonly deleted: number;
  /** Namespaces kept but no longer managed. */
  readonly released?: number;
  readonly bundleDelivered: boolean;
  /** Objects a dry run could not check because their namespace is only created by this apply. */
  readonly skipped: number;
  readonly error?: string;
  readonly seconds: number;
}

/** Options for applying. */
export interface ApplyOptions {
  /** Use the server's dry run: nothing is persisted. @default false */
  readonly dryRun?: boolean;
  /** Progress lines as they happen. @default no output */
  readonly onProgress?: (line: string) => void;
  /** The clock, for timings. @default Date.now */
  readonly now?: () => number;
  /** The git commit generated/ is applied from, recorded on the delivered bundle. @default none */
  readonly commit?: string;
}

/**
 * Applies one cluster's plan: creates and updates in apply order
 * (namespaces, service accounts and roles before bindings), then prunes in
 * reverse (bindings before roles before namespaces), then delivers the bundle
 * so the proxy reloads only once the RBAC under it is in place.
 */
export async function applyPlan(plan: ClusterPlan, client: ClusterClient, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const now = opts.now ?? Date.now;
  const t0 = now();
  const say = (s: string) => opts.onProgress?.(`[${plan.cluster}] ${s}`);
  const dryRun = opts.dryRun ?? false;
  if (plan.status === 'error') return { cluster: plan.cluster, ok: false, applied: 0, deleted: 0, bundleDelivered: false, skipped: 0, error: plan.error, seconds: 0 };
  let applied = 0;
  let deleted = 0;
  let skipped = 0;
  let released = 0;
  let bundleDelivered = false;
  try {
    // Refuse before changing anything if the bundle cannot be delivered at all.
    const bundleBytes = Object.values(plan.bundle.files).reduce((n, f) => n + Buffer.byteLength(f), 0);
    if (plan.bundle.changed && bundleBytes > CONFIGMAP_LIMIT) {
      throw new Error(`the bundle is ${bundleBytes} bytes, over a ConfigMap's ${CONFIGMAP_LIMIT}; nothing was applied (serve the bundle from a URL instead)`);
    }
    let upserts: KubeObject[] = plan.changes.filter((c) => c.action === 'create' || c.action === 'update').map((c) => c.object);
    const deletes = plan.changes.filter((c) => c.action === 'delete').map((c) => c.object);
    const releases = plan.changes.filter((c) => c.action === 'release').map((c) => c.object);
    if (dryRun) {
      // A server dry run cannot place an object in a namespace that only this apply creates.
      const creating = new Set(upserts.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
      const missing = new Set<string>();
      for (const ns of creating) if (!(await client.namespaceExists(ns))) missing.add(ns);
      const before = upserts.length;
      upserts = upserts.filter((o) => o.metadata.namespace === undefined || !missing.has(o.metadata.namespace));
      skipped = before - upserts.length;
    }
    if (upserts.length) {
      say(`applying ${upserts.length} object${upserts.length === 1 ? '' : 's'}${dryRun ? ' (server dry run)' : ''}…`);
      await client.apply(upserts, { dryRun });
      applied = upserts.length;
    }
    if (deletes.length) {
      say(`pruning ${deletes.length} object${deletes.length === 1 ? '' : 's'}${dryRun ? ' (server dry run)' : ''}…`);
      await client.delete(deletes, { dryRun });
      deleted = deletes.length;
    }
    if (releases.length) {
      say(`releasing ${releases.length} namespace${releases.length === 1 ? '' : 's'} (kept, no longer managed)${dryRun ? ' (server dry run)' : ''}…`);
      // Applying only the identity with the same field manager gives up the fields Portcullis owned.
      await client.apply(releases, { dryRun });
      released = releases.length;
    }
    if (plan.bundle.changed) {
      say(`delivering bundle revision ${plan.bundle.toRevision}${dryRun ? ' (server dry run)' : ''}…`);
      await client.deliverBundle(plan.bundle.files, { dryRun, ...(opts.commit !== undefined ? { commit: opts.commit } : {}) });
      bundleDelivered = true;
    }
    const seconds = (now() - t0) / 1000;
    say(`done in ${seconds.toFixed(1)}s`);
    return { cluster: plan.cluster, ok: true, applied, deleted, ...(released ? { released } : {}), bundleDelivered, skipped, seconds };
  } catch (e) {
    const seconds = (now() - t0) / 1000;
    const error = e instanceof Error ? e.message : String(e);
    say(`FAILED: ${error}`);
    return { cluster: plan.cluster, ok: false, applied, deleted, bundleDelivered, skipped, error, seconds };
  }
}

/** Runs tasks with at most `limit` at a time, keeping input order in the results. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(workers);
  return results;
}

/** The end-of-run summary, one line per cluster. */
export function renderApplySummary(results: readonly ApplyResult[], dryRun: boolean): string {
  const lines = results.map((r) =>
    r.ok
      ? `  ${r.cluster}: ok — ${r.applied} applied, ${r.deleted} pruned${r.released ? `, ${r.released} namespace${r.released === 1 ? '' : 's'} released` : ''}${r.bundleDelivered ? ', bundle delivered' : ''}${r.skipped ? `, ${r.skipped} not checked (namespace created by this apply)` : ''} (${r.seconds.toFixed(1)}s)`
      : `  ${r.cluster}: FAILED — ${r.error ?? 'unknown error'}`,
  );
  const failed = results.filter((r) => !r.ok).length;
  return `Apply${dryRun ? ' (dry run)' : ''} summary: ${results.length - failed} of ${results.length} clusters ok${failed ? `, ${failed} failed` : ''}\n${lines.join('\n')}\n`;
}
