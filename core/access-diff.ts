import type { Conditions, Deny, Grant, PolicyRule, RuleSet, Scope, Subject } from './rule-set.ts';

/**
 * One atom of effective access: a subject may (or is denied) one verb on one
 * resource (or non-resource URL) in one namespace (`*` = cluster-wide), maybe
 * only for some names and only under a condition.
 */
export interface AccessAtom {
  readonly subject: string;
  readonly effect: 'allow' | 'deny';
  readonly namespace: string;
  readonly apiGroup: string;
  readonly resource: string;
  readonly nonResourceURL: string;
  readonly verb: string;
  readonly resourceNames: readonly string[];
  /** `` when unconditional; otherwise a readable summary of the conditions. */
  readonly condition: string;
}

/** A gained or lost atom. */
export interface AccessChange extends AccessAtom {
  readonly change: 'gained' | 'lost';
}

/**
 * The effective-permission difference between two rule sets: the atoms the
 * new one grants (or denies) that the old one did not cover, and the reverse.
 * Coverage follows RBAC matching (`*` verbs, groups and resources, `*\/sub`,
 * resource names, namespace vs cluster scope), so moving a verb from one grant
 * to another, or splitting a rule, is no change. Conditions are part of the
 * access: making a grant time-bound shows as the unconditional access lost and
 * the conditional access gained. Pure.
 */
export function diffAccess(before: RuleSet | undefined, after: RuleSet | undefined): AccessChange[] {
  const a = expand(before);
  const b = expand(after);
  const out: AccessChange[] = [];
  for (const atom of b.list) if (!covered(atom, a.bySubject)) out.push({ change: 'gained', ...atom });
  for (const atom of a.list) if (!covered(atom, b.bySubject)) out.push({ change: 'lost', ...atom });
  return out.sort(compareChanges);
}

/** Every atom of a rule set, de-duplicated and sorted. */
export function expandRuleSet(rs: RuleSet | undefined): AccessAtom[] {
  return expand(rs).list;
}

function expand(rs: RuleSet | undefined): { list: AccessAtom[]; bySubject: Map<string, AccessAtom[]> } {
  const seen = new Map<string, AccessAtom>();
  const add = (atom: AccessAtom) => seen.set(atomKey(atom), atom);
  // Deny atoms with their structured subjects, to take what they forbid out of the grants' atoms.
  const masks: { subjects: ReadonlySet<string> | 'everyone'; except: ReadonlySet<string>; atom: AccessAtom }[] = [];
  for (const d of rs?.denies ?? []) {
    for (const s of denySubjects(d)) addRules(add, s, 'deny', d.rules, d.scope, '');
    const subjects = d.subjects === 'everyone' ? 'everyone' : new Set(d.subjects.map(subjectName));
    const except = new Set(d.except.map(subjectName));
    addRules((atom) => masks.push({ subjects, except, atom }), '', 'deny', d.rules, d.scope, '');
  }
  const denied = (atom: AccessAtom) =>
    masks.some((m) => (m.subjects === 'everyone' ? !m.except.has(atom.subject) : m.subjects.has(atom.subject)) && coversTarget(m.atom, atom));
  for (const g of rs?.grants ?? []) {
    for (const s of g.subjects) addRules((atom) => (denied(atom) ? undefined : add(atom)), subjectName(s), 'allow', g.rules, g.scope, conditionOf(g));
  }
  const list = [...seen.values()].sort(compareAtoms);
  const bySubject = new Map<string, AccessAtom[]>();
  for (const atom of list) {
    const k = `${atom.effect} ${atom.subject}`;
    const l = bySubject.get(k);
    if (l) l.push(atom);
    else bySubject.set(k, [atom]);
  }
  return { list, bySubject };
}

