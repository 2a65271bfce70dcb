import type { Deny, Grant, RequestAttributes, RuleSet } from '../../core/index.ts';
import { evaluateConditions, ruleAllows } from '../../core/index.ts';

/**
 * The authorizer's meaning, written as plainly as possible and used only by
 * tests: no index, no ordering tricks. Denied if any deny covering the
 * requester matches; else allowed if any active grant to the requester matches.
 */
export function referenceAuthorize(a: RequestAttributes, rs: RuleSet, now: number, breakGlass: ReadonlySet<string>): { allowed: boolean; by?: string } {
  const isMe = (s: { kind: string; name: string }) => (s.kind === 'User' ? s.name === a.user : a.groups.includes(s.name));
  const inScope = (x: Grant | Deny) => x.scope.kind === 'cluster' || (a.isResourceRequest && x.scope.namespaces.includes(a.namespace));
  for (const d of rs.denies) {
    const covers = (d.subjects === 'everyone' || d.subjects.some(isMe)) && !d.except.some(isMe);
    if (covers && inScope(d) && d.rules.some((r) => ruleAllows(a, r))) return { allowed: false, by: d.id };
  }
  for (const g of rs.grants) {
    if (g.subjects.some(isMe) && inScope(g) && g.rules.some((r) => ruleAllows(a, r)) && evaluateConditions(g.id, g.conditions, now, breakGlass).active) {
      return { allowed: true, by: g.id };
    }
  }
  return { allowed: false };
}
