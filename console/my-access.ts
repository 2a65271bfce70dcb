import { decide } from '../core/decide.ts';
import type { RequestAttributes } from '../core/attributes.ts';
import type { RuleIndex } from '../core/rule-index.ts';
import type { Conditions, Grant, PolicyRule } from '../core/rule-set.ts';

/** The group every authenticated person carries at the proxy (as kube's authenticators add it). */
const ALL_AUTHENTICATED = 'system:authenticated';

/** One line of "My access": a rule of a grant that names the person, in one namespace (or cluster-wide), decided now. */
export interface AccessRow {
  readonly cluster: string;
  /** A namespace, or '' for cluster-wide. */
  readonly namespace: string;
  readonly grant: string;
  /** The policy line that grants it (`file:line`). */
  readonly source: string;
  readonly verbs: readonly string[];
  /** `group/resource[/subresource]` (core: just the resource), or non-resource paths. */
  readonly what: readonly string[];
  readonly resourceNames?: readonly string[];
  /** What the proxy decides now for each verb on each resource of the rule, summed up. */
  readonly state: 'active' | 'inactive' | 'denied';
  /** Why it is inactive or denied (the condition, or the deny with its line). */
  readonly why?: string;
  /** The grant's conditions in words (window, expiry, requestable, break-glass); none: unconditional. */
  readonly conditions: readonly string[];
  /** How the grant is activated, when it must be: by an approved request, or by break-glass. */
  readonly activation?: 'request' | 'break-glass';
  /** When the person's current activation of it ends (ISO time), if one is active. */
  readonly activeUntil?: string;
}

/**
 * What `user` (with `groups`) may do on one cluster: every rule of every grant that names them,
 * per namespace of its scope, decided by the proxy's own `decide` on the signed bundle's index
 * at `now` with the person's active activations, for each verb and resource the rule lists.
 * A wildcard verb or resource is decided for the wildcard itself (as kube matches `*`). Pure.
 */
export function myAccess(cluster: string, index: RuleIndex, who: { readonly user: string; readonly groups: readonly string[] }, now: number, activations: ReadonlyMap<string, number>): AccessRow[] {
  const groups = [...who.groups, ALL_AUTHENTICATED];
  const rows: AccessRow[] = [];
  for (const g of index.ruleSet.grants) {
    if (!g.subjects.some((s) => (s.kind === 'User' ? s.name === who.user : groups.includes(s.name)))) continue;
    const namespaces = g.scope.kind === 'cluster' ? [''] : g.scope.namespaces;
    for (const namespace of namespaces) {
      for (const rule of g.rules) rows.push(decideRule(cluster, namespace, g, rule, { user: who.user, groups }, index, now, activations));
    }
  }
  return rows.sort((a, b) => (a.namespace === b.namespace ? (a.grant === b.grant ? 0 : a.grant < b.grant ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
}

function decideRule(cluster: string, namespace: string, g: Grant, rule: PolicyRule, who: { user: string; groups: readonly string[] }, index: RuleIndex, now: number, activations: ReadonlyMap<string, number>): AccessRow {
  const active = new Set(activations.keys());
  const probes: RequestAttributes[] = [];
  const base = { user: who.user, groups: who.groups, namespace, name: rule.resourceNames?.[0] ?? '', apiVersion: 'v1' };
  if (rule.nonResourceURLs?.length) {
    for (const path of rule.nonResourceURLs) for (const verb of rule.verbs) probes.push({ ...base, verb, isResourceRequest: false, path: path.replace(/\*$/, ''), apiGroup: '', resource: '', subresource: '', namespace: '' });
  } else {
    for (const apiGroup of rule.apiGroups ?? ['']) {
      for (const res of rule.resources ?? []) {
        const [resource = '', subresource = ''] = res.split('/', 2);
        for (const verb of rule.verbs) probes.push({ ...base, verb, isResourceRequest: true, path: '', apiGroup, resource, subresource });
      }
    }
  }
  let state: AccessRow['state'] = 'active';
  let why: string | undefined;
  for (const a of probes) {
    const d = decide(a, index, { now, breakGlass: active }).decision;
    if (d.allowed) continue;
    if (d.reason === 'deny') {
      state = 'denied';
      why = `denied by ${d.deny.id} (${d.deny.source.file}:${d.deny.source.line}) for ${a.verb} ${a.resource || a.path}`;
      break;
    }
    const mine = d.inactive.find((i) => i.grant.id === g.id);
    state = 'inactive';
    why = mine?.why ?? `no active grant for ${a.verb} ${a.resource || a.path}`;
  }
  const what = rule.nonResourceURLs?.length ? [...rule.nonResourceURLs] : (rule.apiGroups ?? ['']).flatMap((grp) => (rule.resources ?? []).map((r) => (grp === '' ? r : `${grp}/${r}`)));
  return {
    cluster,
    namespace,
    grant: g.id,
    source: `${g.source.file}:${g.source.line}`,
    verbs: [...rule.verbs],
    what,
    ...(rule.resourceNames?.length ? { resourceNames: [...rule.resourceNames] } : {}),
    state,
    ...(why !== undefined ? { why } : {}),
    conditions: describeConditions(g.conditions),
    ...(g.conditions.approval ? { activation: 'request' as const } : g.conditions.breakGlass ? { activation: 'break-glass' as const } : {}),
    ...(activations.get(g.id) !== undefined ? { activeUntil: new Date(activations.get(g.id) ?? 0).toISOString() } : {}),
  };
}

/** A grant's conditions in words, for the page. */
export function describeConditions(c: Conditions): string[] {
  const out: string[] = [];
  if (c.notBefore !== undefined) out.push(`from ${c.notBefore}`);
  if (c.expires !== undefined) out.push(`expires ${c.expires}`);
  for (const w of c.windows ?? []) out.push(`window ${w.days.join(',')} ${w.start}-${w.end} ${w.timeZone}`);
  if (c.approval) out.push(`requestable (approval by ${c.approval.approvers.map((s) => s.name).join(', ')}, up to ${c.approval.maxDurationSeconds}s)`);
  if (c.breakGlass) out.push(`break-glass (up to ${c.breakGlass.maxDurationSeconds}s${c.breakGlass.notify.length ? `, notifies ${c.breakGlass.notify.join(', ')}` : ''})`);
  return out;
}
