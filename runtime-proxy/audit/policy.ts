import { parse as parseYaml } from 'yaml';
import type { RequestAttributes } from '../../core/attributes.ts';

/** kube's audit levels, least to most. */
export type AuditLevel = 'None' | 'Metadata' | 'Request' | 'RequestResponse';
const LEVELS: readonly AuditLevel[] = ['None', 'Metadata', 'Request', 'RequestResponse'];
type Stage = 'RequestReceived' | 'ResponseStarted' | 'ResponseComplete' | 'Panic';
const STAGES: readonly Stage[] = ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic'];

/** One rule of an `audit.k8s.io/v1` Policy (the fields kube-apiserver reads). */
export interface AuditPolicyRule {
  readonly level: AuditLevel;
  readonly users?: readonly string[];
  readonly userGroups?: readonly string[];
  readonly verbs?: readonly string[];
  readonly resources?: readonly { readonly group?: string; readonly resources?: readonly string[]; readonly resourceNames?: readonly string[] }[];
  readonly namespaces?: readonly string[];
  readonly nonResourceURLs?: readonly string[];
  readonly omitStages?: readonly Stage[];
  readonly omitManagedFields?: boolean;
}

/** An `audit.k8s.io/v1` Policy, as kube-apiserver's `--audit-policy-file` takes it. */
export interface AuditPolicy {
  readonly rules: readonly AuditPolicyRule[];
  readonly omitStages: readonly Stage[];
  readonly omitManagedFields: boolean;
}

/** What the policy says of one request. */
export interface AuditDecision {
  readonly level: AuditLevel;
  /** Whether the ResponseStarted record of a long-running request is left out. */
  readonly omitStarted: boolean;
  /** Whether recorded bodies lose their `metadata.managedFields` (the rule's setting, else the policy's). */
  readonly omitManagedFields: boolean;
}

/** Requests whose bodies carry credentials: never logged above Metadata, whatever the policy says. */
const SECRET_BEARING: readonly { readonly group: string; readonly resource: string; readonly subresource?: string }[] = [
  { group: '', resource: 'secrets' },
  { group: '', resource: 'serviceaccounts', subresource: 'token' },
  { group: 'authentication.k8s.io', resource: 'tokenreviews' },
];

/**
 * The level of a request, as kube-apiserver's policy evaluator decides it (mirrors
 * `policyRuleEvaluator.EvaluatePolicyRule` and `ruleMatches` in
 * k8s.io/apiserver/pkg/audit/policy/checker.go): the first rule that matches gives the level and
 * its omitStages (with the policy's); no rule, None. Rules match the caller as authenticated,
 * before any impersonation, as kube's audit filter sees it. Then Portcullis's own floor: bodies of
 * secrets, ServiceAccount tokens and token reviews are never logged (Metadata at most). Pure.
 */
export function auditDecision(p: AuditPolicy, a: RequestAttributes): AuditDecision {
  const rule = p.rules.find((r) => ruleMatches(r, a));
  const level = rule?.level ?? 'None';
  const omit = [...p.omitStages, ...(rule?.omitStages ?? [])];
  const secret = a.isResourceRequest && SECRET_BEARING.some((s) => s.group === a.apiGroup && s.resource === a.resource && (s.subresource === undefined || s.subresource === a.subresource));
  return { level: secret && LEVELS.indexOf(level) > 1 ? 'Metadata' : level, omitStarted: omit.includes('ResponseStarted'), omitManagedFields: rule?.omitManagedFields ?? p.omitManagedFields };
}

function ruleMatches(r: AuditPolicyRule, a: RequestAttributes): boolean {
  if (r.users?.length && !r.users.includes(a.user)) return false;
  if (r.userGroups?.length && !a.groups.some((g) => r.userGroups?.includes(g))) return false;
  if (r.verbs?.length && !r.verbs.includes(a.verb)) return false;
  if (r.namespaces?.length || r.resources?.length) return matchesResource(r, a);
  if (r.nonResourceURLs?.length) return !a.isResourceRequest && r.nonResourceURLs.some((spec) => pathMatches(a.path, spec));
  return true;
}

function pathMatches(path: string, spec: string): boolean {
  return spec === '*' || spec === path || (spec.endsWith('*') && path.startsWith(spec.replace(/\*+$/, '')));
}

function matchesResource(r: AuditPolicyRule, a: RequestAttributes): boolean {
  if (!a.isResourceRequest) return false;
  // Cluster-scoped resources have the empty namespace.
  if (r.namespaces?.length && !r.namespaces.includes(a.namespace)) return false;
  if (!r.resources?.length) return true;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  return r.resources.some(
    (gr) =>
      (gr.group ?? '') === a.apiGroup &&
      (!gr.resources?.length ||
        gr.resources.some(
          (res) =>
            (!gr.resourceNames?.length || gr.resourceNames.includes(a.name)) &&
            (res === combined || res === '*' || (a.subresource !== '' && res.startsWith('*/') && res.slice(2) === a.subresource) || (res.endsWith('/*') && res.slice(0, -2) === a.resource)),
        )),
  );
}

