import type { Deny, Grant, PolicyRule, RuleSet, Scope } from './rule-set.ts';

/** A grant or deny with its scope turned into a set for O(1) namespace checks. */
export interface Indexed<T> {
  readonly item: T;
  readonly namespaces: ReadonlySet<string> | 'cluster';
}

/**
 * One subject's grants or denies, bucketed by what their rules can match:
 * `group/resource` for concrete rules, `wildcard` for rules with `*` in the
 * group or resource, `nonResource` for URL rules. Each list keeps id order.
 */
export interface Buckets<T> {
  readonly byResource: ReadonlyMap<string, readonly Indexed<T>[]>;
  readonly wildcard: readonly Indexed<T>[];
  readonly nonResource: readonly Indexed<T>[];
}

/**
 * A rule set indexed by subject and resource, so a decision looks only at the
 * grants and denies that can concern the request.
 */
export interface RuleIndex {
  readonly ruleSet: RuleSet;
  readonly grantsByUser: ReadonlyMap<string, Buckets<Grant>>;
  readonly grantsByGroup: ReadonlyMap<string, Buckets<Grant>>;
  readonly deniesByUser: ReadonlyMap<string, Buckets<Deny>>;
  readonly deniesByGroup: ReadonlyMap<string, Buckets<Deny>>;
  readonly deniesForEveryone: Buckets<Deny>;
  readonly impersonableUsers: ReadonlySet<string>;
  readonly impersonableGroups: ReadonlySet<string>;
}

/** The bucket key of a request or concrete rule: `group/resource` (the resource without its subresource). */
export function resourceKey(group: string, resource: string): string {
  return `${group}/${resource}`;
}

/** Builds the index; pure. */
export function indexRuleSet(ruleSet: RuleSet): RuleIndex {
  const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const grantsByUser = new Map<string, MutableBuckets<Grant>>();
  const grantsByGroup = new Map<string, MutableBuckets<Grant>>();
  for (const g of [...ruleSet.grants].sort(byId)) {
    const entry = { item: g, namespaces: scopeSet(g.scope) };
    for (const s of uniqueSubjects(g.subjects)) addTo(s.kind === 'User' ? grantsByUser : grantsByGroup, s.name, entry, g.rules);
  }
  const deniesByUser = new Map<string, MutableBuckets<Deny>>();
  const deniesByGroup = new Map<string, MutableBuckets<Deny>>();
  const everyone = buckets<Deny>();
  for (const d of [...ruleSet.denies].sort(byId)) {
    const entry = { item: d, namespaces: scopeSet(d.scope) };
    if (d.subjects === 'everyone') place(everyone, entry, d.rules);
    else for (const s of uniqueSubjects(d.subjects)) addTo(s.kind === 'User' ? deniesByUser : deniesByGroup, s.name, entry, d.rules);
  }
  return {
    ruleSet,
    grantsByUser,
    grantsByGroup,
    deniesByUser,
    deniesByGroup,
    deniesForEveryone: everyone,
    impersonableUsers: new Set(ruleSet.impersonable.users),
    impersonableGroups: new Set(ruleSet.impersonable.groups),
  };
}

type MutableBuckets<T> = { byResource: Map<string, Indexed<T>[]>; wildcard: Indexed<T>[]; nonResource: Indexed<T>[] };

function buckets<T>(): MutableBuckets<T> {
  return { byResource: new Map(), wildcard: [], nonResource: [] };
}

function addTo<T>(m: Map<string, MutableBuckets<T>>, name: string, entry: Indexed<T>, rules: readonly PolicyRule[]): void {
  let b = m.get(name);
  if (!b) m.set(name, (b = buckets<T>()));
  place(b, entry, rules);
}

/** Puts an entry in every bucket one of its rules can match, once per bucket. */
function place<T>(b: MutableBuckets<T>, entry: Indexed<T>, rules: readonly PolicyRule[]): void {
  const keys = new Set<string>();
  let wildcard = false;
  let nonResource = false;
  for (const r of rules) {
    if (r.nonResourceURLs?.length) nonResource = true;
    const groups = r.apiGroups ?? [];
    const resources = r.resources ?? [];
    if (groups.includes('*') || resources.some((x) => x.startsWith('*'))) wildcard = true;
    for (const g of groups) for (const res of resources) if (g !== '*' && !res.startsWith('*')) keys.add(resourceKey(g, res.split('/')[0] ?? res));
  }
  if (wildcard) b.wildcard.push(entry);
  if (nonResource) b.nonResource.push(entry);
  for (const k of keys) {
    const list = b.byResource.get(k);
    if (list) list.push(entry);
    else b.byResource.set(k, [entry]);
  }
}

function uniqueSubjects<S extends { kind: string; name: string }>(list: readonly S[]): S[] {
  const seen = new Map<string, S>();
  for (const s of list) seen.set(`${s.kind}\u0000${s.name}`, s);
  return [...seen.values()];
}

function scopeSet(scope: Scope): ReadonlySet<string> | 'cluster' {
  return scope.kind === 'cluster' ? 'cluster' : new Set(scope.namespaces);
}
