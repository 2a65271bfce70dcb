import { nonResourceURLMatches, resourceMatches, type PolicyRule } from '../../core/index.ts';
import type { CatalogIndex } from '../catalog.ts';

/** Rules after removing what denies forbid; `lossy` when RBAC could not say exactly "all but" and dropped more. */
export interface Subtracted {
  readonly rules: readonly PolicyRule[];
  readonly lossy: boolean;
}

/**
 * RBAC is additive, so a deny is made to hold in RBAC by removing from each
 * grant's rules whatever the deny matches. Wildcards are expanded against the
 * catalog only where they overlap a deny; everything else stays as written.
 * Where RBAC cannot express the remainder (a deny on some resourceNames of a
 * rule that allows every name) the overlapping part is dropped and the result
 * is `lossy`: stricter than the policy, never looser.
 */
export function subtractDenies(rules: readonly PolicyRule[], denyRules: readonly PolicyRule[], cat: CatalogIndex): Subtracted {
  let out: PolicyRule[] = [...rules];
  let lossy = false;
  for (const d of denyRules) {
    const next: PolicyRule[] = [];
    for (const r of out) {
      const s = subtractOne(r, d, cat);
      next.push(...s.rules);
      lossy ||= s.lossy;
    }
    out = next;
  }
  return { rules: normalizeRules(out), lossy };
}

function subtractOne(r: PolicyRule, d: PolicyRule, cat: CatalogIndex): Subtracted {
  if (r.nonResourceURLs?.length) return subtractNonResource(r, d);
  if (!d.resources?.length || !overlaps(r.verbs, d.verbs)) return { rules: [r], lossy: false };
  const rGroups = r.apiGroups ?? [];
  const dGroups = d.apiGroups ?? [];
  const rAll = rGroups.includes('*');
  const dAll = dGroups.includes('*');
  const shared = rAll ? (dAll ? cat.groups : dGroups) : dAll ? rGroups : rGroups.filter((g) => dGroups.includes(g));
  if (shared.length === 0) return { rules: [r], lossy: false };
  const out: PolicyRule[] = [];
  let lossy = false;
  const rest = (rAll ? cat.groups : rGroups).filter((g) => !shared.includes(g));
  if (rest.length) out.push({ ...r, apiGroups: rest });
  if (rAll) lossy = true; // groups a cluster adds later are not covered any more
  for (const g of [...new Set(shared)].sort()) {
    const resources = (r.resources ?? []).some((x) => x.startsWith('*')) ? cat.expandResources(r, g) : (r.resources ?? []);
    for (const res of resources) {
      const sub = res.includes('/') ? res.slice(res.indexOf('/') + 1) : '';
      if (!resourceMatches(d, res, sub)) {
        out.push(atom(g, res, r.verbs, r.resourceNames));
        continue;
      }
      const verbs = r.verbs.includes('*') ? cat.verbsOf(g, res) : r.verbs;
      const dVerbs = d.verbs.includes('*') ? verbs : d.verbs;
      const keptVerbs = verbs.filter((v) => !dVerbs.includes(v));
      const dNames = d.resourceNames ?? [];
      const rNames = r.resourceNames ?? [];
      if (keptVerbs.length) out.push(atom(g, res, keptVerbs, r.resourceNames));
      if (dNames.length === 0) continue;
      const deniedVerbs = verbs.filter((v) => dVerbs.includes(v));
      if (rNames.length === 0) {
        lossy = true; // "every name but these" is not expressible in RBAC
        continue;
      }
      const keptNames = rNames.filter((n) => !dNames.includes(n));
      if (keptNames.length && deniedVerbs.length) out.push(atom(g, res, deniedVerbs, keptNames));
    }
  }
  return { rules: out, lossy };
}

function subtractNonResource(r: PolicyRule, d: PolicyRule): Subtracted {
  if (!d.nonResourceURLs?.length || !overlaps(r.verbs, d.verbs)) return { rules: [r], lossy: false };
  const out: PolicyRule[] = [];
  let lossy = false;
  for (const u of r.nonResourceURLs ?? []) {
    const isPattern = u.endsWith('*');
    const prefix = u.replace(/\*+$/, '');
    const fully = isPattern ? coversPrefix(d, prefix) : nonResourceURLMatches(d, u);
    const partly = !fully && isPattern && (d.nonResourceURLs ?? []).some((x) => x.replace(/\*+$/, '').startsWith(prefix));
    if (!fully && !partly) {
      out.push({ nonResourceURLs: [u], verbs: r.verbs });
      continue;
    }
    if (partly) {
      lossy = true; // a pattern partly denied: drop the denied verbs on the whole pattern
    }
    const dVerbs = d.verbs.includes('*') ? ['*'] : d.verbs;
    if (dVerbs.includes('*')) continue;
    const verbs = r.verbs.includes('*') ? ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'] : r.verbs;
    const kept = verbs.filter((v) => !dVerbs.includes(v));
    if (kept.length) out.push({ nonResourceURLs: [u], verbs: kept });
  }
  return { rules: out, lossy };
}

function coversPrefix(d: PolicyRule, prefix: string): boolean {
  return (d.nonResourceURLs ?? []).some((x) => x === '*' || (x.endsWith('*') && prefix.startsWith(x.replace(/\*+$/, ''))));
}

function overlaps(a: readonly string[], b: readonly string[]): boolean {
  return a.includes('*') || b.includes('*') || a.some((v) => b.includes(v));
}

function atom(group: string, resource: string, verbs: readonly string[], names: readonly string[] | undefined): PolicyRule {
  return { apiGroups: [group], resources: [resource], verbs, ...(names?.length ? { resourceNames: names } : {}) };
}

/**
 * Sorted, de-duplicated lists, and rules that differ only in resources merged:
 * the same rules give the same bytes whatever order they were written in.
 */
export function normalizeRules(rules: readonly PolicyRule[]): PolicyRule[] {
  const merged = new Map<string, { base: PolicyRule; resources: Set<string> }>();
  const rest: PolicyRule[] = [];
  for (const r of rules) {
    const n = sortRule(r);
    if (n.nonResourceURLs?.length) {
      rest.push(n);
      continue;
    }
    const key = JSON.stringify([n.apiGroups, n.verbs, n.resourceNames ?? []]);
    const e = merged.get(key) ?? { base: n, resources: new Set<string>() };
    for (const x of n.resources ?? []) e.resources.add(x);
    merged.set(key, e);
  }
  const out = [...merged.values()].map((e) => sortRule({ ...e.base, resources: [...e.resources] }));
  const all = [...out, ...rest].filter((r) => r.verbs.length > 0);
  const seen = new Set<string>();
  return all
    .filter((r) => {
      const k = JSON.stringify(r);
      return seen.has(k) ? false : (seen.add(k), true);
    })
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

function sortRule(r: PolicyRule): PolicyRule {
  const s = (xs: readonly string[]) => [...new Set(xs)].sort();
  return {
    verbs: s(r.verbs),
    ...(r.apiGroups ? { apiGroups: s(r.apiGroups) } : {}),
    ...(r.resources ? { resources: s(r.resources) } : {}),
    ...(r.resourceNames?.length ? { resourceNames: s(r.resourceNames) } : {}),
    ...(r.nonResourceURLs?.length ? { nonResourceURLs: s(r.nonResourceURLs) } : {}),
  };
}
