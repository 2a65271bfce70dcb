import type { IConstruct } from 'constructs';
import { canonicalJson, MEMBER_USER, parseDuration, PROXY_NAMESPACE, RESERVED_PREFIX, sha256 } from '../core/index.ts';
import type { Conditions, Deny as DenyRule, Grant as GrantRule, PolicyRule, RuleSet, Scope, SourceLocation, Subject } from '../core/index.ts';
import { catalogIndex, NON_RESOURCE_VERBS, type Catalog, type CatalogIndex } from './catalog.ts';
import { Cluster } from './lang/cluster.ts';
import { Deny } from './lang/deny.ts';
import type { Fleet } from './lang/fleet.ts';
import { Grant } from './lang/grant.ts';
import { IdentityProvider } from './lang/identity.ts';
import { labelsMatch, type ClusterSelector, type NamespaceSelector } from './lang/selectors.ts';
import { Namespace, Team, TEAM_LABEL } from './lang/team.ts';
import { Role } from './lang/role.ts';
import { SessionLimits } from './lang/session-limits.ts';
import { didYouMean, type Problem, type ProblemCode } from './problem.ts';
import { normalizeRules, subtractDenies } from './private/subtract.ts';
import { checkConditions } from './private/check-conditions.ts';
import { streamGetGap } from './synth.ts';
import { checkRules } from './private/check-rules.ts';

/** Namespaces every cluster has (Kubernetes' own, and the one the compiler writes for the proxy), so a grant may name them without declaring them. */
const KUBE_NAMESPACES: ReadonlySet<string> = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease', PROXY_NAMESPACE]);

