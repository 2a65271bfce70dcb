import type { RequestAttributes } from '../core/attributes.ts';
import { decide } from '../core/decide.ts';
import { RESERVED_PREFIX } from '../core/names.ts';
import type { RuleIndex } from '../core/rule-index.ts';
import { ALL_AUTHENTICATED } from './discovery.ts';
import { ProxyError } from './errors.ts';
import type { Identity } from './identity.ts';

/** What a client asked kube to impersonate: `kubectl --as`, `--as-group`, `--as-uid`, `--as-user-extra`. */
export interface ImpersonationAsk {
  readonly user?: string;
  readonly groups: readonly string[];
  readonly uid?: string;
  readonly extraKeys: readonly string[];
}

/** The client's `Impersonate-*` headers (any case), or undefined when it sent none. */
export function impersonationAsked(rawHeaders: readonly string[]): ImpersonationAsk | undefined {
  let user: string | undefined;
  let uid: string | undefined;
  const groups: string[] = [];
  const extraKeys: string[] = [];
  let any = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    if (name.length < 12 || name.slice(0, 12).toLowerCase() !== 'impersonate-') continue;
    any = true;
    const kind = name.slice(12).toLowerCase();
    const value = rawHeaders[i + 1] ?? '';
    if (kind === 'user') user = value;
    else if (kind === 'group') groups.push(value);
    else if (kind === 'uid') uid = value;
    else extraKeys.push(kind);
  }
  if (!any) return undefined;
  return { ...(user !== undefined ? { user } : {}), groups, ...(uid !== undefined ? { uid } : {}), extraKeys };
}

/** The caller, and the checks that let it act as someone else (re-run for live streams at every bundle swap). */
export interface Impersonation {
  readonly caller: Identity;
  readonly checks: readonly RequestAttributes[];
}

/**
 * `kubectl --as` through the proxy, decided as kube-apiserver's impersonation filter decides it
 * (k8s.io/apiserver/pkg/endpoints/filters/impersonation.go): the caller needs `impersonate` on
 * `users` and on `groups` for each group, granted by the policy; then the request is decided as the impersonated user, who carries the
 * requested groups and, like kube, `system:authenticated`. Never dropped and served as the caller
 * (SECURITY rule 21). Names in the proxy's reserved prefix and in `system:` (service accounts
 * among them) are refused outright: the proxy asserts those itself, or never. Impersonating a uid or user extras
 * is refused too: the proxy sets its own extras upstream.
 */
export function impersonate(ask: ImpersonationAsk, caller: Identity, index: RuleIndex, now: number, breakGlass: ReadonlySet<string>): { readonly identity: Identity; readonly impersonation: Impersonation } {
  const asked = [...(ask.user !== undefined ? [`user ${ask.user}`] : []), ...ask.groups.map((g) => `group ${g}`), ...(ask.uid !== undefined ? ['a uid'] : []), ...ask.extraKeys.map((k) => `extra ${k}`)].join(', ');
  if (ask.user === undefined || ask.user === '') throw new ProxyError('BAD_REQUEST', `impersonation without a user (${asked})`, `requested ${asked} without impersonating a user`);
  if (ask.uid !== undefined || ask.extraKeys.length > 0) {
    throw new ProxyError('IMPERSONATION_REFUSED', `client asked for ${asked}`, 'impersonating a uid or user extras (--as-uid, --as-user-extra) is not supported through portcullis; use --as and --as-group only');
  }
  const reserved = [ask.user, ...ask.groups].find((n) => n.startsWith(RESERVED_PREFIX) || (n.startsWith('system:') && n !== ALL_AUTHENTICATED));
  if (reserved !== undefined) {
    throw new ProxyError('IMPERSONATION_REFUSED', `client asked for ${asked}`, `impersonating ${reserved} is not allowed through portcullis: the proxy asserts names in ${RESERVED_PREFIX} and system: itself`);
  }
  const target = (resource: string, name: string, namespace = ''): RequestAttributes => ({
    user: caller.user,
    groups: [...caller.groups, ALL_AUTHENTICATED],
    verb: 'impersonate',
    isResourceRequest: true,
    path: '',
    apiGroup: '',
    apiVersion: 'v1',
    resource,
    subresource: '',
    namespace,
    name,
  });
  const checks = [target('users', ask.user), ...ask.groups.map((g) => target('groups', g))];
  for (const c of checks) {
    if (!decide(c, index, { now, breakGlass }).decision.allowed) {
      const scope = c.namespace ? `in the namespace "${c.namespace}"` : 'at the cluster scope';
      throw new ProxyError(
        'IMPERSONATION_REFUSED',
        `impersonate ${c.resource} ${c.name} not granted`,
        `${c.resource} "${c.name}" is forbidden: User "${caller.user}" cannot impersonate resource "${c.resource}" in API group "" ${scope}: impersonation (kubectl --as, --as-group) is allowed through portcullis only where the policy grants it (portcullis)`,
      );
    }
  }
  // As kube, the impersonated user is also in system:authenticated: authorizeStage adds it, as for every caller.
  const identity: Identity = {
    user: ask.user,
    groups: [...new Set(ask.groups.filter((g) => g !== ALL_AUTHENTICATED))],
    issuer: caller.issuer,
    ...(caller.expiresAt !== undefined ? { expiresAt: caller.expiresAt } : {}),
    method: caller.method,
  };
  return { identity, impersonation: { caller, checks } };
}

/** Whether the impersonation a live stream started under still holds. */
export function stillImpersonates(imp: Impersonation, index: RuleIndex, now: number, breakGlass: ReadonlySet<string>): boolean {
  return imp.checks.every((c) => decide(c, index, { now, breakGlass }).decision.allowed);
}
