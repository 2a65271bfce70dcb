import type { PolicyRule } from '../core/index.ts';

/** One API resource (or subresource, as `pods/exec`) a cluster serves, from discovery. */
export interface CatalogResource {
  readonly group: string;
  readonly resource: string;
  readonly namespaced: boolean;
  readonly kind: string;
  readonly verbs: readonly string[];
}

/** The API resources of one cluster: what wildcards expand to and what validation checks against. */
export interface Catalog {
  readonly kubernetesVersion: string;
  readonly resources: readonly CatalogResource[];
}

/** Discovery documents as served at `/api/v1` and `/apis/GROUP/VERSION` (the fields we read). */
export interface DiscoveryDocument {
  readonly groupVersion: string;
  readonly resources: readonly {
    readonly name: string;
    readonly namespaced: boolean;
    readonly kind: string;
    readonly verbs?: readonly string[];
  }[];
}

/** Merges discovery documents into a catalog: one entry per group and resource, verbs unioned across versions, sorted. */
export function catalogFromDiscovery(kubernetesVersion: string, docs: readonly DiscoveryDocument[]): Catalog {
  const byKey = new Map<string, { group: string; resource: string; namespaced: boolean; kind: string; verbs: Set<string> }>();
  for (const doc of docs) {
    const group = doc.groupVersion.includes('/') ? (doc.groupVersion.split('/')[0] ?? '') : '';
    for (const r of doc.resources) {
      const key = `${group}\u0000${r.name}`;
      const e = byKey.get(key) ?? { group, resource: r.name, namespaced: r.namespaced, kind: r.kind, verbs: new Set<string>() };
      for (const v of r.verbs ?? []) e.verbs.add(v);
      byKey.set(key, e);
    }
  }
  const resources = [...byKey.values()]
    .map((e) => ({ group: e.group, resource: e.resource, namespaced: e.namespaced, kind: e.kind, verbs: [...e.verbs].sort() }))
    .sort((a, b) => (a.group + '\u0000' + a.resource < b.group + '\u0000' + b.resource ? -1 : 1));
  return { kubernetesVersion, resources };
}

/** Verbs Kubernetes understands beyond what discovery lists. */
export const SPECIAL_VERBS: readonly string[] = ['bind', 'escalate', 'impersonate', 'use', 'approve', 'sign', 'attest'];

/** Where Kubernetes checks the special verbs (group/resource). */
const SPECIAL_VERB_RESOURCES: Readonly<Record<string, readonly string[]>> = {
  'rbac.authorization.k8s.io/roles': ['bind', 'escalate'],
  'rbac.authorization.k8s.io/clusterroles': ['bind', 'escalate'],
  '/users': ['impersonate'],
  '/groups': ['impersonate'],
  '/serviceaccounts': ['impersonate'],
  'authentication.k8s.io/userextras': ['impersonate'],
  'authentication.k8s.io/uids': ['impersonate'],
  'certificates.k8s.io/signers': ['approve', 'sign', 'attest'],
  'policy/podsecuritypolicies': ['use'],
};

/** Verbs for non-resource URLs. */
export const NON_RESOURCE_VERBS: readonly string[] = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'];

const indexes = new WeakMap<Catalog, CatalogIndex>();

/** The index of a catalog, built once per catalog object (clusters often share one). */
export function catalogIndex(catalog: Catalog): CatalogIndex {
  let i = indexes.get(catalog);
  if (!i) indexes.set(catalog, (i = new CatalogIndex(catalog)));
  return i;
}

/** Indexed view of a catalog for the compiler's checks and wildcard expansion. */
export class CatalogIndex {
  readonly groups: readonly string[];
  private readonly byGroup = new Map<string, CatalogResource[]>();
  readonly allVerbs: ReadonlySet<string>;

  constructor(readonly catalog: Catalog) {
    const verbs = new Set<string>(SPECIAL_VERBS);
    for (const r of catalog.resources) {
      const list = this.byGroup.get(r.group) ?? [];
      list.push(r);
      this.byGroup.set(r.group, list);
      for (const v of r.verbs) verbs.add(v);
    }
    this.groups = [...this.byGroup.keys()].sort();
    this.allVerbs = verbs;
  }

  /** Resources (and subresources) of a group. */
  resourcesOf(group: string): readonly CatalogResource[] {
    return this.byGroup.get(group) ?? [];
  }

  /** The entry for a group and resource, if the cluster serves it. */
  find(group: string, resource: string): CatalogResource | undefined {
    return this.resourcesOf(group).find((r) => r.resource === resource);
  }

  /** The groups a rule's apiGroups cover. */
  expandGroups(rule: PolicyRule): readonly string[] {
    const gs = rule.apiGroups ?? [];
    return gs.includes('*') ? this.groups : [...new Set(gs)].sort();
  }

  /** The resources of `group` a rule's resources cover (mirrors ResourceMatches, over what the catalog lists). */
  expandResources(rule: PolicyRule, group: string): readonly string[] {
    const out = new Set<string>();
    for (const r of rule.resources ?? []) {
      if (r === '*') for (const c of this.resourcesOf(group)) out.add(c.resource);
      else if (r.startsWith('*/')) {
        for (const c of this.resourcesOf(group)) if (c.resource.endsWith(`/${r.slice(2)}`)) out.add(c.resource);
      } else out.add(r);
    }
    return [...out].sort();
  }

  /** The verbs a `*` stands for on one resource: what discovery lists plus the special verbs that apply to it. */
  verbsOf(group: string, resource: string): readonly string[] {
    const c = this.find(group, resource);
    const special = SPECIAL_VERB_RESOURCES[`${group}/${resource.split('/')[0]}`] ?? [];
    return [...new Set([...(c?.verbs ?? []), ...special])].sort();
  }
}