/**
 * Reads an `audit.k8s.io/v1` Policy (YAML or JSON); throws an Error naming every problem. Under
 * SECURITY rule 23 the ResponseComplete stage cannot be omitted; level None leaves out the records
 * of allowed requests only (the proxy always records a refusal).
 */
export function parseAuditPolicy(text: string): AuditPolicy {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`not YAML: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  const d = (doc ?? {}) as { apiVersion?: unknown; kind?: unknown; rules?: unknown; omitStages?: unknown; omitManagedFields?: unknown };
  if (d.apiVersion !== 'audit.k8s.io/v1' || d.kind !== 'Policy') problems.push('apiVersion must be audit.k8s.io/v1 and kind Policy');
  for (const k of Object.keys(d)) if (!['apiVersion', 'kind', 'metadata', 'rules', 'omitStages', 'omitManagedFields'].includes(k)) problems.push(`unknown field ${k}`);
  const bool = (v: unknown, at: string): boolean | undefined => (v === undefined || typeof v === 'boolean' ? v : (problems.push(`${at}: true or false`), undefined));
  const stages = (v: unknown, at: string): Stage[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((s) => !STAGES.includes(s as Stage))) {
      problems.push(`${at}: a list of ${STAGES.join(', ')}`);
      return [];
    }
    if (v.includes('ResponseComplete')) problems.push(`${at}: ResponseComplete cannot be omitted (every answered request keeps its record)`);
    return v as Stage[];
  };
  const strings = (v: unknown, at: string): string[] | undefined => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      problems.push(`${at}: a list of strings`);
      return undefined;
    }
    return v as string[];
  };
  const known = new Set(['level', 'users', 'userGroups', 'verbs', 'resources', 'namespaces', 'nonResourceURLs', 'omitStages', 'omitManagedFields']);
  if (!Array.isArray(d.rules)) problems.push('rules: a list of rules');
  const rules = (Array.isArray(d.rules) ? d.rules : []).map((raw: unknown, i): AuditPolicyRule => {
    const at = `rules[${i}]`;
    const r = (raw ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!known.has(k)) problems.push(`${at}: unknown field ${k}`);
    if (!LEVELS.includes(r['level'] as AuditLevel)) problems.push(`${at}.level: one of ${LEVELS.join(', ')}`);
    const resources = r['resources'] === undefined ? undefined : Array.isArray(r['resources']) ? (r['resources'] as Record<string, unknown>[]) : (problems.push(`${at}.resources: a list`), undefined);
    if (resources && r['nonResourceURLs'] !== undefined) problems.push(`${at}: resources and nonResourceURLs do not go together`);
    const opt = <T>(k: string, v: T | undefined): Record<string, T> => (v === undefined ? {} : { [k]: v });
    return {
      level: r['level'] as AuditLevel,
      ...opt('users', strings(r['users'], `${at}.users`)),
      ...opt('userGroups', strings(r['userGroups'], `${at}.userGroups`)),
      ...opt('verbs', strings(r['verbs'], `${at}.verbs`)),
      ...opt('namespaces', strings(r['namespaces'], `${at}.namespaces`)),
      ...opt('nonResourceURLs', strings(r['nonResourceURLs'], `${at}.nonResourceURLs`)),
      ...opt(
        'resources',
        resources?.map((gr, j) => ({
          ...(typeof gr['group'] === 'string' ? { group: gr['group'] } : {}),
          ...opt('resources', strings(gr['resources'], `${at}.resources[${j}].resources`)),
          ...opt('resourceNames', strings(gr['resourceNames'], `${at}.resources[${j}].resourceNames`)),
        })),
      ),
      omitStages: stages(r['omitStages'], `${at}.omitStages`),
      ...opt('omitManagedFields', bool(r['omitManagedFields'], `${at}.omitManagedFields`)),
    };
  });
  const omitStages = stages(d.omitStages, 'omitStages');
  const omitManagedFields = bool(d.omitManagedFields, 'omitManagedFields') ?? false;
  if (problems.length > 0) throw new Error(problems.join('; '));
  return { rules, omitStages, omitManagedFields };
}

/** Drops `metadata.managedFields` from an object and from a list's items, as kube's omitManagedFields does. */
export function withoutManagedFields(o: unknown): unknown {
  if (!o || typeof o !== 'object') return o;
  const v = o as { metadata?: Record<string, unknown>; items?: unknown[] };
  const out: Record<string, unknown> = { ...v };
  if (v.metadata && 'managedFields' in v.metadata) {
    const { managedFields: _, ...meta } = v.metadata;
    out['metadata'] = meta;
  }
  if (Array.isArray(v.items)) out['items'] = v.items.map(withoutManagedFields);
  return out;
}
