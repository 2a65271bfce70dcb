import type { RequestAttributes } from './attributes.ts';
import { authorize, type AuthorizeContext, type Decision } from './authorize.ts';
import { MEMBER_USER } from './names.ts';
import type { RuleIndex } from './rule-index.ts';

/** A decision for an identity, and the identity to impersonate upstream when allowed. */
export interface Verdict {
  readonly decision: Decision;
  /** Groups the policy does not name: seen by denies, not impersonated (no grant names them). */
  readonly droppedGroups: readonly string[];
  /**
   * Set when allowed: the user and groups to impersonate, with the determining grant's activation
   * group. A user the policy does not name is impersonated as MEMBER_USER (`asMember`).
   */
  readonly impersonate?: { readonly user: string; readonly groups: readonly string[]; readonly asMember: boolean };
}

/**
 * The proxy's whole decision for one request, shared with `portcullis explain`: `authorize` with
 * every group the identity carries, so that denies see them all (SECURITY rule 22); grants can
 * match only subjects the policy names. Upstream the proxy asserts the named groups (plus the
 * deciding grant's activation and guard groups), and the user itself if the policy names it, else MEMBER_USER.
 */
export function decide(attrs: RequestAttributes, index: RuleIndex, ctx: AuthorizeContext): Verdict {
  const droppedGroups = attrs.groups.filter((g) => !index.impersonableGroups.has(g));
  const decision = authorize(attrs, index, ctx);
  if (!decision.allowed) return { decision, droppedGroups };
  const groups = droppedGroups.length ? attrs.groups.filter((g) => index.impersonableGroups.has(g)) : attrs.groups;
  const { activationGroup, guard } = decision.grant;
  // The activation group while the conditions hold; the guard group because this request passed every deny (Grant.guard).
  const asserted = activationGroup === undefined && guard === undefined ? groups : [...groups, ...(activationGroup !== undefined ? [activationGroup] : []), ...(guard ? [guard.group] : [])];
  const named = index.impersonableUsers.has(attrs.user);
  return { decision, droppedGroups, impersonate: { user: named ? attrs.user : MEMBER_USER, groups: asserted, asMember: !named } };
}
