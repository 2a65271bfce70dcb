import { ApiObject, App, Chart } from 'cdk8s';
import { emitYamlDocuments } from './private/yaml-emit.ts';
import { apiGroupMatches, BUNDLE_CONFIGMAP, BUNDLE_READER, CLUSTER_LABEL, resourceMatches, verbMatches, EXTRA_KEYS, IMPERSONATOR_ROLE, MANAGED_BY, MEMBER_USER, PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT, type Grant, type PolicyRule, type Subject } from '../core/index.ts';
import type { ResolvedCluster } from './resolve.ts';

/** The names the compiler shares with the proxy's chart and config defaults (core/names.ts). */
export { BUNDLE_CONFIGMAP, IMPERSONATOR_ROLE, PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT };
/** The ServiceAccount that may read the bundle ConfigMap, and nothing else. */

const RBAC = 'rbac.authorization.k8s.io';

/**
 * An ApiObject whose manifest is plain data: no tokens, so cdk8s's token
 * resolution (most of synth time on large fleets) is skipped and the object
 * is emitted as given, with the chart's labels already merged in.
 */
class PlainApiObject extends ApiObject {
  constructor(
    scope: Chart,
    id: string,
    private readonly manifest: { apiVersion: string; kind: string; metadata: Record<string, unknown> } & Record<string, unknown>,
  ) {
    super(scope, id, { apiVersion: manifest.apiVersion, kind: manifest.kind });
  }

  override toJson(): Record<string, unknown> {
    return this.manifest;
  }
}

/** The ClusterRole a grant's (shared) role is synthesized as. */
export function roleObjectName(grant: Pick<Grant, 'id' | 'role'>): string {
  return grant.role === undefined ? `portcullis:grant:${grant.id}` : `portcullis:role:${grant.role}`;
}

/**
 * The binding of a grant. It carries the role's hash because RBAC's roleRef
 * is immutable: a grant whose rules change gets a new binding (applied before
 * the old one is pruned) instead of an update the API server refuses.
 */
export function bindingObjectName(grant: Pick<Grant, 'id' | 'role'>): string {
  const hash = grant.role?.split(':').pop();
  return hash ? `portcullis:grant:${grant.id}:${hash}` : `portcullis:grant:${grant.id}`;
}

/**
 * Synthesizes one cluster's RBAC with cdk8s: namespaces, one ClusterRole per
 * grant bound cluster-wide or per namespace (to the grant's subjects, or to
 * its activation group when it is conditional), and the proxy's
 * impersonate-only identity. Pure; objects are added in a stable order.
 */
export function synthCluster(rc: ResolvedCluster): string {
  const app = new App();
  const chart = new Chart(app, rc.name, { labels: { [MANAGED_BY.key]: MANAGED_BY.value, [CLUSTER_LABEL]: rc.name } });
  let n = 0;
  const labels = { [MANAGED_BY.key]: MANAGED_BY.value, [CLUSTER_LABEL]: rc.name };
  const add = (apiVersion: string, kind: string, metadata: Record<string, unknown>, rest: Record<string, unknown> = {}) =>
    new PlainApiObject(chart, `o${n++}`, { apiVersion, kind, metadata: { ...metadata, labels: { ...labels, ...(metadata.labels as object | undefined) } }, ...rest });

  add('v1', 'Namespace', { name: PROXY_NAMESPACE });
  for (const ns of rc.namespaces) add('v1', 'Namespace', { name: ns.name, labels: sortedRecord(ns.labels) });

  const { users, groups } = rc.ruleSet.impersonable;
  add('v1', 'ServiceAccount', { name: PROXY_SERVICE_ACCOUNT, namespace: PROXY_NAMESPACE });
  add(`${RBAC}/v1`, 'ClusterRole', { name: IMPERSONATOR_ROLE }, { rules: impersonatorRules(users, groups) });
  add(`${RBAC}/v1`, 'ClusterRoleBinding', { name: IMPERSONATOR_ROLE }, {
    roleRef: { apiGroup: RBAC, kind: 'ClusterRole', name: IMPERSONATOR_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: PROXY_SERVICE_ACCOUNT, namespace: PROXY_NAMESPACE }],
  });
  add('v1', 'ServiceAccount', { name: BUNDLE_READER, namespace: PROXY_NAMESPACE });
  add(`${RBAC}/v1`, 'Role', { name: 'portcullis:bundle-reader', namespace: PROXY_NAMESPACE }, {
    rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [BUNDLE_CONFIGMAP], verbs: ['get', 'list', 'watch'] }],
  });
  add(`${RBAC}/v1`, 'RoleBinding', { name: 'portcullis:bundle-reader', namespace: PROXY_NAMESPACE }, {
    roleRef: { apiGroup: RBAC, kind: 'Role', name: 'portcullis:bundle-reader' },
    subjects: [{ kind: 'ServiceAccount', name: BUNDLE_READER, namespace: PROXY_NAMESPACE }],
  });

  // One ClusterRole per distinct role (grants with the same effective rules share it), in name order.
  // Every grant's role; a guarded grant's direct part too (Grant.guard).
  const roles = new Map<string, readonly PolicyRule[]>();
  for (const g of rc.ruleSet.grants) {
    if (!roles.has(roleObjectName(g))) roles.set(roleObjectName(g), g.rules);
    if (g.guard && !roles.has(roleObjectName({ id: g.id, role: g.guard.directRole }))) roles.set(roleObjectName({ id: g.id, role: g.guard.directRole }), g.guard.directRules);
  }
  for (const [name, rules] of [...roles].sort(([a], [b]) => (a < b ? -1 : 1))) add(`${RBAC}/v1`, 'ClusterRole', { name }, { rules: rules.flatMap(rbacRules) });

  const bind = (g: Grant, name: string, role: string, subjects: readonly Subject[], annotations: Record<string, string>): void => {
    const roleRef = { apiGroup: RBAC, kind: 'ClusterRole', name: role };
    const s = subjects.map(rbacSubject);
    if (g.scope.kind === 'cluster') add(`${RBAC}/v1`, 'ClusterRoleBinding', { name, annotations }, { roleRef, subjects: s });
    else for (const ns of g.scope.namespaces) add(`${RBAC}/v1`, 'RoleBinding', { name, namespace: ns, annotations }, { roleRef, subjects: s });
  };
  for (const g of rc.ruleSet.grants) {
    const subjects = g.activationGroup ? [{ kind: 'Group' as const, name: g.activationGroup }] : g.subjects;
    const source = { 'portcullis.dev/source': `${g.source.file}:${g.source.line}` };
    const annotations = { ...source, ...(g.activationGroup ? { 'portcullis.dev/enforced-by': 'proxy' } : {}) };
    if (!g.guard) {
      bind(g, bindingObjectName(g), roleObjectName(g), subjects, annotations);
      continue;
    }
    // The subjects get the grant less the guard denies; the whole grant only through the guard group.
    const direct = { id: g.id, role: g.guard.directRole };
    bind(g, bindingObjectName(direct), roleObjectName(direct), subjects, { ...annotations, 'portcullis.dev/narrowed-by': g.guard.denies.join(',') });
    bind(g, `${bindingObjectName(g)}:undenied`, roleObjectName(g), [{ kind: 'Group', name: g.guard.group }], { ...source, 'portcullis.dev/enforced-by': 'proxy', 'portcullis.dev/after-denies': g.guard.denies.join(',') });
  }
  return emitYamlDocuments(chart.toJson());
}

