import type { SourceLocation, Subject } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Principal } from './identity.ts';
import type { ClusterSelector } from './selectors.ts';

/**
 * Policy assertions: what must hold, stated beside the policy in `policies/**\/*.assert.ts`
 * and checked by `portcullis test` against the compiled bundles, offline.
 *
 * ```ts
 * expectAccess.that(id.payments).may('create', 'pods/exec').in('payments').on({ names: ['dev'] });
 * expectAccess.nobodyExcept([id.sre]).may(['get', 'list', 'watch'], 'secrets').in('*').on({ labels: { env: 'prod' } });
 * ```
 */

/** Who a claim is about: one principal (a user, or a member of a group), or a user with its groups. */
export type Identity = Principal | { readonly user?: Principal; readonly groups?: readonly Principal[] };

/** One stated claim, as `portcullis test` evaluates it. */
export interface Claim {
  readonly source: SourceLocation;
  /** `may`: allowed now; `may-not`: denied at any time, with any break-glass invoked; `nobody-except`: `may-not` for everyone outside `except`. */
  readonly kind: 'may' | 'may-not' | 'nobody-except';
  /** For `may` and `may-not`. */
  readonly identity?: { readonly user: string; readonly groups: readonly string[] };
  /** For `nobody-except`. */
  readonly except?: readonly Subject[];
  readonly verbs: readonly string[];
  /** `resource[.group][/subresource]`, or a non-resource path starting with `/`. */
  readonly resource: string;
  /** `''` for any object (a request without a name). */
  readonly name: string;
  /** `[]`: cluster-scoped (or across all namespaces); `['*']`: every namespace, and across all of them. */
  readonly namespaces: readonly string[];
  readonly clusters: ClusterSelector;
}

/** A claim still being written: `on` completes it. */
export interface Where {
  /** In these namespaces; `'*'` is every namespace (and the request across all of them). */
  in(namespaces: string | readonly string[]): { on(clusters: ClusterSelector): void };
  /** On these clusters. Without `in`, the request is cluster-scoped (nodes, or a list across all namespaces) or a non-resource path. */
  on(clusters: ClusterSelector): void;
}

/** The verbs of a claim: one or several (all must be allowed, or none). */
export type Verbs = string | readonly string[];

/** What `that(…)` and `nobodyExcept(…)` lead to. */
export interface Subjected {
  /** May do it; `name` narrows it to one object (`resourceNames` grants). */
  may(verbs: Verbs, resource: string, name?: string): Where;
}

const claims: Claim[] = [];
const pending = new Map<object, SourceLocation>();

/** Makes claims about the compiled policy. Each claim ends in `.on(clusters)`. */
export const expectAccess = {
  /** Claims about one identity: what it may (now) and may not (ever) do. */
  that(who: Identity): Subjected & { mayNot(verbs: Verbs, resource: string, name?: string): Where } {
    const source = captureSource();
    const identity = identityOf(who);
    const make = (kind: 'may' | 'may-not') => (verbs: Verbs, resource: string, name = '') => where({ source, kind, identity, verbs: verbList(verbs), resource, name });
    return { may: make('may'), mayNot: make('may-not') };
  },
  /** A claim about everyone else: nobody outside these subjects (a user named, or a member of a group named) may do it, ever. */
  nobodyExcept(except: readonly Principal[]): Subjected {
    const source = captureSource();
    const subjects = except.map((p) => ({ kind: p.kind, name: p.name }));
    return { may: (verbs, resource, name = '') => where({ source, kind: 'nobody-except', except: subjects, verbs: verbList(verbs), resource, name }) };
  },
};

function where(c: Omit<Claim, 'namespaces' | 'clusters'>): Where {
  if (c.verbs.length === 0 || c.verbs.some((v) => v === '')) throw new Error('a claim needs at least one verb, none empty');
  if (c.resource === '') throw new Error('a claim needs a resource, e.g. pods, deployments.apps, pods/exec, or a path such as /healthz');
  const token = {};
  pending.set(token, c.source);
  const finish = (namespaces: readonly string[]) => (clusters: ClusterSelector) => {
    pending.delete(token);
    claims.push({ ...c, namespaces, clusters });
  };
  return {
    in(namespaces) {
      if (c.resource.startsWith('/')) throw new Error(`${c.resource} is a non-resource path: it has no namespace`);
      const list = typeof namespaces === 'string' ? [namespaces] : [...namespaces];
      if (list.length === 0 || list.some((n) => n === '')) throw new Error("in() needs namespaces, or '*' for every namespace");
      return { on: finish(list) };
    },
    on: finish([]),
  };
}

function identityOf(who: Identity): { user: string; groups: string[] } {
  if ('kind' in who) return who.kind === 'User' ? { user: who.name, groups: [] } : { user: '', groups: [who.name] };
  return { user: who.user?.name ?? '', groups: (who.groups ?? []).map((g) => g.name) };
}

function verbList(v: Verbs): string[] {
  return typeof v === 'string' ? [v] : [...v];
}

/** Takes the claims stated so far, and where claims were begun but never ended in `.on(…)`. */
export function takeClaims(): { claims: Claim[]; unfinished: SourceLocation[] } {
  const out = { claims: claims.splice(0), unfinished: [...pending.values()] };
  pending.clear();
  return out;
}
