import { compactCanonicalJson } from './canonical-json.ts';
import type { Deny, Grant, PolicyRule, RuleSet } from './rule-set.ts';

/**
 * The rules.json wire format: the RuleSet with each distinct rule list stored
 * once in a `roles` table that grants name, one grant or deny per line (so a
 * pull request's diff shows one line per changed grant), keys sorted. Grants
 * with the same role share one rules array after decoding.
 */
export function encodeRuleSet(rs: RuleSet): string {
  const roles: Record<string, readonly PolicyRule[]> = {};
  const grants = rs.grants.map((g) => {
    const { rules, guard, ...rest } = g;
    if (g.role === undefined) return g;
    roles[g.role] = rules;
    if (!guard) return rest;
    const { directRules, ...ref } = guard;
    roles[guard.directRole] = directRules;
    return { ...rest, guard: ref };
  });
  const line = compactCanonicalJson;
  const list = (xs: readonly unknown[]) => (xs.length ? `[\n${xs.map(line).join(',\n')}\n]` : '[]');
  const sortedRoles = Object.keys(roles).sort();
  return [
    '{',
    `"apiVersion":${JSON.stringify(rs.apiVersion)},"kind":${JSON.stringify(rs.kind)},"cluster":${JSON.stringify(rs.cluster)},`,
    `"impersonable":${line(rs.impersonable)},`,
    ...(rs.sessionLimits ? [`"sessionLimits":${line(rs.sessionLimits)},`] : []),
    `"roles":{${sortedRoles.length ? `\n${sortedRoles.map((k) => `${JSON.stringify(k)}:${line(roles[k])}`).join(',\n')}\n` : ''}},`,
    `"grants":${list(grants)},`,
    `"denies":${list(rs.denies)}`,
    '}',
    '',
  ].join('\n');
}

/** Decodes rules.json (trusted bytes: verify the bundle first) and checks its shape so the authorizer cannot trip over it. */
export function decodeRuleSet(text: string): RuleSet {
  const v = JSON.parse(text) as Partial<RuleSet> & { roles?: Record<string, PolicyRule[]> };
  if (!v || v.apiVersion !== 'portcullis.dev/v1' || v.kind !== 'RuleSet' || typeof v.cluster !== 'string') throw new Error('not a portcullis.dev/v1 RuleSet');
  if (!Array.isArray(v.grants) || !Array.isArray(v.denies)) throw new Error('lacks grants or denies');
  const imp = v.impersonable;
  if (!imp || !Array.isArray(imp.users) || !Array.isArray(imp.groups)) throw new Error('lacks impersonable users and groups');
  const roles = v.roles ?? {};
  const grants: Grant[] = v.grants.map((g) => {
    const rules = g.rules ?? (g.role !== undefined ? roles[g.role] : undefined);
    if (typeof g.id !== 'string' || !Array.isArray(rules) || !Array.isArray(g.subjects) || !g.scope || !g.conditions || !g.source) {
      throw new Error(`malformed grant ${String(g.id)}`);
    }
    if (g.guard === undefined) return { ...g, rules };
    const guard = g.guard as Partial<Grant['guard'] & object>;
    const directRules = guard.directRules ?? (typeof guard.directRole === 'string' ? roles[guard.directRole] : undefined);
    if (typeof guard.group !== 'string' || !Array.isArray(guard.denies) || typeof guard.directRole !== 'string' || !Array.isArray(directRules)) throw new Error(`malformed guard of grant ${g.id}`);
    return { ...g, rules, guard: { group: guard.group, denies: guard.denies, directRole: guard.directRole, directRules } };
  });
  for (const d of v.denies as Deny[]) {
    if (typeof d.id !== 'string' || !Array.isArray(d.rules) || !Array.isArray(d.except) || !d.scope) throw new Error(`malformed deny ${String(d.id)}`);
  }
  const sl = v.sessionLimits;
  if (sl !== undefined && (typeof sl !== 'object' || Object.values(sl).some((x) => typeof x !== 'number' || !(x > 0)))) throw new Error('malformed sessionLimits');
  return { apiVersion: v.apiVersion, kind: v.kind, cluster: v.cluster, grants, denies: v.denies, impersonable: imp, ...(sl ? { sessionLimits: sl } : {}) };
}
