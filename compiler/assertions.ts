import { decide, indexRuleSet, type Decision, type RequestAttributes, type RuleIndex, type RuleSet, type Subject } from '../core/index.ts';
import type { Claim } from './lang/assertion.ts';
import { labelsMatch } from './lang/selectors.ts';
import { parseResourceArg } from './questions.ts';

/** One cluster as `portcullis test` sees it: its labels and its verified rule set. */
export interface ClusterUnderTest {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ruleSet: RuleSet;
}

/** The verdict on one claim: `failures` empty when it holds. */
export interface ClaimResult {
  readonly claim: Claim;
  readonly clusters: readonly string[];
  readonly failures: readonly string[];
}

/** A user name no policy names, standing for "someone" (a member of a group, say). */
const SOMEONE = 'portcullis:test:someone';
/** A namespace and an object name no policy names, standing for every other one. */
const ANY_NAMESPACE = 'portcullis-test-any-namespace';
const ANY_NAME = 'portcullis-test-any-name';
/** Deny exceptions that are also deny subjects make the witnesses a power set; beyond this, refuse rather than guess. */
const MAX_RISKY_GROUPS = 12;

/**
 * Checks claims against the compiled rule sets with the proxy's own decision (`decide`). Pure.
 * - `may`: allowed at `now`, with no break-glass invoked, in every namespace and cluster named.
 * - `may-not`: denied whatever the time and whichever break-glass is invoked (conditions are
 *   dropped, so every grant counts as active).
 * - `nobody-except`: `may-not` for every identity outside the exceptions. The decision depends only
 *   on the users and groups the rule set names, so the identities tried are finitely many: each
 *   grant subject, as itself or a member of it, under each user name the denies or grants could
 *   single out, carrying the deny exceptions that can only help it.
 * Every namespace (`'*'`) means each namespace the rule set names, one it does not, and the
 * request across all of them; for negative claims every object name a rule names is tried too.
 */
export function checkClaims(claims: readonly Claim[], clusters: readonly ClusterUnderTest[], now: number): ClaimResult[] {
  const indexes = new Map<string, { live: RuleIndex; anyTime: RuleIndex }>();
  const indexesOf = (c: ClusterUnderTest) => {
    let x = indexes.get(c.name);
    if (!x) {
      const anyTime: RuleSet = { ...c.ruleSet, grants: c.ruleSet.grants.map((g) => ({ ...g, conditions: {} })) };
      indexes.set(c.name, (x = { live: indexRuleSet(c.ruleSet), anyTime: indexRuleSet(anyTime) }));
    }
    return x;
  };
  return claims.map((claim) => {
    const sel = claim.clusters;
    const chosen = clusters.filter((c) => sel === 'all' || ((sel.names === undefined || sel.names.includes(c.name)) && labelsMatch(c.labels, sel.labels ?? {})));
    if (chosen.length === 0) return { claim, clusters: [], failures: [`the cluster selector ${JSON.stringify(sel)} selects no cluster`] };
    const failures = chosen.flatMap((c) => checkOnCluster(claim, c, indexesOf(c), now).map((f) => `on ${c.name}: ${f}`));
    return { claim, clusters: chosen.map((c) => c.name), failures };
  });
}

function checkOnCluster(claim: Claim, c: ClusterUnderTest, ix: { live: RuleIndex; anyTime: RuleIndex }, now: number): string[] {
  const rs = c.ruleSet;
  const requests = requestsOf(claim, rs);
  if (claim.kind === 'may') {
    const id = claim.identity ?? { user: '', groups: [] };
    const out: string[] = [];
    for (const r of requests) {
      const attrs = { ...r, user: id.user || SOMEONE, groups: id.groups };
      const v = decide(attrs, ix.live, { now });
      if (!v.decision.allowed) out.push(`${describeRequest(attrs)} is denied: ${whyDenied(v.decision)}`);
    }
    return out;
  }
  const identities = claim.kind === 'may-not' ? [claim.identity ?? { user: '', groups: [] }] : witnesses(rs, claim.except ?? []);
  const names = claim.resource.startsWith('/') || claim.name !== '' ? [claim.name] : namesOf(rs);
  // One counterexample per grant, from the simplest identity that shows it (witnesses come simplest first).
  const found = new Map<string, string>();
  for (const id of identities) {
    for (const r of requests) {
      for (const name of names) {
        const attrs = { ...r, name, user: id.user || SOMEONE, groups: id.groups };
        const d = decide(attrs, ix.anyTime, { now }).decision;
        if (!d.allowed || found.has(d.grant.id)) continue;
        const when = Object.keys(rs.grants.find((g) => g.id === d.grant.id)?.conditions ?? {}).length ? ' (while its conditions hold)' : '';
        found.set(d.grant.id, `${describeIdentity(attrs)} may ${describeRequest(attrs)}: grant ${d.grant.id} (${d.grant.source.file}:${d.grant.source.line})${when}`);
      }
    }
  }
  return [...found.values()];
}

type Request = Omit<RequestAttributes, 'user' | 'groups'>;

