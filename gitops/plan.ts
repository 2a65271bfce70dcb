import { createTwoFilesPatch } from 'diff';
import { stringify } from 'yaml';
import { canonicalJson, CLUSTER_LABEL, MANAGED_BY, type RuleSet } from '../core/index.ts';
import { diffAccess, type AccessChange } from '../core/access-diff.ts';
import { MANAGED_KINDS, applyOrder, groupOf, normalizeDesired, normalizeLive, objectKey, objectRef, type KubeObject } from './objects.ts';

/** The bundle files delivered to a cluster, by name (`rbac.yaml`, `rules.json`, `bundle.sig.json`). */
export type BundleFiles = Readonly<Record<string, string>>;

/** What `generated/<cluster>/` says a cluster should look like. */
export interface DesiredCluster {
  readonly name: string;
  readonly objects: readonly KubeObject[];
  readonly ruleSet: RuleSet;
  readonly bundle: { readonly revision: number; readonly files: BundleFiles };
}

/** What a cluster looks like now: its managed objects and the bundle its proxy serves (null if none). */
export interface LiveCluster {
  readonly name: string;
  readonly objects: readonly KubeObject[];
  readonly bundle: { readonly revision: number | null; readonly files: BundleFiles; readonly ruleSet: RuleSet | undefined } | null;
}

/** One object to create, update or delete, with a unified diff of its normalised YAML. */
export interface ObjectChange {
  /**
   * `release`: a managed Namespace no longer generated is kept, and Portcullis
   * gives up its fields (labels) so it stops managing it — deleting a
   * namespace deletes everything in it. `delete` for namespaces only with
   * `pruneNamespaces`.
   */
  readonly action: 'create' | 'update' | 'delete' | 'release';
  readonly key: string;
  readonly ref: string;
  readonly kind: string;
  /** The object to apply (create/update) or to delete (delete). */
  readonly object: KubeObject;
  readonly diff: string;
}

/** The bundle delivery: unchanged when every file matches what is live. */
export interface BundleChange {
  readonly changed: boolean;
  readonly fromRevision: number | null;
  readonly toRevision: number;
  readonly files: BundleFiles;
}

/** The plan for one cluster, or why there is none. */
export type ClusterPlan =
  | {
      readonly cluster: string;
      readonly status: 'ok';
      readonly access: readonly AccessChange[];
      readonly changes: readonly ObjectChange[];
      readonly unchanged: number;
      readonly bundle: BundleChange;
    }
  | { readonly cluster: string; readonly status: 'error'; readonly error: string };

/** The plan for the selected clusters. */
export interface Plan {
  readonly clusters: readonly ClusterPlan[];
}

/** Options for planning. */
export interface PlanOptions {
  /** Delete managed namespaces that are no longer generated, with everything in them, instead of releasing them. @default false */
  readonly pruneNamespaces?: boolean;
}

/**
 * Compares one cluster's desired and live state. Pure: changes come in apply
 * order (creates and updates by kind rank, then deletes in reverse rank, so
 * bindings go before the roles they use, then namespace releases).
 */
