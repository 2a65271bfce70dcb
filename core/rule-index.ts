import type { Deny, Grant, RuleSet, Scope, Subject } from './rule-set.ts';

/** A grant or deny with its scope turned into a set for O(1) namespace checks. */
export interface Indexed<T> {
  readonly item: T;
  readonly namespaces: ReadonlySet<string> | 'cluster';
}

/**
 * A rule set indexed by subject, so a decision looks only at the grants and
 * denies that can concern the requester. Each list keeps the rule set's id
 * order, so the determining grant does not depend on the input order.
 */
export interface RuleIndex {
  readonly ruleSet: RuleSet;
  readonly grantsBySubject: ReadonlyMap<string, readonly Indexed<Grant>[]>;
  readonly deniesBySubject: ReadonlyMap<string, readonly Indexed<Deny>[]>;
  readonly deniesForEveryone: readonly Indexed<Deny>[];
  readonly impersonableUsers: ReadonlySet<string>;
  readonly impersonableGroups: ReadonlySet<string>;
}

/** The index key of a subject. */
export function subjectKey(s: Subject): string {
  return `${s.kind === 'User' ? 'u' : 'g'}:${s.name}`;
}

/** Builds the index; pure. */
export function indexRuleSet(ruleSet: RuleSet): RuleIndex {
  const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const grantsBySubject = new Map<string, Indexed<Grant>[]>();
  for (const g of [...ruleSet.grants].sort(byId)) {
    const entry = { item: g, namespaces: scopeSet(g.scope) };
    for (const key of new Set(g.subjects.map(subjectKey))) push(grantsBySubject, key, entry);
  }
  const deniesBySubject = new Map<string, Indexed<Deny>[]>();
  const deniesForEveryone: Indexed<Deny>[] = [];
  for (const d of [...ruleSet.denies].sort(byId)) {
    const entry = { item: d, namespaces: scopeSet(d.scope) };
    if (d.subjects === 'everyone') deniesForEveryone.push(entry);
    else for (const key of new Set(d.subjects.map(subjectKey))) push(deniesBySubject, key, entry);
  }
  return {
    ruleSet,
    grantsBySubject,
    deniesBySubject,
    deniesForEveryone,
    impersonableUsers: new Set(ruleSet.impersonable.users),
    impersonableGroups: new Set(ruleSet.impersonable.groups),
  };
}

function scopeSet(scope: Scope): ReadonlySet<string> | 'cluster' {
  return scope.kind === 'cluster' ? 'cluster' : new Set(scope.namespaces);
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
