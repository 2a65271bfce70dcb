import type { RequestAttributes } from './attributes.ts';
import { authorize, type AuthorizeContext, type Decision } from './authorize.ts';
import type { RuleIndex } from './rule-index.ts';

/** A decision for an identity, and the identity to impersonate upstream when allowed. */
export interface Verdict {
  readonly decision: Decision | { readonly allowed: false; readonly reason: 'not-impersonable'; readonly user: string };
  /** Groups the proxy may not impersonate (not named by the policy), dropped before deciding. */
  readonly droppedGroups: readonly string[];
  /** Set when allowed: the user and groups to impersonate, with the determining grant's activation group. */
  readonly impersonate?: { readonly user: string; readonly groups: readonly string[] };
}

/**
 * The proxy's whole decision for one request, shared with `portcullis
 * explain`: groups the policy does not name are dropped (the proxy could not
 * impersonate them), a user it does not name is denied, then `authorize`.
 */
export function decide(attrs: RequestAttributes, index: RuleIndex, ctx: AuthorizeContext): Verdict {
  const groups = attrs.groups.filter((g) => index.impersonableGroups.has(g));
  const droppedGroups = attrs.groups.filter((g) => !index.impersonableGroups.has(g));
  if (!index.impersonableUsers.has(attrs.user)) {
    return { decision: { allowed: false, reason: 'not-impersonable', user: attrs.user }, droppedGroups };
  }
  const decision = authorize(groups.length === attrs.groups.length ? attrs : { ...attrs, groups }, index, ctx);
  if (!decision.allowed) return { decision, droppedGroups };
  const g = decision.grant.activationGroup;
  return { decision, droppedGroups, impersonate: { user: attrs.user, groups: g ? [...groups, g] : groups } };
}
