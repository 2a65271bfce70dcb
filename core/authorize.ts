import type { RequestAttributes } from './attributes.ts';
import { evaluateConditions } from './conditions.ts';
import { ruleAllows } from './rbac.ts';
import type { Deny, Grant, PolicyRule } from './rule-set.ts';
import { resourceKey, type Buckets, type Indexed, type RuleIndex } from './rule-index.ts';

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
  const key = resourceKey(attrs.apiGroup, attrs.resource);
  const deny = firstDeny(index.deniesForEveryone, attrs, key) ?? bySubject(index.deniesByUser, index.deniesByGroup, attrs, (b) => firstDeny(b, attrs, key));
  if (deny) return { allowed: false, reason: 'deny', deny };
  let plain: Grant | undefined;
  let conditional: Grant | undefined;
  const inactive: InactiveGrant[] = [];
  const visit = (b: Buckets<Grant>): undefined => {
    for (const list of candidates(b, attrs, key)) {
      for (const g of list) {
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
    return undefined;
  };
  bySubject(index.grantsByUser, index.grantsByGroup, attrs, visit);
  const grant = plain ?? conditional;
  if (grant) return { allowed: true, reason: 'grant', grant };
  return { allowed: false, reason: 'no-grant', inactive };
}

/** Calls `f` on the buckets of the user and each group until it returns something. */
function bySubject<T, R>(users: ReadonlyMap<string, Buckets<T>>, groups: ReadonlyMap<string, Buckets<T>>, attrs: RequestAttributes, f: (b: Buckets<T>) => R | undefined): R | undefined {
  const u = users.get(attrs.user);
  const r = u && f(u);
  if (r !== undefined) return r;
  for (const g of attrs.groups) {
    const b = groups.get(g);
    const x = b && f(b);
    if (x !== undefined) return x;
  }
  return undefined;
}

function candidates<T>(b: Buckets<T>, attrs: RequestAttributes, key: string): readonly (readonly Indexed<T>[])[] {
  if (!attrs.isResourceRequest) return [b.nonResource];
  const exact = b.byResource.get(key);
  return exact ? [exact, b.wildcard] : [b.wildcard];
}

function firstDeny(b: Buckets<Deny>, attrs: RequestAttributes, key: string): Deny | undefined {
  for (const list of candidates(b, attrs, key)) for (const d of list) if (!excepted(d.item, attrs) && matches(d, attrs)) return d.item;
  return undefined;
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
