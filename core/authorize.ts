import type { RequestAttributes } from './attributes.ts';
import { evaluateConditions } from './conditions.ts';
import { ruleAllows } from './rbac.ts';
import type { Deny, Grant, PolicyRule } from './rule-set.ts';
import type { Indexed, RuleIndex } from './rule-index.ts';

/** What the authorizer decided, and what determined it. The zero value is a deny. */
export type Decision =
  | { readonly allowed: true; readonly reason: 'grant'; readonly grant: Grant }
  | { readonly allowed: false; readonly reason: 'deny'; readonly deny: Deny }
  | { readonly allowed: false; readonly reason: 'no-grant'; readonly inactive: readonly InactiveGrant[] };

/** A grant whose rules matched but whose conditions did not hold. */
export interface InactiveGrant {
  readonly grant: Grant;
  readonly why: string;
}

/** The clock and the break-glass grants this requester has invoked. */
export interface AuthorizeContext {
  readonly now: number;
  readonly breakGlass?: ReadonlySet<string>;
}

const NONE: ReadonlySet<string> = new Set();

/**
 * Synchronous and total. Allows only if some active grant allows and no deny
 * matches; everything else denies. Among allowing grants, an unconditional one
 * is preferred (no activation group needed upstream), then the lowest id.
 */
export function authorize(attrs: RequestAttributes, index: RuleIndex, ctx: AuthorizeContext): Decision {
  const keys = [`u:${attrs.user}`, ...attrs.groups.map((g) => `g:${g}`)];
  for (const d of index.deniesForEveryone) {
    if (!excepted(d.item, attrs) && matches(d, attrs)) return { allowed: false, reason: 'deny', deny: d.item };
  }
  for (const k of keys) {
    for (const d of index.deniesBySubject.get(k) ?? []) {
      if (!excepted(d.item, attrs) && matches(d, attrs)) return { allowed: false, reason: 'deny', deny: d.item };
    }
  }
  let plain: Grant | undefined;
  let conditional: Grant | undefined;
  const inactive: InactiveGrant[] = [];
  for (const k of keys) {
    for (const g of index.grantsBySubject.get(k) ?? []) {
      if (!matches(g, attrs)) continue;
      const c = evaluateConditions(g.item.id, g.item.conditions, ctx.now, ctx.breakGlass ?? NONE);
      if (!c.active) inactive.push({ grant: g.item, why: c.why });
      else if (g.item.activationGroup !== undefined) conditional = lower(conditional, g.item);
      else {
        plain = lower(plain, g.item);
        break; // lists are in id order: nothing later in this one is lower
      }
    }
  }
  const grant = plain ?? conditional;
  if (grant) return { allowed: true, reason: 'grant', grant };
  return { allowed: false, reason: 'no-grant', inactive };
}

function matches(e: Indexed<{ readonly rules: readonly PolicyRule[] }>, attrs: RequestAttributes): boolean {
  // Mirrors RBAC: namespaced bindings apply only to requests in their namespace;
  // cluster-scoped and non-resource requests need a cluster-wide binding.
  if (e.namespaces !== 'cluster' && !(attrs.isResourceRequest && e.namespaces.has(attrs.namespace))) return false;
  return e.item.rules.some((r) => ruleAllows(attrs, r));
}

function lower(a: Grant | undefined, b: Grant): Grant {
  return a === undefined || b.id < a.id ? b : a;
}

function excepted(d: Deny, attrs: RequestAttributes): boolean {
  return d.except.some((s) => (s.kind === 'User' ? s.name === attrs.user : attrs.groups.includes(s.name)));
}
