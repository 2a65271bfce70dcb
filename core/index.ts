/**
 * The shared core: request attributes, RBAC matching, the authorizer and the
 * bundle format. Used by the compiler (explain, who-can, diff-access) and the
 * runtime proxy. Nothing here does I/O; the clock and trust material are passed in.
 */
export type { RequestAttributes } from './attributes.ts';
export { accessLines, diffAccess, expandRuleSet, formatAccessLine, type AccessAtom, type AccessChange, type AccessLine } from './access-diff.ts';
export { decide, type Verdict } from './decide.ts';
export { authorize, type AuthorizeContext, type Decision, type InactiveGrant } from './authorize.ts';
export { activeUntil, evaluateConditions, inWindow, toMinutes, type ConditionResult } from './conditions.ts';
export { apiGroupMatches, nonResourceURLMatches, resourceMatches, resourceNameMatches, ruleAllows, verbMatches } from './rbac.ts';
export { indexRuleSet, resourceKey, type Buckets, type Indexed, type RuleIndex } from './rule-index.ts';
export type * from './rule-set.ts';
export { BundleError, type BundleErrorCode } from './bundle-error.ts';
export {
  ENVELOPE_FILE,
  PAYLOAD_TYPE,
  POLICY_COMMIT_ANNOTATION,
  isCommitId,
  keyIdOf,
  trustedKeysOf,
  pae,
  sha256,
  signStatement,
  verifyBundle,
  type BundleStatement,
  type Envelope,
  type TrustedKeys,
  type VerifyExpectations,
} from './bundle.ts';
export { bundleExpiry, describeExpiry, type BundleExpiry } from './bundle-expiry.ts';
export { canonicalJson } from './canonical-json.ts';
export { formatDuration, parseDuration } from './duration.ts';
export {
  AUDIT_ANNOTATION,
  BREAK_GLASS_CONFIGMAP,
  BUNDLE_CONFIGMAP,
  BUNDLE_READER,
  CLUSTER_LABEL,
  EXTRA_AUTHENTICATED_BY,
  EXTRA_GRANT,
  EXTRA_KEYS,
  EXTRA_USER,
  IMPERSONATOR_ROLE,
  MANAGED_BY,
  MEMBER_USER,
  PROXY_NAMESPACE,
  PROXY_SERVICE_ACCOUNT,
  RESERVED_PREFIX,
  REVISION_FLOOR_CONFIGMAP,
} from './names.ts';
export { decodeRuleSet, encodeRuleSet } from './rule-set-codec.ts';
export { authorizationVerb, parseRequestInfo, toAttributes, type RequestInfo } from './request-info.ts';
export { checkRequestTarget, type RequestTargetResult } from './request-target.ts';
