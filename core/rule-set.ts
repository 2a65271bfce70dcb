/**
 * The proxy rule set: what the compiler writes to `generated/<cluster>/rules.json`
 * and the runtime proxy enforces. Plain data, JSON-serialisable, one per cluster.
 */

/** Where a grant or deny was written: the policy file (repo-relative) and line. */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
}

/** An RBAC subject, after identity-provider prefixes were applied. */
export interface Subject {
  readonly kind: 'User' | 'Group';
  readonly name: string;
}

/** One RBAC PolicyRule, with exactly Kubernetes' field meanings (rbac/v1). */
export interface PolicyRule {
  readonly verbs: readonly string[];
  readonly apiGroups?: readonly string[];
  readonly resources?: readonly string[];
  readonly resourceNames?: readonly string[];
  readonly nonResourceURLs?: readonly string[];
}

/** Where in a cluster a grant or deny applies. */
export type Scope =
  | { readonly kind: 'cluster' }
  | { readonly kind: 'namespaces'; readonly namespaces: readonly string[] };

/** A weekly recurring window in an IANA time zone; `end` is exclusive; days are `mon`…`sun`. */
export interface TimeWindow {
  readonly days: readonly Weekday[];
  readonly start: string; // "HH:MM"
  readonly end: string; // "HH:MM"; "24:00" allowed
  readonly timeZone: string;
}

/** Days of the week as used in windows. */
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

/** Break-glass: the grant is inactive until invoked with a reason, for at most `maxDurationSeconds`. */
export interface BreakGlass {
  readonly maxDurationSeconds: number;
  readonly notify: readonly string[];
}

/** Access on request: inactive until someone of `approvers`, never the requester, approves a request for at most `maxDurationSeconds`. */
export interface Approval {
  readonly approvers: readonly Subject[];
  readonly maxDurationSeconds: number;
}

/** Conditions RBAC cannot express; the proxy enforces them. */
export interface Conditions {
  readonly notBefore?: string; // RFC 3339
  readonly expires?: string; // RFC 3339
  readonly windows?: readonly TimeWindow[];
  readonly breakGlass?: BreakGlass;
  readonly approval?: Approval;
}

/** A grant of rules to subjects in a scope, possibly conditional. */
export interface Grant {
  readonly id: string;
  readonly source: SourceLocation;
  readonly subjects: readonly Subject[];
  readonly rules: readonly PolicyRule[];
  readonly scope: Scope;
  readonly conditions: Conditions;
  /**
   * The shared role the grant's rules come from (`NAME:HASH`, the key of the
   * role table in rules.json and the suffix of its ClusterRole). Set by the compiler.
   */
  readonly role?: string;
  /**
   * Set on conditional grants. Their RBAC is bound to this group instead of
   * the subjects, and the proxy impersonates the group only while the
   * conditions hold, so bypassing the proxy never activates them.
   */
  readonly activationGroup?: string;
  /**
   * Set where denies that do not bind every subject of the grant alike (a deny on other subjects,
   * or one with exceptions) overlap its rules. RBAC then binds the grant's subjects (or its
   * activation group) only to `directRules`, the grant less those denies, and `rules` to `group`,
   * which only the proxy asserts, on a request this grant allows (so one that passed every deny):
   * going around the proxy, a deny's subject never gets what the deny forbids. Set by the compiler.
   */
  readonly guard?: GrantGuard;
  /** Exec and attach sessions this grant allows record what is typed as well as what is shown. @default false */
  readonly recordInput?: true;
}

/** See {@link Grant.guard}. */
export interface GrantGuard {
  readonly group: string;
  /** Ids of the denies the guard stands for. */
  readonly denies: readonly string[];
  /** The role of `directRules` (`NAME:HASH`, a key of rules.json's role table). */
  readonly directRole: string;
  readonly directRules: readonly PolicyRule[];
}

/** A deny: wins over every grant for the subjects it covers. */
export interface Deny {
  readonly id: string;
  readonly source: SourceLocation;
  /** `everyone` covers every authenticated identity, less `except`. */
  readonly subjects: readonly Subject[] | 'everyone';
  readonly except: readonly Subject[];
  readonly rules: readonly PolicyRule[];
  readonly scope: Scope;
}

/** How long a proxy session (`portcullis login`) may reach this cluster: shorter than the proxy's own timeouts, never longer. */
export interface SessionLimitsRule {
  readonly idleTimeoutSeconds?: number;
  readonly maxLifetimeSeconds?: number;
}

/** The rule set for one cluster. */
export interface RuleSet {
  readonly apiVersion: 'portcullis.dev/v1';
  readonly kind: 'RuleSet';
  readonly cluster: string;
  readonly grants: readonly Grant[];
  readonly denies: readonly Deny[];
  /** Every user and group the proxy may impersonate on this cluster (sorted). */
  readonly impersonable: { readonly users: readonly string[]; readonly groups: readonly string[] };
  /** Session limits the policy sets for this cluster. @default none: the proxy's timeouts */
  readonly sessionLimits?: SessionLimitsRule;
}
