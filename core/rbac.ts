import type { RequestAttributes } from './attributes.ts';
import type { PolicyRule } from './rule-set.ts';

/**
 * Mirrors RuleAllows in k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/rbac.go
 * and the helpers in pkg/apis/rbac/v1/evaluation_helpers.go: a grant of `pods`
 * covers no subresource, `*` covers all, `* /scale` covers every scale.
 */
export function ruleAllows(attrs: RequestAttributes, rule: PolicyRule): boolean {
  if (attrs.isResourceRequest) {
    const combined = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
    return (
      verbMatches(rule, attrs.verb) &&
      apiGroupMatches(rule, attrs.apiGroup) &&
      resourceMatches(rule, combined, attrs.subresource) &&
      resourceNameMatches(rule, attrs.name)
    );
  }
  return verbMatches(rule, attrs.verb) && nonResourceURLMatches(rule, attrs.path);
}

/** Mirrors VerbMatches. */
export function verbMatches(rule: PolicyRule, verb: string): boolean {
  return rule.verbs.some((v) => v === '*' || v === verb);
}

/** Mirrors APIGroupMatches. */
export function apiGroupMatches(rule: PolicyRule, group: string): boolean {
  return (rule.apiGroups ?? []).some((g) => g === '*' || g === group);
}

/** Mirrors ResourceMatches, including the `* /subresource` form. */
export function resourceMatches(rule: PolicyRule, combined: string, subresource: string): boolean {
  for (const r of rule.resources ?? []) {
    if (r === '*' || r === combined) return true;
    if (!subresource) continue;
    if (r.length === subresource.length + 2 && r.startsWith('*/') && r.endsWith(subresource)) return true;
  }
  return false;
}

/** Mirrors ResourceNameMatches: an empty list matches every name. */
export function resourceNameMatches(rule: PolicyRule, name: string): boolean {
  const names = rule.resourceNames ?? [];
  return names.length === 0 || names.includes(name);
}

/** Mirrors NonResourceURLMatches: `*` all, exact, or a `prefix*` (all trailing `*` trimmed). */
export function nonResourceURLMatches(rule: PolicyRule, path: string): boolean {
  for (const u of rule.nonResourceURLs ?? []) {
    if (u === '*' || u === path) return true;
    if (u.endsWith('*') && path.startsWith(u.replace(/\*+$/, ''))) return true;
  }
  return false;
}
