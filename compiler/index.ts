/**
 * The policy language: what `policies/` imports. Everything else in the
 * compiler is internal to the CLI.
 */
export { Fleet, type FleetProps } from './lang/fleet.ts';
export { Cluster, type ClusterProps } from './lang/cluster.ts';
export { IdentityProvider, type IdentityProviderProps, type Principal } from './lang/identity.ts';
export { Role, Roles, type AllowOptions, type IRole, type RoleProps } from './lang/role.ts';
export { Grant, type BreakGlassProps, type GrantProps } from './lang/grant.ts';
export { Deny, type DenyProps } from './lang/deny.ts';
export { SessionLimits, type SessionLimitsProps } from './lang/session-limits.ts';
export { Namespace, Team, TEAM_LABEL, type NamespaceProps, type TeamGrantProps, type TeamProps } from './lang/team.ts';
export { expectAccess, type Identity, type Subjected, type Verbs, type Where } from './lang/assertion.ts';
export type { ClusterSelector, NamespaceSelector } from './lang/selectors.ts';
export type { PolicyRule, TimeWindow, Weekday } from '../core/index.ts';