/** The requests a claim is about: each verb, in each namespace it names. */
function requestsOf(claim: Claim, rs: RuleSet): Request[] {
  if (claim.resource.startsWith('/')) {
    return claim.verbs.map((verb) => ({ verb, isResourceRequest: false, path: claim.resource, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' }));
  }
  const r = parseResourceArg(claim.resource);
  const namespaces = claim.namespaces.includes('*') ? ['', ...namespacesOf(rs), ANY_NAMESPACE] : claim.namespaces.length ? claim.namespaces : [''];
  return claim.verbs.flatMap((verb) => namespaces.map((namespace) => ({ verb, isResourceRequest: true, path: '', apiGroup: r.apiGroup, apiVersion: '', resource: r.resource, subresource: r.subresource, namespace, name: claim.name })));
}

function namespacesOf(rs: RuleSet): string[] {
  const s = new Set<string>();
  for (const x of [...rs.grants, ...rs.denies]) if (x.scope.kind === 'namespaces') for (const n of x.scope.namespaces) s.add(n);
  return [...s].sort();
}

/** A request without a name, each name a rule names (resourceNames), and one no rule names. */
function namesOf(rs: RuleSet): string[] {
  const s = new Set<string>(['']);
  for (const x of [...rs.grants, ...rs.denies]) for (const rule of x.rules) for (const n of rule.resourceNames ?? []) s.add(n);
  s.add(ANY_NAME);
  return [...s];
}

/**
 * The identities outside `except` that could be allowed anything: for each grant subject not
 * excepted, itself (a user) or a member of it (a group), under each user name the rule set could
 * single out (and one it cannot), carrying the groups that deny exceptions name, since those
 * only lift denies. Where such a group is also a deny's subject, carrying it may hurt as well
 * as help, so each subset of those is tried.
 */
function witnesses(rs: RuleSet, except: readonly Subject[]): { user: string; groups: string[] }[] {
  const isExcepted = (kind: Subject['kind'], name: string) => except.some((e) => e.kind === kind && e.name === name);
  const denySubjectGroups = new Set(rs.denies.flatMap((d) => (d.subjects === 'everyone' ? [] : d.subjects.filter((s) => s.kind === 'Group').map((s) => s.name))));
  const liftGroups = [...new Set(rs.denies.flatMap((d) => d.except.filter((s) => s.kind === 'Group').map((s) => s.name)))].filter((g) => !isExcepted('Group', g)).sort();
  const safe = liftGroups.filter((g) => !denySubjectGroups.has(g));
  const risky = liftGroups.filter((g) => denySubjectGroups.has(g));
  if (risky.length > MAX_RISKY_GROUPS) throw new Error(`${risky.length} groups are both deny exceptions and deny subjects: too many to try every combination`);
  // Without any lifting group first, so that a counterexample reads as simply as it can.
  const lifts: string[][] = [[]];
  for (const g of risky) for (const l of lifts.splice(0)) lifts.push(l, [...l, g]);
  const variants = [[], ...lifts.map((l) => [...safe, ...l])];
  const userNames = new Set<string>([SOMEONE]);
  for (const x of [...rs.grants, ...rs.denies]) {
    const subjects = [...(x.subjects === 'everyone' ? [] : x.subjects), ...('except' in x ? x.except : [])];
    for (const s of subjects) if (s.kind === 'User' && !isExcepted('User', s.name)) userNames.add(s.name);
  }
  const out = new Map<string, { user: string; groups: string[] }>();
  const add = (user: string, groups: string[]) => out.set(`${user}\u0000${groups.join('\u0000')}`, { user, groups });
  for (const g of rs.grants) {
    for (const s of g.subjects) {
      if (isExcepted(s.kind, s.name)) continue;
      for (const extra of variants) {
        const groups = [...new Set([...(s.kind === 'Group' ? [s.name] : []), ...extra])].sort();
        if (s.kind === 'User') add(s.name, groups);
        else for (const u of userNames) add(u, groups);
      }
    }
  }
  return [...out.values()].sort((a, b) => a.groups.length - b.groups.length || Number(a.user !== SOMEONE) - Number(b.user !== SOMEONE));
}

function whyDenied(d: Decision): string {
  if (d.allowed) return 'allowed';
  if (d.reason === 'deny') return `deny ${d.deny.id} (${d.deny.source.file}:${d.deny.source.line})`;
  if (d.inactive.length === 0) return 'no grant allows it';
  return d.inactive.map((i) => `grant ${i.grant.id} (${i.grant.source.file}:${i.grant.source.line}) would, but ${i.why}`).join('; ');
}

function describeIdentity(id: { user: string; groups: readonly string[] }): string {
  const user = id.user === '' || id.user === SOMEONE ? 'someone' : id.user;
  return id.groups.length ? `${user} (groups ${id.groups.join(', ')})` : user;
}

function describeRequest(a: RequestAttributes): string {
  if (!a.isResourceRequest) return `${a.verb} ${a.path}`;
  const what = `${a.resource}${a.apiGroup ? `.${a.apiGroup}` : ''}${a.subresource ? `/${a.subresource}` : ''}`;
  const name = a.name === '' ? '' : a.name === ANY_NAME ? ' (any name)' : ` ${a.name}`;
  const where = a.namespace === '' ? ' across all namespaces' : a.namespace === ANY_NAMESPACE ? ' in any other namespace' : ` in ${a.namespace}`;
  return `${a.verb} ${what}${name}${where}`;
}

/** The claim in words, for the report. */
export function describeClaim(c: Claim): string {
  const who = c.kind === 'nobody-except' ? `nobody except ${(c.except ?? []).map((s) => s.name).join(', ') || '(no one)'}` : describeIdentity(c.identity ?? { user: '', groups: [] });
  const verb = c.kind === 'may-not' ? 'may not' : 'may';
  const where = c.namespaces.length === 0 ? '' : c.namespaces.includes('*') ? ' in every namespace' : ` in ${c.namespaces.join(', ')}`;
  const sel = c.clusters === 'all' ? 'every cluster' : [c.clusters.names?.join(', '), c.clusters.labels && Object.entries(c.clusters.labels).map(([k, v]) => `${k}=${v}`).join(',')].filter(Boolean).join(' ');
  return `${who} ${verb} ${c.verbs.join(',')} ${c.resource}${c.name ? ` ${c.name}` : ''}${where} on ${sel}`;
}
