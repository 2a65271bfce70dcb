import type { PolicyRule } from '../../core/index.ts';
import { NON_RESOURCE_VERBS, type CatalogIndex } from '../catalog.ts';
import { didYouMean, type ProblemCode } from '../problem.ts';

type Report = (code: ProblemCode, message: string, hint?: string) => void;

/** Checks rules against a cluster's catalog and RBAC's own rules; reports every problem. */
export function checkRules(rules: readonly PolicyRule[], cat: CatalogIndex, report: Report, opts: { acknowledged?: boolean; deny?: boolean }): void {
  for (const r of rules) {
    const hasRes = (r.resources?.length ?? 0) > 0;
    const hasUrls = (r.nonResourceURLs?.length ?? 0) > 0;
    if (r.verbs.length === 0 || (!hasRes && !hasUrls) || (hasRes && hasUrls)) {
      report('EMPTY_RULE', `rule ${JSON.stringify(r)} needs verbs and either resources or nonResourceURLs`);
      continue;
    }
    if (hasUrls) {
      for (const v of r.verbs) if (v !== '*' && !NON_RESOURCE_VERBS.includes(v)) report('UNKNOWN_VERB', `'${v}' is not a non-resource verb`, didYouMean(v, NON_RESOURCE_VERBS));
      continue;
    }
    for (const v of r.verbs) if (v !== '*' && !cat.allVerbs.has(v)) report('UNKNOWN_VERB', `unknown verb '${v}'`, didYouMean(v, cat.allVerbs));
    const groups = r.apiGroups ?? [];
    if (groups.length === 0) report('EMPTY_RULE', `rule ${JSON.stringify(r)} has no apiGroups ('' is the core group)`);
    for (const g of groups) if (g !== '*' && !cat.groups.includes(g)) report('UNKNOWN_API_GROUP', `unknown API group '${g}'`, didYouMean(g, cat.groups));
    for (const res of r.resources ?? []) {
      if (res === '*' || (res.startsWith('*/') && !res.slice(2).includes('*'))) continue;
      if (res.includes('*')) {
        report('INVALID_SUBRESOURCE_WILDCARD', `'${res}' is not understood by RBAC: only '*' and '*/SUBRESOURCE' are wildcards`, res.endsWith('/*') ? `list the subresources, e.g. '${res.slice(0, -1)}log'` : undefined);
        continue;
      }
      const known = groups.includes('*') ? cat.groups.some((g) => cat.find(g, res)) : groups.some((g) => cat.find(g, res));
      if (!known && groups.length) {
        const names = groups.flatMap((g) => (g === '*' ? [] : cat.resourcesOf(g).map((c) => c.resource)));
        report('UNKNOWN_RESOURCE', `unknown resource '${res}' in API group(s) ${groups.map((g) => `'${g}'`).join(', ')}`, didYouMean(res, names));
      }
    }
    if (r.resourceNames?.length && r.verbs.some((v) => v === 'create' || v === 'deletecollection' || v === '*')) {
      report('RESOURCE_NAMES_WITH_CREATE', `resourceNames cannot restrict ${r.verbs.filter((v) => ['create', 'deletecollection', '*'].includes(v)).join(', ')}: the name is not known when authorizing`, 'move those verbs to a rule without resourceNames');
    }
    if (!opts.deny && !opts.acknowledged) {
      const why = escalation(r);
      if (why) report('ESCALATION_NOT_ACKNOWLEDGED', `rule grants ${why}, which can escalate privileges`, "set acknowledgeEscalation: 'why this is needed' on the grant or role");
    }
  }
}

/** Why a rule is escalation-prone, or undefined. */
export function escalation(r: PolicyRule): string | undefined {
  const groups = r.apiGroups ?? [];
  const res = r.resources ?? [];
  const allVerbs = r.verbs.includes('*');
  const anyGroup = (g: string) => groups.includes('*') || groups.includes(g);
  const anyRes = (x: string) => res.includes('*') || res.includes(x);
  if (anyGroup('*') && groups.includes('*') && res.includes('*') && allVerbs) return "'*' on '*'";
  for (const v of ['bind', 'escalate', 'impersonate']) if (r.verbs.includes(v)) return `the '${v}' verb`;
  if (anyGroup('') && (anyRes('nodes/proxy') || res.includes('*/proxy'))) return 'nodes/proxy';
  if (allVerbs && anyGroup('rbac.authorization.k8s.io') && (anyRes('roles') || anyRes('clusterroles'))) return "'*' on roles (bind and escalate)";
  if (allVerbs && anyGroup('') && (anyRes('users') || anyRes('groups') || anyRes('serviceaccounts'))) return "'*' on users, groups or serviceaccounts (impersonate)";
  return undefined;
}
