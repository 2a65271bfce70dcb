/**
 * GitOps: `plan` and `apply` across the fleet and the pull-request comment.
 * The planning, diffing and rendering are pure; kubectl and GitHub calls are
 * thin adapters (kubectl.ts, github.ts), orchestrated by run.ts.
 */
export { accessLines, conditionOf, diffAccess, expandRuleSet, formatAccessLine, type AccessAtom, type AccessChange, type AccessLine } from '../core/access-diff.ts';
export { applyPlan, renderApplySummary, type ApplyOptions, type ApplyResult } from './apply.ts';
export { parseCredentials, readCredentials, selectClusters, type Credentials } from './fleet.ts';
export { readClusterBundle, readGenerated, verifyGeneratedBundle, type FleetCluster, type Generated, type GeneratedBundle } from './generated.ts';
export { GitopsError, type GitopsErrorCode } from './gitops-error.ts';
export { publishPlan, pullRequestFromEnv, setPlanStatus, upsertStickyComment, STATUS_CONTEXT, type PullRequestTarget } from './github.ts';
export { BUNDLE_CONFIGMAP, BUNDLE_NAMESPACE, KubectlClient, readLive, type ClusterClient, type LiveBundle } from './kubectl.ts';
export { FIELD_MANAGER, MANAGED_KINDS, normalizeDesired, normalizeLive, objectKey, type KubeObject } from './objects.ts';
export { countChanges, hasChanges, plan, planCluster, planExitCode, type BundleChange, type ClusterPlan, type DesiredCluster, type LiveCluster, type ObjectChange, type Plan } from './plan.ts';
export { COMMENT_MARKER, GITHUB_COMMENT_LIMIT, renderJson, renderMarkdown, renderText, summarize, type MarkdownOptions } from './render.ts';
export { compilerFreshnessCheck, runApply, runPlan, type FleetOptions, type RunApplyOptions } from './run.ts';
