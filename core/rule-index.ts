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
  // Grants share rule lists (the bundle's role table decodes to one array per role), so where
  // a list can match is worked out once per list.
  const targets = new Map<readonly PolicyRule[], RuleTargets>();
  const targetsOf = (rules: readonly PolicyRule[]): RuleTargets => {
    let t = targets.get(rules);
    if (!t) targets.set(rules, (t = ruleTargets(rules)));
    return t;
  };
  const grantsByUser = new Map<string, MutableBuckets<Grant>>();
  const grantsByGroup = new Map<string, MutableBuckets<Grant>>();
  for (const g of sortedById(ruleSet.grants)) {
    const entry = { item: g, namespaces: scopeSet(g.scope) };
    const t = targetsOf(g.rules);
    for (const s of uniqueSubjects(g.subjects)) addTo(s.kind === 'User' ? grantsByUser : grantsByGroup, s.name, entry, t);
  }
  const deniesByUser = new Map<string, MutableBuckets<Deny>>();
  const deniesByGroup = new Map<string, MutableBuckets<Deny>>();
  const everyone = buckets<Deny>();
  for (const d of sortedById(ruleSet.denies)) {
    const entry = { item: d, namespaces: scopeSet(d.scope) };
    const t = targetsOf(d.rules);
    if (d.subjects === 'everyone') place(everyone, entry, t);
    else for (const s of uniqueSubjects(d.subjects)) addTo(s.kind === 'User' ? deniesByUser : deniesByGroup, s.name, entry, t);
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

function addTo<T>(m: Map<string, MutableBuckets<T>>, name: string, entry: Indexed<T>, t: RuleTargets): void {
  let b = m.get(name);
  if (!b) m.set(name, (b = buckets<T>()));
  place(b, entry, t);
}

/** The buckets a rule list can match: concrete `group/resource` keys, wildcards, URLs. */
interface RuleTargets {
  readonly keys: readonly string[];
  readonly wildcard: boolean;
  readonly nonResource: boolean;
}

function ruleTargets(rules: readonly PolicyRule[]): RuleTargets {
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
  return { keys: [...keys], wildcard, nonResource };
}

/** Puts an entry in every bucket one of its rules can match, once per bucket. */
function place<T>(b: MutableBuckets<T>, entry: Indexed<T>, t: RuleTargets): void {
  if (t.wildcard) b.wildcard.push(entry);
  if (t.nonResource) b.nonResource.push(entry);
  for (const k of t.keys) {
    const list = b.byResource.get(k);
    if (list) list.push(entry);
    else b.byResource.set(k, [entry]);
  }
}

/** Items in id order; the compiler already writes them so, which is checked in one pass before sorting a copy. */
function sortedById<T extends { readonly id: string }>(items: readonly T[]): readonly T[] {
  let sorted = true;
  for (let i = 1; i < items.length && sorted; i++) if ((items[i - 1] as T).id > (items[i] as T).id) sorted = false;
  return sorted ? items : [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function uniqueSubjects<S extends { kind: string; name: string }>(list: readonly S[]): readonly S[] {
  if (list.length < 2) return list;
  const seen = new Map<string, S>();
  for (const s of list) seen.set(`${s.kind}\u0000${s.name}`, s);
  return [...seen.values()];
}

function scopeSet(scope: Scope): ReadonlySet<string> | 'cluster' {
  return scope.kind === 'cluster' ? 'cluster' : new Set(scope.namespaces);
}