/** A namespace the policy declares on a cluster. */
export interface DeclaredNamespace {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Everything the compiler knows about one cluster after resolution. */
export interface ResolvedCluster {
  readonly name: string;
  /** The kube-apiserver URL; empty for a cluster behind its agent. */
  readonly server: string;
  readonly agent?: boolean;
  readonly proxyUrl?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly namespaces: readonly DeclaredNamespace[];
  readonly ruleSet: RuleSet;
}

/** The resolved fleet, or the problems that stop it. */
export interface Resolution {
  readonly fleet: string;
  readonly clusters: readonly ResolvedCluster[];
  readonly identityProviders: readonly { readonly name: string; readonly issuer: string; readonly usernamePrefix: string; readonly groupsPrefix: string }[];
  readonly problems: readonly Problem[];
}

/** The prefix of every activation group: the proxy asserts one only while its grant's conditions hold. */
export const ACTIVATION_GROUP_PREFIX = 'portcullis:grant:';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ID = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * Pure: turns the policy's construct tree, each cluster's catalog and the
 * clock into one rule set per cluster, collecting every problem on the way.
 */
export function resolveFleet(fleet: Fleet, catalogs: ReadonlyMap<string, Catalog>, now: number): Resolution {
  const problems: Problem[] = [];
  const report = (severity: Problem['severity'], code: ProblemCode, at: { source: SourceLocation; path: string }, message: string, hint?: string) =>
    problems.push({ severity, code, message, source: at.source, path: at.path, ...(hint ? { hint } : {}) });

  const all = fleet.node.findAll();
  const clusters = all.filter((c): c is Cluster => c instanceof Cluster);
  const grants = all.filter((c): c is Grant => c instanceof Grant);
  const denies = all.filter((c): c is Deny => c instanceof Deny);
  const teams = all.filter((c): c is Team => c instanceof Team);
  const namespaces = all.filter((c): c is Namespace => c instanceof Namespace);
  const idps = all.filter((c): c is IdentityProvider => c instanceof IdentityProvider);
  const limits = all.filter((c): c is SessionLimits => c instanceof SessionLimits);
  const where = (c: IConstruct & { source: SourceLocation }) => ({ source: c.source, path: c.node.path });
  const idOf = (c: IConstruct) => c.node.path.split('/').join('.');

  for (const idp of idps) {
    if (!idp.props.usernamePrefix || idp.props.usernamePrefix.startsWith('system:') || idp.props.usernamePrefix.startsWith(RESERVED_PREFIX)) {
      report('error', 'SYSTEM_NAME', where(idp), `identity provider ${idp.node.id} needs a username prefix that starts with neither system: nor ${RESERVED_PREFIX}`, "use e.g. 'oidc:'");
    }
  }
  for (const c of clusters) {
    if (!DNS1123_LABEL.test(c.name)) report('error', 'INVALID_NAME', where(c), `cluster name '${c.name}' is not a DNS-1123 label`);
    if ((c.props.server === undefined) === (c.props.agent !== true)) {
      report('error', 'INVALID_CLUSTER', where(c), `cluster ${c.name} needs exactly one of server (the proxy reaches it) or agent: true (its agent connects out)`);
    }
    const bad = c.props.proxyUrl === undefined ? undefined : proxyUrlProblem(c.props.proxyUrl, c.name);
    if (bad) report('error', 'INVALID_PROXY_URL', where(c), `proxyUrl ${c.props.proxyUrl ?? ''} of cluster ${c.name}: ${bad}`, `https://${c.name}.portcullis.example (a host name per cluster) or https://portcullis.example/clusters/${c.name}`);
  }
  const seen = new Map<string, IConstruct & { source: SourceLocation }>();
  for (const x of [...grants, ...denies]) {
    const id = idOf(x);
    if (!ID.test(id)) report('error', 'INVALID_NAME', where(x), `id '${id}' must be lowercase letters, digits, '-' and '.'`);
    const prev = seen.get(id);
    if (prev) report('error', 'DUPLICATE_ID', where(x), `id '${id}' is also used at ${prev.source.file}:${prev.source.line}`);
    else seen.set(id, x);
  }
  for (const ns of [...namespaces.map((n) => ({ c: n, names: [n.name] })), ...teams.map((t) => ({ c: t, names: t.props.namespaces }))]) {
    for (const name of ns.names) {
      if (!DNS1123_LABEL.test(name) || name.length > 63) report('error', 'INVALID_NAME', where(ns.c), `namespace '${name}' is not a DNS-1123 label`);
    }
  }

  for (const x of [...grants.map((g) => ({ c: g, sel: g.props.namespaces })), ...denies.map((d) => ({ c: d, sel: d.props.namespaces ?? 'cluster' }))]) {
    if (!Array.isArray(x.sel)) continue;
    for (const name of x.sel as readonly string[]) {
      if (!DNS1123_LABEL.test(name) || name.length > 63) report('error', 'INVALID_NAME', where(x.c), `namespace '${name}' is not a DNS-1123 label`);
    }
  }
  const clusterNames = clusters.map((c) => c.name);
  const selected = new Map<string, Cluster[]>();
  const selectClusters = (sel: ClusterSelector, at: IConstruct & { source: SourceLocation }): Cluster[] => {
    if (sel === 'all') return clusters;
    const key = JSON.stringify(sel);
    const hit = selected.get(key);
    if (hit && hit.length > 0) return hit;
    for (const n of sel.names ?? []) {
      if (!clusterNames.includes(n)) report('error', 'UNKNOWN_CLUSTER', where(at), `unknown cluster '${n}'`, didYouMean(n, clusterNames));
    }
    const chosen = clusters.filter((c) => (sel.names === undefined || sel.names.includes(c.name)) && labelsMatch(c.labels, sel.labels ?? {}));
    if (chosen.length === 0 && (sel.names ?? []).every((n) => clusterNames.includes(n))) {
      report('error', 'SELECTOR_MATCHES_NOTHING', where(at), `cluster selector ${JSON.stringify(sel)} matches no cluster`);
    }
    selected.set(key, chosen);
    return chosen;
  };

  // Namespaces declared per cluster.
  const nsByCluster = new Map<string, Map<string, Record<string, string>>>();
  const declare = (cluster: string, name: string, labels: Readonly<Record<string, string>>) => {
    const m = nsByCluster.get(cluster) ?? new Map<string, Record<string, string>>();
    m.set(name, { ...(m.get(name) ?? {}), ...labels, 'kubernetes.io/metadata.name': name });
    nsByCluster.set(cluster, m);
  };
  for (const t of teams) {
    for (const c of selectClusters(t.props.clusters ?? 'all', t)) {
      for (const n of t.props.namespaces) declare(c.name, n, { ...(t.props.labels ?? {}), [TEAM_LABEL]: t.node.id });
    }
  }
  for (const n of namespaces) for (const c of selectClusters(n.props.clusters ?? 'all', n)) declare(c.name, n.name, n.props.labels ?? {});

  const scopes = new Map<string, Scope>();
  const scopeOn = (sel: NamespaceSelector, cluster: string): Scope => {
    if (sel === 'cluster') return { kind: 'cluster' };
    const key = `${cluster}\u0000${JSON.stringify(sel)}`;
    const hit = scopes.get(key);
    if (hit) return hit;
    let scope: Scope;
    if (Array.isArray(sel)) scope = { kind: 'namespaces', namespaces: [...new Set(sel as readonly string[])].sort() };
    else {
      const labels = (sel as { labels: Record<string, string> }).labels;
      const names = [...(nsByCluster.get(cluster) ?? new Map()).entries()].filter(([, l]) => labelsMatch(l, labels)).map(([n]) => n);
      scope = { kind: 'namespaces', namespaces: names.sort() };
    }
    scopes.set(key, scope);
    return scope;
  };

  // Per-construct checks that do not depend on the cluster.
  const catalogFor = (cluster: string) => {
    const cat = catalogs.get(cluster);
    return cat ? catalogIndex(cat) : undefined;
  };
  for (const c of clusters) {
    if (!catalogs.has(c.name)) {
      report('error', 'MISSING_CATALOG', where(c), `no API resource catalog for cluster ${c.name}`, `run 'portcullis discover --cluster ${c.name} --kubeconfig FILE' or copy another cluster's generated/catalog file`);
    }
  }

  // Subtraction and normalisation depend only on the role and the denies bound, not on the cluster: memoise them.
  const roleIds = new Map<object, number>();
  const narrowCache = new Map<string, { rules: readonly PolicyRule[]; lossy: boolean; role: string }>();
  const narrow = (role: Grant['props']['role'], bound: readonly DenyRule[], cat: CatalogIndex) => {
    let rid = roleIds.get(role);
    if (rid === undefined) roleIds.set(role, (rid = roleIds.size));
    const key = `${rid}|${cat.catalog.kubernetesVersion}|${cat.catalog.resources.length}|${bound.map((d) => d.id).join(',')}`;
    let hit = narrowCache.get(key);
    if (!hit) {
      const n = subtractDenies(normalizeRules(role.rules), bound.flatMap((d) => widenStreamDenies(d.rules)), cat);
      hit = { ...n, role: `${role.roleName}:${sha256(canonicalJson(n.rules)).slice(0, 10)}` };
      narrowCache.set(key, hit);
    }
    return hit;
  };

  // Session limits: per selected cluster, the shortest of each limit wins.
  const sessionLimitsOf = new Map<string, { idleTimeoutSeconds?: number; maxLifetimeSeconds?: number }>();
  for (const l of limits) {
    const idle = l.props.idleTimeout === undefined ? undefined : parseDuration(l.props.idleTimeout);
    const max = l.props.maxLifetime === undefined ? undefined : parseDuration(l.props.maxLifetime);
    if (idle === undefined && max === undefined) {
      report('error', 'BREAK_GLASS_NO_MAX_DURATION', where(l), `session limits ${idOf(l)} set neither idleTimeout nor maxLifetime as a duration like '15m' or '4h'`);
      continue;
    }
    if ((l.props.idleTimeout !== undefined && idle === undefined) || (l.props.maxLifetime !== undefined && max === undefined)) {
      report('error', 'BREAK_GLASS_NO_MAX_DURATION', where(l), `session limits ${idOf(l)}: a duration looks like '15m', '4h' or '1d'`);
      continue;
    }
    for (const c of selectClusters(l.props.clusters, l)) {
      const cur = sessionLimitsOf.get(c.name) ?? {};
      const min = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
      const i = min(cur.idleTimeoutSeconds, idle);
      const m = min(cur.maxLifetimeSeconds, max);
      sessionLimitsOf.set(c.name, { ...(i !== undefined ? { idleTimeoutSeconds: i } : {}), ...(m !== undefined ? { maxLifetimeSeconds: m } : {}) });
    }
  }

  const sessionLimitsFor = (cluster: string): { sessionLimits?: RuleSet['sessionLimits'] & object } => {
    const l = sessionLimitsOf.get(cluster);
    return l ? { sessionLimits: l } : {};
  };

  const rulesChecked = new Map<object, Set<string>>();
  const out: ResolvedCluster[] = [];
  const perCluster = new Map<string, { grants: GrantRule[]; denies: DenyRule[]; users: Set<string>; groups: Set<string> }>();
  for (const c of clusters) perCluster.set(c.name, { grants: [], denies: [], users: new Set(), groups: new Set() });
  for (const t of teams) {
    for (const c of selectClusters(t.props.clusters ?? 'all', t)) {
      const pc = perCluster.get(c.name);
      for (const m of t.props.members ?? []) pc?.users.add(m.name);
    }
  }

  // Denies first: grants are narrowed by them.
  const denyTargets = new Map<Deny, Cluster[]>();
  for (const d of denies) {
    const id = idOf(d);
    const rules = 'roleName' in d.props.rules ? d.props.rules.rules : (d.props.rules as readonly PolicyRule[]);
    const targets = selectClusters(d.props.clusters, d);
    denyTargets.set(d, targets);
    for (const c of targets) {
      const cat = catalogFor(c.name);
      if (cat) checkRules(rules, cat, (code, msg, hint) => report('error', code, where(d), msg, hint), { deny: true });
      const scope = scopeOn(d.props.namespaces ?? 'cluster', c.name);
      const subjects = d.props.subjects === 'everyone' ? ('everyone' as const) : plainSubjects(d.props.subjects);
      perCluster.get(c.name)?.denies.push({ id, source: d.source, subjects, except: plainSubjects(d.props.except ?? []), rules: normalizeRules(rules), scope });
    }
    for (const s of d.props.subjects === 'everyone' ? [] : d.props.subjects) checkSubject(s, d);
  }

  function checkSubject(s: Subject, at: IConstruct & { source: SourceLocation }) {
    if (s.name.startsWith('system:')) report('error', 'SYSTEM_NAME', where(at), `subject ${s.name} starts with system:`);
    // The proxy's own names: activation groups, and the user it impersonates for members the policy does not name.
    else if (s.name.startsWith(RESERVED_PREFIX)) report('error', 'SYSTEM_NAME', where(at), `subject ${s.name} starts with ${RESERVED_PREFIX}, which names the proxy's own identities (${MEMBER_USER}, activation groups)`);
  }

  for (const g of grants) {
    const id = idOf(g);
    const p = g.props;
    for (const s of p.to) checkSubject(s, g);
    if (p.to.length === 0) report('error', 'EMPTY_RULE', where(g), `grant ${id} is given to nobody`);
    const condProblems = checkConditions(p);
    for (const cp of condProblems) report('error', cp.code, where(g), cp.message, cp.hint);
    const ack = p.acknowledgeEscalation ?? p.role.acknowledgeEscalation;
    const iso = (t: string | undefined) => (t !== undefined && !Number.isNaN(Date.parse(t)) ? new Date(t).toISOString() : undefined);
    const notBefore = iso(p.notBefore);
    const expires = iso(p.expires);
    const conditions: Conditions = {
      ...(notBefore ? { notBefore } : {}),
      ...(expires ? { expires } : {}),
      ...(p.windows?.length ? { windows: p.windows } : {}),
      ...(p.breakGlass ? { breakGlass: { maxDurationSeconds: parseDuration(p.breakGlass.maxDuration) ?? 0, notify: [...(p.breakGlass.notify ?? [])].sort() } } : {}),
      ...(p.approval ? { approval: { approvers: plainSubjects(p.approval.approvers), maxDurationSeconds: parseDuration(p.approval.maxDuration) ?? 0 } } : {}),
    };
    if (condProblems.length === 0 && p.expires && Date.parse(p.expires) <= now) {
      report('warning', 'GRANT_EXPIRED', where(g), `grant ${id} expired at ${conditions.expires}; it is left out`);
      continue;
    }
    if (condProblems.length === 0 && p.notBefore && Date.parse(p.notBefore) > now) {
      report('warning', 'GRANT_NOT_YET_ACTIVE', where(g), `grant ${id} starts at ${conditions.notBefore}; it is left out until a compile after then`);
      continue;
    }
    const conditional = conditions.expires !== undefined || conditions.windows !== undefined || conditions.breakGlass !== undefined || conditions.approval !== undefined;
    const targets = selectClusters(p.clusters, g);
    let matchedNamespaces = p.namespaces === 'cluster' || Array.isArray(p.namespaces);
    for (const c of targets) {
      const cat = catalogFor(c.name);
      if (!cat) continue;
      const checkKey = `${cat.catalog.kubernetesVersion}|${cat.catalog.resources.length}|${ack ?? ''}`;
      const checked = rulesChecked.get(p.role) ?? new Set<string>();
      rulesChecked.set(p.role, checked);
      if (!p.role.builtin && !checked.has(checkKey)) {
        checked.add(checkKey);
        // A role's problems are reported where the role is written, once.
        const at = p.role instanceof Role ? where(p.role) : where(g);
        checkRules(p.role.rules, cat, (code, msg, hint) => report('error', code, at, msg, hint), { acknowledged: ack !== undefined && ack.trim() !== '' });
      }
      const scope = scopeOn(p.namespaces, c.name);
      if (Array.isArray(p.namespaces)) {
        // A RoleBinding in a namespace that does not exist fails the cluster's whole apply.
        const declared = nsByCluster.get(c.name);
        for (const n of scope.kind === 'namespaces' ? scope.namespaces : []) {
          if (declared?.has(n) || KUBE_NAMESPACES.has(n) || !DNS1123_LABEL.test(n)) continue;
          report('error', 'UNDECLARED_NAMESPACE', where(g), `grant ${id} names namespace '${n}' on cluster ${c.name}, where no Namespace or Team declares it`, `declare it: new Namespace(fleet, '${n}', { clusters: { names: ['${c.name}'] } })`);
        }
      }
      if (scope.kind === 'namespaces' && scope.namespaces.length > 0) matchedNamespaces = true;
      if (scope.kind === 'namespaces' && scope.namespaces.length === 0) continue;
      if (scope.kind === 'namespaces' && p.role.rules.some((r) => r.nonResourceURLs?.length)) {
        report('error', 'NON_RESOURCE_IN_NAMESPACE', where(g), `grant ${id} gives nonResourceURLs in namespaces; RBAC honours them only cluster-wide`, "use namespaces: 'cluster'");
      }
      const pc = perCluster.get(c.name);
      if (!pc) continue;
      const subjects = plainSubjects(p.to);
      const applicable = pc.denies.filter((d) => overlapsScope(d.scope, scope));
      // Denies that bind every subject of the grant whoever the caller is narrow the grant itself.
      const bound = applicable.filter((d) => d.except.length === 0 && subjects.every((s) => denyBinds(d, s)));
      const narrowed = narrow(p.role, bound, cat);
      if (narrowed.rules.some(streamGetGap)) {
        report('warning', 'STREAM_GET_UPSTREAM', where(g), `grant ${id} gives get but not create on pods' exec, attach or portforward through a wildcard: the proxy refuses those (they are create), but kube-apiserver lets a WebSocket one through with get, so going around the proxy gets them`, 'name the resources instead of a wildcard, or grant create on them too');
      }
      // The others may bind some callers the grant reaches and not others (a deny on another subject, which a
      // member of the grant's groups may also be; one with exceptions): RBAC cannot see membership, so where
      // such a deny overlaps the grant, the subjects get the grant less the deny, and the whole grant goes to a
      // guard group the proxy asserts on the requests it allows by this grant, which passed every deny (core/decide.ts).
      const guards = applicable.filter((d) => !bound.includes(d) && mayBind(d, subjects) && narrow(p.role, [...bound, d], cat).role !== narrowed.role);
      const direct = guards.length ? narrow(p.role, [...bound, ...guards], cat) : undefined;

      if (narrowed.lossy) {
        report('warning', 'DENY_NARROWS_GRANT', where(g), `on ${c.name}, RBAC cannot express exactly what remains of grant ${id} after ${bound.map((d) => d.id).join(', ')}; the grant keeps less, never more`);
      }
      const partial = bound.filter((d) => d.scope.kind === 'namespaces' && (scope.kind === 'cluster' || scope.namespaces.some((n) => !(d.scope as { namespaces: readonly string[] }).namespaces.includes(n))));
      if (partial.length) {
        report('warning', 'DENY_NARROWS_GRANT', where(g), `on ${c.name}, grant ${id} loses what ${partial.map((d) => d.id).join(', ')} forbid in all of its namespaces, not only the denied ones (one role per grant)`);
      }
      const activationGroup = conditional ? `${ACTIVATION_GROUP_PREFIX}${id}` : undefined;
      pc.grants.push({
        id,
        source: g.source,
        subjects,
        rules: narrowed.rules,
        role: narrowed.role,
        scope,
        conditions,
        ...(activationGroup ? { activationGroup } : {}),
        ...(p.recordInput ? { recordInput: true as const } : {}),
        ...(direct ? { guard: { group: `${ACTIVATION_GROUP_PREFIX}${id}:undenied`, denies: guards.map((d) => d.id).sort(), directRole: direct.role, directRules: direct.rules } } : {}),
      });
      for (const s of subjects) (s.kind === 'User' ? pc.users : pc.groups).add(s.name);
      if (activationGroup) pc.groups.add(activationGroup);
      if (direct) pc.groups.add(`${ACTIVATION_GROUP_PREFIX}${id}:undenied`);
    }
    if (!matchedNamespaces && targets.length > 0) {
      report('error', 'SELECTOR_MATCHES_NOTHING', where(g), `namespace selector ${JSON.stringify(p.namespaces)} of grant ${id} matches no declared namespace on its clusters`);
    }
  }

  for (const c of clusters) {
    const pc = perCluster.get(c.name);
    if (!pc) continue;
    const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : 1);
    const ns = [...(nsByCluster.get(c.name) ?? new Map<string, Record<string, string>>()).entries()]
      .map(([name, labels]) => ({ name, labels }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    out.push({
      name: c.name,
      server: c.props.server ?? '',
      ...(c.props.agent === true ? { agent: true } : {}),
      ...(c.props.proxyUrl ? { proxyUrl: c.props.proxyUrl } : {}),
      labels: c.labels,
      namespaces: ns,
      ruleSet: {
        apiVersion: 'portcullis.dev/v1',
        kind: 'RuleSet',
        cluster: c.name,
        grants: pc.grants.sort(byId),
        denies: pc.denies.sort(byId),
        impersonable: { users: [...pc.users].sort(), groups: [...pc.groups].sort() },
        ...sessionLimitsFor(c.name),
      },
    });
  }
  return {
    fleet: fleet.name,
    clusters: out.sort((a, b) => (a.name < b.name ? -1 : 1)),
    identityProviders: idps
      .map((i) => ({ name: i.node.id, issuer: i.props.issuer, usernamePrefix: i.props.usernamePrefix, groupsPrefix: i.groupsPrefix }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
    problems: dedupe(problems).sort((a, b) => (a.source.file + String(a.source.line).padStart(6, '0') < b.source.file + String(b.source.line).padStart(6, '0') ? -1 : 1)),
  };
}

const STREAMS = ['pods/exec', 'pods/attach', 'pods/portforward'];

/**
 * kube-apiserver v1.34 authorizes a WebSocket exec, attach or port-forward
 * as `get` (only v1.35's AuthorizePodWebsocketUpgradeCreatePermission asks
 * for `create`), so a deny of `create` on those must also take `get` away in
 * RBAC, or going around the proxy would still open a stream.
 */
export function widenStreamDenies(rules: readonly PolicyRule[]): PolicyRule[] {
  return rules.map((r) => {
    const streams = (r.resources ?? []).some((x) => x === '*' || x === '*/exec' || x === '*/attach' || x === '*/portforward' || STREAMS.includes(x));
    return streams && r.verbs.includes('create') && !r.verbs.includes('get') ? { ...r, verbs: [...r.verbs, 'get'] } : r;
  });
}

function dedupe(problems: readonly Problem[]): Problem[] {
  const seen = new Map<string, Problem>();
  for (const p of problems) seen.set(JSON.stringify([p.code, p.message, p.source, p.path]), p);
  return [...seen.values()];
}

function plainSubjects(list: readonly Subject[]): Subject[] {
  const seen = new Map<string, Subject>();
  for (const s of list) seen.set(`${s.kind}:${s.name}`, { kind: s.kind, name: s.name });
  return [...seen.values()].sort((a, b) => (`${a.kind}:${a.name}` < `${b.kind}:${b.name}` ? -1 : 1));
}

/**
 * Whether a deny may bind a caller who reaches a grant to `subjects`: always, unless it excepts every
 * one of them (whoever reaches the grant is excepted), or both name users only and none in common
 * (a user is one identity; groups can hold anyone).
 */
function mayBind(d: DenyRule, subjects: readonly Subject[]): boolean {
  if (subjects.every((s) => d.except.some((e) => e.kind === s.kind && e.name === s.name))) return false;
  if (d.subjects === 'everyone' || d.subjects.some((x) => x.kind === 'Group') || subjects.some((s) => s.kind === 'Group')) return true;
  return d.subjects.some((x) => subjects.some((s) => s.name === x.name));
}

/** Whether a deny binds a subject for RBAC purposes: named by it, or everyone and not excepted. */
function denyBinds(d: DenyRule, s: Subject): boolean {
  if (d.except.some((e) => e.kind === s.kind && e.name === s.name)) return false;
  return d.subjects === 'everyone' || d.subjects.some((x) => x.kind === s.kind && x.name === s.name);
}

function overlapsScope(deny: Scope, grant: Scope): boolean {
  if (deny.kind === 'cluster' || grant.kind === 'cluster') return true;
  return grant.namespaces.some((n) => deny.namespaces.includes(n));
}

export { NON_RESOURCE_VERBS };

/**
 * What is wrong with a cluster's `proxyUrl`, if anything. It is the cluster's own URL through the
 * proxy, used as a kubeconfig server as is: https, no query or fragment, and either a host of its
 * own at the root (docs/addressing.md: what every kubectl command works with) or the proxy's
 * `/clusters/NAME` prefix.
 */
function proxyUrlProblem(url: string, cluster: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'https:') return 'not https';
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') return 'a query, fragment or credentials';
  const path = u.pathname.replace(/\/+$/, '');
  if (path !== '' && path !== `/clusters/${cluster}`) return `path ${u.pathname} is neither the root nor /clusters/${cluster}`;
  return undefined;
}
