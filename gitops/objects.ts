/**
 * Kubernetes objects as plan and apply see them: identity, the kinds Portcullis
 * manages, their safe order, and normalisation so a desired object and the
 * live one compare equal exactly when server-side apply would change nothing.
 */

/** A Kubernetes object as plain JSON. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly [k: string]: unknown;
  };
  readonly [k: string]: unknown;
}

/** The field manager of every server-side apply Portcullis does. */
export const FIELD_MANAGER = 'portcullis';

/**
 * The managed kinds in apply order: namespaces first, service accounts and
 * roles before the bindings that use them. Prune runs in reverse.
 */
export const MANAGED_KINDS: readonly { readonly kind: string; readonly group: string; readonly resource: string; readonly namespaced: boolean }[] = [
  { kind: 'Namespace', group: '', resource: 'namespaces', namespaced: false },
  { kind: 'ServiceAccount', group: '', resource: 'serviceaccounts', namespaced: true },
  { kind: 'ClusterRole', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', namespaced: false },
  { kind: 'Role', group: 'rbac.authorization.k8s.io', resource: 'roles', namespaced: true },
  { kind: 'ClusterRoleBinding', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', namespaced: false },
  { kind: 'RoleBinding', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespaced: true },
];

/** Where a kind sits in the apply order; unknown kinds go last. */
export function kindRank(kind: string): number {
  const i = MANAGED_KINDS.findIndex((k) => k.kind === kind);
  return i < 0 ? MANAGED_KINDS.length : i;
}

/** The API group of an apiVersion (`v1` → ``, `rbac.authorization.k8s.io/v1` → that group). */
export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** An object's identity: group, kind, namespace and name (the version is not part of it). */
export function objectKey(o: KubeObject): string {
  return `${groupOf(o.apiVersion)}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** A readable reference, e.g. `RoleBinding team-a/viewers` or `ClusterRole view-all`. */
export function objectRef(o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** Sorts objects into apply order: by kind rank, then namespace, then name. */
export function applyOrder(a: KubeObject, b: KubeObject): number {
  return kindRank(a.kind) - kindRank(b.kind) || cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || cmp(a.metadata.name, b.metadata.name);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type FieldSet = { readonly [k: string]: FieldSet };

/** Metadata the server sets; never part of what Portcullis declares. */
const SERVER_METADATA = new Set([
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'managedFields',
  'generation',
  'selfLink',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'generateName',
  'ownerReferences',
  'finalizers',
]);

/**
 * The desired object in canonical form: server-set fields dropped, empty
 * values removed, and the defaults the API server would fill in filled in
 * (mirrors SetDefaults_Subject in pkg/apis/rbac/v1/defaults.go).
 */
export function normalizeDesired(o: KubeObject): KubeObject {
  return clean(defaults(strip(o as unknown as Json))) as unknown as KubeObject;
}

/**
 * The live object in canonical form, projected onto what Portcullis declares:
 * the fields of the desired object plus the fields the `portcullis` field
 * manager owns (so a label Portcullis stops declaring shows as removed), and
 * nothing else (a label another tool added, `status`, a namespace's
 * `spec.finalizers`). Lists are compared whole: RBAC's `rules` and `subjects`
 * are atomic lists, which a forced server-side apply replaces whole.
 */
export function normalizeLive(live: KubeObject, desired: KubeObject | undefined): KubeObject {
  const owned = ownedFields(live);
  const base = strip(live as unknown as Json);
  const projected = desired === undefined && owned === undefined ? base : project(base, desired as unknown as Json | undefined, owned, 0);
  return clean(projected) as unknown as KubeObject;
}

/** The fields the `portcullis` manager owns through apply, from `metadata.managedFields` (fieldsV1). */
function ownedFields(live: KubeObject): FieldSet | undefined {
  const mf = live.metadata['managedFields'];
  if (!Array.isArray(mf)) return undefined;
  for (const e of mf as { manager?: unknown; operation?: unknown; fieldsType?: unknown; fieldsV1?: unknown }[]) {
    if (e.manager === FIELD_MANAGER && e.operation === 'Apply' && e.fieldsType === 'FieldsV1' && isObject(e.fieldsV1 as Json)) {
      return e.fieldsV1 as FieldSet;
    }
  }
  return undefined;
}

function project(live: Json, desired: Json | undefined, owned: FieldSet | undefined, depth: number): Json {
  if (!isObject(live)) return live;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(live)) {
    // Identity is always compared.
    const identity = depth === 0 && (k === 'apiVersion' || k === 'kind');
    const identityMeta = depth === 1 && (k === 'name' || k === 'namespace');
    const d = isObject(desired ?? null) ? (desired as { [k: string]: Json })[k] : undefined;
    const o = owned?.[`f:${k}`];
    if (!identity && !identityMeta && d === undefined && o === undefined) continue;
    out[k] = isObject(v) ? project(v, d, o, depth + 1) : v;
  }
  return out;
}

function strip(o: Json): Json {
  if (!isObject(o)) return o;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'status') continue;
    if (k === 'metadata' && isObject(v)) {
      const m: { [k: string]: Json } = {};
      for (const [mk, mv] of Object.entries(v)) if (!SERVER_METADATA.has(mk)) m[mk] = mv;
      out[k] = m;
    } else out[k] = v;
  }
  return out;
}

function defaults(o: Json): Json {
  if (!isObject(o)) return o;
  const subjects = o['subjects'];
  if (!Array.isArray(subjects)) return o;
  return {
    ...o,
    subjects: subjects.map((s) =>
      isObject(s) && (s['kind'] === 'User' || s['kind'] === 'Group') && (s['apiGroup'] === undefined || s['apiGroup'] === '')
        ? { ...s, apiGroup: 'rbac.authorization.k8s.io' }
        : s,
    ),
  };
}

/** Drops null, empty objects and empty lists at every level; the API server omits them (omitempty). */
function clean(v: Json): Json | undefined {
  if (v === null) return undefined;
  if (Array.isArray(v)) {
    const a = v.map(clean).filter((x): x is Json => x !== undefined);
    return a.length ? a : undefined;
  }
  if (isObject(v)) {
    const out: { [k: string]: Json } = {};
    for (const k of Object.keys(v).sort()) {
      const c = clean(v[k] as Json);
      if (c !== undefined) out[k] = c;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return v;
}

function isObject(v: Json): v is { [k: string]: Json } {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