/**
 * Impersonate only the named users and groups. RBAC reads an empty
 * resourceNames as "every name", so an empty list gets no rule at all.
 */
export function impersonatorRules(users: readonly string[], groups: readonly string[]): PolicyRule[] {
  // The named users, and MEMBER_USER for everyone else (core/decide.ts): never a system: user.
  const rules: PolicyRule[] = [{ apiGroups: [''], resources: ['users'], resourceNames: [...new Set([...users, MEMBER_USER])].sort(), verbs: ['impersonate'] }];
  if (groups.length) rules.push({ apiGroups: [''], resources: ['groups'], resourceNames: [...groups], verbs: ['impersonate'] });
  rules.push({ apiGroups: ['authentication.k8s.io'], resources: EXTRA_KEYS.map((k) => `userextras/${k}`), verbs: ['impersonate'] });
  return rules;
}

function rbacSubject(s: Subject): Record<string, string> {
  return { apiGroup: RBAC, kind: s.kind, name: s.name };
}

/** The streaming subresources the proxy decides as `create` (SECURITY rule 4) and kube 1.34 authorizes over WebSocket as `get`. */
const STREAMING_SUBRESOURCES = ['exec', 'attach', 'portforward'] as const;

/**
 * A policy rule as RBAC, with pods' exec, attach and portforward meaning upstream what they mean at
 * the proxy, which decides them as `create` whatever the transport (SECURITY rule 4), while
 * kube-apiserver 1.34 authorizes the WebSocket upgrade (a GET) as `get`:
 * - where the rule grants `create` on them without `get`, a rule granting `get` on exactly those
 *   (same names) joins it, so that what the proxy allows works over WebSocket too;
 * - where it grants `get` on them without `create`, `get` is taken off those it names, so that
 *   going around the proxy gets no exec it refuses (under a wildcard RBAC cannot take it off:
 *   `streamGetGap`, which the compiler reports).
 */
export function rbacRules(r: PolicyRule): Record<string, readonly string[]>[] {
  const rule = rbacRule(r);
  if (!apiGroupMatches(r, '')) return [rule];
  const streaming = STREAMING_SUBRESOURCES.filter((s) => resourceMatches(r, `pods/${s}`, s)).map((s) => `pods/${s}`);
  if (streaming.length === 0 || verbMatches(r, 'create') === verbMatches(r, 'get')) return [rule];
  const names = r.resourceNames?.length ? { resourceNames: r.resourceNames } : {};
  if (verbMatches(r, 'create')) return [rule, { apiGroups: [''], ...names, resources: streaming, verbs: ['get'] }];
  const named = (r.resources ?? []).filter((x) => streaming.includes(x));
  const rest = (r.resources ?? []).filter((x) => !named.includes(x));
  const otherVerbs = r.verbs.filter((v) => v !== 'get');
  const out: Record<string, readonly string[]>[] = [];
  if (rest.length) out.push(rbacRule({ ...r, resources: rest }));
  if (named.length && otherVerbs.length) out.push(rbacRule({ ...r, resources: named, verbs: otherVerbs }));
  return out;
}

/** Whether a rule grants `get` without `create` on pods' exec, attach or portforward through a wildcard, which RBAC cannot take off (see rbacRules). */
export function streamGetGap(r: PolicyRule): boolean {
  if (!apiGroupMatches(r, '') || verbMatches(r, 'create') || !verbMatches(r, 'get')) return false;
  return STREAMING_SUBRESOURCES.some((s) => resourceMatches(r, `pods/${s}`, s) && !(r.resources ?? []).includes(`pods/${s}`));
}

function rbacRule(r: PolicyRule): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = {};
  if (r.apiGroups) out.apiGroups = r.apiGroups;
  if (r.nonResourceURLs?.length) out.nonResourceURLs = r.nonResourceURLs;
  if (r.resourceNames?.length) out.resourceNames = r.resourceNames;
  if (r.resources) out.resources = r.resources;
  out.verbs = r.verbs;
  return out;
}

function sortedRecord(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)));
}