function addRules(add: (a: AccessAtom) => void, subject: string, effect: 'allow' | 'deny', rules: readonly PolicyRule[], scope: Scope, condition: string): void {
  const namespaces = scope.kind === 'cluster' ? ['*'] : scope.namespaces;
  for (const r of rules) {
    const resourceNames = [...new Set(r.resourceNames ?? [])].sort();
    for (const verb of r.verbs) {
      for (const url of r.nonResourceURLs ?? []) {
        // Non-resource URLs are only ever granted cluster-wide.
        if (scope.kind === 'cluster') add({ subject, effect, namespace: '*', apiGroup: '', resource: '', nonResourceURL: url, verb, resourceNames: [], condition });
      }
      for (const apiGroup of r.apiGroups ?? []) {
        for (const resource of r.resources ?? []) {
          for (const namespace of namespaces) add({ subject, effect, namespace, apiGroup, resource, nonResourceURL: '', verb, resourceNames, condition });
        }
      }
    }
  }
}

function covered(atom: AccessAtom, index: Map<string, AccessAtom[]>): boolean {
  return (index.get(`${atom.effect} ${atom.subject}`) ?? []).some((c) => covers(c, atom));
}

/** Whether atom `c` grants (or denies) at least everything atom `x` does. */
function covers(c: AccessAtom, x: AccessAtom): boolean {
  return c.condition === x.condition && coversTarget(c, x);
}

/** Whether atom `c` reaches every request atom `x` reaches (verb, URL or resource, namespace, names), whoever the subject. */
function coversTarget(c: AccessAtom, x: AccessAtom): boolean {
  if (c.verb !== '*' && c.verb !== x.verb) return false;
  if (x.nonResourceURL !== '' || c.nonResourceURL !== '') {
    if (x.nonResourceURL === '' || c.nonResourceURL === '') return false;
    return c.nonResourceURL === '*' || c.nonResourceURL === x.nonResourceURL || (c.nonResourceURL.endsWith('*') && x.nonResourceURL.startsWith(c.nonResourceURL.replace(/\*+$/, '')));
  }
  if (c.namespace !== '*' && c.namespace !== x.namespace) return false;
  if (c.apiGroup !== '*' && c.apiGroup !== x.apiGroup) return false;
  const sub = x.resource.includes('/') ? x.resource.slice(x.resource.indexOf('/') + 1) : '';
  const resourceOk = c.resource === '*' || c.resource === x.resource || (sub !== '' && c.resource === `*/${sub}`);
  if (!resourceOk) return false;
  return c.resourceNames.length === 0 || (x.resourceNames.length > 0 && x.resourceNames.every((n) => c.resourceNames.includes(n)));
}

function subjectName(s: Subject): string {
  return `${s.kind} ${s.name}`;
}

function denySubjects(d: Deny): string[] {
  if (d.subjects !== 'everyone') return d.subjects.map(subjectName);
  const except = d.except.map(subjectName).sort();
  return [except.length ? `everyone except ${except.join(', ')}` : 'everyone'];
}

/** A readable, deterministic summary of a grant's conditions (`` when it has none). */
export function conditionOf(g: Grant): string {
  const c: Conditions = g.conditions;
  const parts: string[] = [];
  if (c.notBefore !== undefined) parts.push(`from ${c.notBefore}`);
  if (c.expires !== undefined) parts.push(`until ${c.expires}`);
  for (const w of c.windows ?? []) parts.push(`${w.days.join(',')} ${w.start}-${w.end} ${w.timeZone}`);
  if (c.breakGlass !== undefined) parts.push(`break-glass (max ${c.breakGlass.maxDurationSeconds}s)`);
  if (c.approval !== undefined) parts.push(`on approval by ${c.approval.approvers.map((s) => s.name).join(', ')} (max ${c.approval.maxDurationSeconds}s)`);
  return parts.join('; ');
}

function atomKey(a: AccessAtom): string {
  return JSON.stringify([a.subject, a.effect, a.namespace, a.apiGroup, a.resource, a.nonResourceURL, a.verb, a.resourceNames, a.condition]);
}