export function planCluster(desired: DesiredCluster, live: LiveCluster, opts: PlanOptions = {}): ClusterPlan {
  // An object plan cannot find again (unmanaged kind, no managed-by label) would be created on every apply and never pruned.
  const bad = desired.objects.flatMap((o) => {
    const why: string[] = [];
    if (!MANAGED_KINDS.some((k) => k.kind === o.kind && k.group === groupOf(o.apiVersion))) why.push(`kind ${o.kind} is not one apply manages`);
    if (o.metadata.labels?.[MANAGED_BY.key] !== MANAGED_BY.value) why.push(`it lacks the label ${MANAGED_BY.key}=${MANAGED_BY.value}`);
    if (o.metadata.labels?.[CLUSTER_LABEL] !== desired.name) why.push(`its ${CLUSTER_LABEL} label is not ${desired.name}`);
    return why.length ? [`${objectRef(o)}: ${why.join(', ')}`] : [];
  });
  if (bad.length) return { cluster: desired.name, status: 'error', error: `generated/${desired.name}/rbac.yaml: ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? ` (and ${bad.length - 5} more)` : ''}` };
  const liveByKey = new Map<string, KubeObject>();
  for (const o of live.objects) liveByKey.set(objectKey(o), o);
  const desiredKeys = new Set<string>();
  const upserts: ObjectChange[] = [];
  let unchanged = 0;
  for (const raw of [...desired.objects].sort(applyOrder)) {
    const want = normalizeDesired(raw);
    const key = objectKey(want);
    desiredKeys.add(key);
    const cur = liveByKey.get(key);
    if (cur === undefined) {
      upserts.push({ action: 'create', key, ref: objectRef(want), kind: want.kind, object: want, diff: unified(objectRef(want), undefined, want) });
      continue;
    }
    const have = normalizeLive(cur, want);
    if (canonicalJson(have) === canonicalJson(want)) unchanged++;
    else upserts.push({ action: 'update', key, ref: objectRef(want), kind: want.kind, object: want, diff: unified(objectRef(want), have, want) });
  }
  const deletes: ObjectChange[] = [];
  const releases: ObjectChange[] = [];
  for (const cur of [...live.objects].sort(applyOrder).reverse()) {
    const key = objectKey(cur);
    if (desiredKeys.has(key)) continue;
    const have = normalizeLive(cur, undefined);
    if (have.kind === 'Namespace' && !opts.pruneNamespaces) {
      // Applying just the identity with our field manager gives up every field we owned.
      const bare: KubeObject = { apiVersion: have.apiVersion, kind: have.kind, metadata: { name: have.metadata.name } };
      releases.push({ action: 'release', key, ref: objectRef(have), kind: have.kind, object: bare, diff: unified(objectRef(have), have, bare) });
    } else deletes.push({ action: 'delete', key, ref: objectRef(have), kind: have.kind, object: have, diff: unified(objectRef(have), have, undefined) });
  }
  const fromRevision = live.bundle?.revision ?? null;
  const changed = !sameFiles(desired.bundle.files, live.bundle?.files);
  return {
    cluster: desired.name,
    status: 'ok',
    access: diffAccess(live.bundle?.ruleSet, desired.ruleSet),
    changes: [...upserts, ...deletes, ...releases],
    unchanged,
    bundle: { changed, fromRevision, toRevision: desired.bundle.revision, files: desired.bundle.files },
  };
}

/**
 * Plans the fleet: each desired cluster against its live state, or the reason
 * its live state could not be read (the cluster is reported, the others are
 * still planned). Pure.
 */
export function plan(desired: readonly DesiredCluster[], live: ReadonlyMap<string, LiveCluster | { readonly error: string }>, opts: PlanOptions = {}): Plan {
  return {
    clusters: desired.map((d): ClusterPlan => {
      const l = live.get(d.name);
      if (l === undefined) return { cluster: d.name, status: 'error', error: 'no live state' };
      if ('error' in l) return { cluster: d.name, status: 'error', error: l.error };
      return planCluster(d, l, opts);
    }),
  };
}

/** Whether applying the plan would change anything. */
export function hasChanges(p: ClusterPlan): boolean {
  return p.status === 'ok' && (p.changes.length > 0 || p.bundle.changed);
}

/** `kubectl diff`-style exit status: 0 no changes, 2 changes, 1 any cluster failed. */
export function planExitCode(plan: Plan): 0 | 1 | 2 {
  if (plan.clusters.some((c) => c.status === 'error')) return 1;
  return plan.clusters.some(hasChanges) ? 2 : 0;
}

/** Counts per action, for summaries. */
export function countChanges(p: ClusterPlan): { create: number; update: number; delete: number; release: number } {
  const n = { create: 0, update: 0, delete: 0, release: 0 };
  if (p.status === 'ok') for (const c of p.changes) n[c.action]++;
  return n;
}

function sameFiles(a: BundleFiles, b: BundleFiles | undefined): boolean {
  if (b === undefined) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

function unified(ref: string, before: KubeObject | undefined, after: KubeObject | undefined): string {
  const a = before === undefined ? '' : stringify(before, { sortMapEntries: true, lineWidth: 0 });
  const b = after === undefined ? '' : stringify(after, { sortMapEntries: true, lineWidth: 0 });
  const patch = createTwoFilesPatch(before ? `live/${ref}` : '/dev/null', after ? `generated/${ref}` : '/dev/null', a, b, '', '', { context: 3 });
  // Drop the `===` banner line; keep the ---/+++ headers and hunks.
  return patch
    .split('\n')
    .filter((l) => !/^={10,}$/.test(l))
    .join('\n')
    .trimEnd();
}