function compareAtoms(a: AccessAtom, b: AccessAtom): number {
  const ka = [a.subject, a.effect, a.namespace, a.apiGroup, a.resource, a.nonResourceURL, a.resourceNames.join(','), a.condition, a.verb];
  const kb = [b.subject, b.effect, b.namespace, b.apiGroup, b.resource, b.nonResourceURL, b.resourceNames.join(','), b.condition, b.verb];
  for (let i = 0; i < ka.length; i++) {
    const x = ka[i] ?? '';
    const y = kb[i] ?? '';
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function compareChanges(a: AccessChange, b: AccessChange): number {
  return compareAtoms(a, b) || (a.change < b.change ? -1 : a.change > b.change ? 1 : 0);
}

/**
 * Groups changes for reading: one line per subject, change, effect, namespace,
 * resource, names and condition, with the verbs joined.
 */
export interface AccessLine {
  readonly change: 'gained' | 'lost';
  readonly effect: 'allow' | 'deny';
  readonly subject: string;
  readonly verbs: readonly string[];
  /** e.g. `pods`, `apps/deployments`, `URL /healthz`. */
  readonly what: string;
  /** e.g. `in namespace team-a`, `cluster-wide`. */
  readonly where: string;
  readonly condition: string;
}

/**
 * Folds atoms into readable lines: first the verbs of one resource, then the
 * resources that share exactly those verbs, in a stable order.
 */
export function accessLines(changes: readonly AccessChange[]): AccessLine[] {
  const byResource = new Map<string, { line: Omit<AccessLine, 'verbs' | 'what'>; what: string; verbs: Set<string> }>();
  for (const c of changes) {
    const what = c.nonResourceURL
      ? `URL ${c.nonResourceURL}`
      : `${c.apiGroup === '' ? '' : `${c.apiGroup}/`}${c.resource}${c.resourceNames.length ? ` named ${c.resourceNames.join(', ')}` : ''}`;
    const where = c.namespace === '*' ? (c.nonResourceURL ? 'cluster-wide' : 'in every namespace and cluster-wide') : `in namespace ${c.namespace}`;
    const line = { change: c.change, effect: c.effect, subject: c.subject, where, condition: c.condition };
    const k = JSON.stringify([line, what]);
    const g = byResource.get(k);
    if (g) g.verbs.add(c.verb);
    else byResource.set(k, { line, what, verbs: new Set([c.verb]) });
  }
  const byVerbs = new Map<string, { line: Omit<AccessLine, 'verbs' | 'what'>; verbs: string[]; what: string[] }>();
  for (const g of byResource.values()) {
    const verbs = [...g.verbs].sort();
    const k = JSON.stringify([g.line, verbs]);
    const h = byVerbs.get(k);
    if (h) h.what.push(g.what);
    else byVerbs.set(k, { line: g.line, verbs, what: [g.what] });
  }
  // Finally the namespaces that get exactly the same.
  const byNamespaces = new Map<string, AccessLine & { namespaces: string[] }>();
  for (const g of byVerbs.values()) {
    const what = g.what.join(', ');
    const ns = g.line.where.startsWith('in namespace ') ? g.line.where.slice('in namespace '.length) : undefined;
    const k = JSON.stringify([{ ...g.line, where: ns === undefined ? g.line.where : '' }, g.verbs, what]);
    const h = byNamespaces.get(k);
    if (h && ns !== undefined) h.namespaces.push(ns);
    else byNamespaces.set(k, { ...g.line, verbs: g.verbs, what, namespaces: ns === undefined ? [] : [ns] });
  }
  return [...byNamespaces.values()].map(({ namespaces, ...l }) => (namespaces.length > 1 ? { ...l, where: `in namespaces ${namespaces.join(', ')}` } : l));
}

/** One readable line, e.g. `+ Group oidc:devs can now get, list on pods, services in namespace team-a`. */
export function formatAccessLine(l: AccessLine): string {
  const sign = l.change === 'gained' ? '+' : '-';
  const verb = l.effect === 'allow' ? (l.change === 'gained' ? 'can now' : 'can no longer') : l.change === 'gained' ? 'is now denied' : 'is no longer denied';
  return `${sign} ${l.subject} ${verb} ${l.verbs.join(', ')} on ${l.what} ${l.where}${l.condition ? ` (when ${l.condition})` : ''}`;
}
