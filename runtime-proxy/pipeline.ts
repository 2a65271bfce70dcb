/**
 * The proxy's request pipeline as a fixed sequence of named stages:
 * authenticate → parse request → authorize → forward → audit.
 * This file holds the first three (no network I/O apart from what the
 * authenticator does); forwarding is in forward.ts / upgrade.ts and the
 * server runs audit for every outcome.
 */
import type { RequestAttributes } from '../core/attributes.ts';
import { decide, type Verdict } from '../core/decide.ts';
import { activeUntil, evaluateConditions } from '../core/conditions.ts';
import { authorizationVerb, parseRequestInfo, toAttributes, type RequestInfo } from '../core/request-info.ts';
import { checkRequestTarget } from '../core/request-target.ts';
import { EXTRA_AUTHENTICATED_BY, EXTRA_GRANT, EXTRA_USER, RESERVED_PREFIX } from '../core/names.ts';
import type { Grant } from '../core/rule-set.ts';
import type { ActiveBundle } from './bundle-store.ts';
import { ALL_AUTHENTICATED } from './discovery.ts';
import { ProxyError } from './errors.ts';
import type { Authenticator, Identity } from './identity.ts';
import type { Impersonation } from './impersonation.ts';
import type { StreamDeadline } from './streams.ts';
import type { X509Certificate } from 'node:crypto';

/** Extra keys the proxy sends upstream as Impersonate-Extra-* (design.md). */
export { EXTRA_AUTHENTICATED_BY, EXTRA_GRANT };

/** Cluster names are DNS labels; anything else is not a route. */
const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Stage 0, routing: `/clusters/NAME/rest…` → NAME and `/rest…`. */
export function route(rawTarget: string): { readonly cluster: string; readonly target: string } | undefined {
  const m = /^\/clusters\/([^/?#]+)(.*)$/s.exec(rawTarget);
  if (!m || !CLUSTER_NAME.test(m[1] ?? '')) return undefined;
  const rest = m[2] ?? '';
  // The rest is checked for canonical form by the parse stage, not normalised here.
  return { cluster: m[1] ?? '', target: rest.startsWith('/') ? rest : `/${rest}` };
}

/** Identities whose names passed the checks below. */
const usable = new WeakSet<Identity>();

/** Stage 1, authenticate: positively succeeds with a usable identity or throws 401 (SECURITY rule 8). */
export async function authenticateStage(
  authn: Authenticator,
  req: { readonly rawHeaders: readonly string[]; readonly peerCertificate?: X509Certificate },
  now: number,
  cluster: string,
): Promise<Identity> {
  // The cluster goes to the authenticator so issuers bound to clusters stay bound (SECURITY rule 9).
  const r = await authn.authenticate(req.peerCertificate ? { rawHeaders: req.rawHeaders, peerCertificate: req.peerCertificate } : { rawHeaders: req.rawHeaders }, now, cluster);
  if (!r.ok) throw new ProxyError('UNAUTHENTICATED', `${r.code}: ${r.message}`);
  const id = r.identity;
  if (!usable.has(id)) {
    // Defence in depth: whatever the authenticator, an empty or system: name never passes.
    if (typeof id.user !== 'string' || id.user === '' || id.user.startsWith('system:')) throw new ProxyError('UNAUTHENTICATED', `UNUSABLE_IDENTITY: unusable username ${JSON.stringify(id.user)}`);
    if (id.groups.some((g) => g === '' || g.startsWith('system:'))) throw new ProxyError('UNAUTHENTICATED', 'UNUSABLE_IDENTITY: identity carries a system: group');
    // The proxy's own names (activation groups, the member user) come only from the proxy.
    if ([id.user, ...id.groups].some((n) => n.startsWith(RESERVED_PREFIX))) throw new ProxyError('UNAUTHENTICATED', `UNUSABLE_IDENTITY: identity carries a reserved ${RESERVED_PREFIX} name`);
    // Names become header values upstream: no control characters (CR/LF would be header injection).
    if ([id.user, ...id.groups, id.issuer].some((n) => /[\u0000-\u001f\u007f]/.test(n))) throw new ProxyError('UNAUTHENTICATED', 'UNUSABLE_IDENTITY: control character in a name');
    usable.add(id); // a cached authentication returns this same (readonly) object: its names are checked once
  }
  if (id.expiresAt !== undefined && id.expiresAt <= now) throw new ProxyError('UNAUTHENTICATED', 'EXPIRED: credential expired');
  return id;
}

/** A parsed request: the attributes' inputs, and the exact target that will be forwarded. */
export interface ParsedRequest {
  readonly info: RequestInfo;
  readonly verb: string;
  /** The canonical target forwarded upstream byte for byte (SECURITY rule 2). */
  readonly target: string;
  readonly longRunning: boolean;
}

/**
 * Stage 2, parse request: canonical targets only (400 otherwise), then kube's RequestInfo.
 * The parse is a pure function of the method, the exact target and whether it is an upgrade, so
 * a target parsed before is not parsed again (clients repeat the same few: a controller's list,
 * kubectl's get): the result is frozen and shared, a refusal is never kept, and the cache is
 * bounded in entries and in key length, so what it holds cannot grow with what clients send.
 */
export function parseRequestStage(method: string, target: string, isUpgrade: boolean): ParsedRequest {
  const cacheable = target.length <= PARSED_KEY_MAX;
  const key = cacheable ? `${isUpgrade ? 'U' : 'R'}${method} ${target}` : '';
  const hit = cacheable ? parsedTargets.get(key) : undefined;
  if (hit !== undefined) return hit;
  const t = checkRequestTarget(target);
  if (!t.ok) throw new ProxyError('BAD_REQUEST', `non-canonical target: ${t.reason}`);
  const info = parseRequestInfo(method, t.path, t.query);
  const verb = authorizationVerb(info, { isUpgrade });
  const parsed: ParsedRequest = Object.freeze({ info: Object.freeze({ ...info, parts: Object.freeze([...info.parts]) }), verb, target, longRunning: isLongRunning(info, t.query, isUpgrade) });
  if (cacheable) {
    // First in, first out: the oldest entry makes room (a Map iterates in insertion order).
    if (parsedTargets.size >= PARSED_MAX) parsedTargets.delete(parsedTargets.keys().next().value as string);
    parsedTargets.set(key, parsed);
  }
  return parsed;
}

/** Parsed targets kept, and the longest target kept (longer ones, rare and the costly shapes, are parsed every time). */
const PARSED_MAX = 2048;
const PARSED_KEY_MAX = 512;
const parsedTargets = new Map<string, ParsedRequest>();

/**
 * Mirrors kube-apiserver's long-running check (BasicLongRunningRequestCheck
 * with verbs watch, proxy and subresources attach, exec, proxy, log, portforward),
 * narrowed for `log` to follow=true, since a plain log GET ends by itself.
 */
function isLongRunning(info: RequestInfo, query: URLSearchParams, isUpgrade: boolean): boolean {
  if (isUpgrade) return true;
  if (info.verb === 'watch' || info.verb === 'proxy') return true;
  if (['attach', 'exec', 'proxy', 'portforward'].includes(info.subresource)) return true;
  return info.subresource === 'log' && query.get('follow') === 'true';
}

/** What authorization admitted: everything forwarding, streams and audit need. */
export interface Admission {
  readonly identity: Identity;
  readonly bundle: ActiveBundle;
  readonly attributes: RequestAttributes;
  readonly grant: Grant;
  /** The identity as asserted upstream (groups after the impersonable filter, plus the activation group). */
  readonly impersonate: { readonly user: string; readonly groups: readonly string[]; readonly extra: Readonly<Record<string, string>> };
  readonly deadline: StreamDeadline;
  readonly breakGlassUntil?: number;
  /** Set under `kubectl --as`: `identity` is then the impersonated user, and this holds the caller. */
  readonly impersonation?: Impersonation;
}

/** The facts a refused authorization leaves for the audit record. */
export interface AuthorizeFacts {
  attributes?: RequestAttributes;
  denyId?: string;
  source?: string;
}

/**
 * Stage 3, authorize: against the bundle the request captured, bound to its
 * cluster (SECURITY rule 9: the bundle is the cluster's own, checked at load),
 * with every group the identity carries (denies see them all, SECURITY rule 22).
 * Upstream it asserts only groups the policy names, and a user the policy does
 * not name as MEMBER_USER with its own name as a user-extra (core/decide.ts).
 */
export function authorizeStage(
  parsed: ParsedRequest,
  identity: Identity,
  bundle: ActiveBundle,
  activations: ReadonlyMap<string, number>,
  now: number,
  facts: AuthorizeFacts,
  impersonation?: Impersonation,
): Admission {
  const attributes = toAttributes(parsed.info, parsed.verb, identity.user, [...identity.groups, ALL_AUTHENTICATED]);
  if (parsed.verb === '') {
    facts.attributes = attributes;
    throw new ProxyError('FORBIDDEN', `no verb for ${parsed.info.path}${parsed.info.error ? ` (${parsed.info.error})` : ''}`, forbiddenMessage(attributes));
  }
  // The shared decision (also behind `portcullis explain`): drop groups the policy
  // does not name, deny users it does not name, then authorize.
  const v = decide(attributes, bundle.index, { now, breakGlass: new Set(activations.keys()) });
  facts.attributes = attributes;
  const d = v.decision;
  if (!d.allowed) {
    if (d.reason === 'deny') {
      facts.denyId = d.deny.id;
      facts.source = `${d.deny.source.file}:${d.deny.source.line}`;
      throw new ProxyError('FORBIDDEN', `denied by ${d.deny.id}`, forbiddenMessage(attributes));
    }
    const why = d.inactive.map((i) => `${i.grant.id}: ${i.why}`).join('; ');
    throw new ProxyError('FORBIDDEN', `no active grant${why ? ` (inactive: ${why})` : ''}`, forbiddenMessage(attributes));
  }
  const g = d.grant;
  facts.source = `${g.source.file}:${g.source.line}`;
  // Activated grants (break-glass invoked, request approved) end when their activation does.
  const bgUntil = g.conditions.breakGlass !== undefined || g.conditions.approval !== undefined ? activations.get(g.id) : undefined;
  return {
    identity,
    bundle,
    attributes: facts.attributes,
    grant: g,
    impersonate: isSelfRulesReview(attributes) ? withActiveConditions(upstreamIdentity(v, identity, g), identity, bundle, activations, now) : upstreamIdentity(v, identity, g),
    deadline: deadlineOf(identity, g, bundle, now, bgUntil),
    ...(bgUntil !== undefined ? { breakGlassUntil: bgUntil } : {}),
    ...(impersonation ? { impersonation } : {}),
  };
}

/** Who the proxy asserts upstream for an allowed decision: Impersonate-User, -Group and -Extra-*. */
export function upstreamIdentity(v: Verdict, identity: Identity, g: Grant): Admission['impersonate'] {
  const imp = v.impersonate;
  // kube-apiserver adds system:authenticated to an impersonated user itself; the proxy never asserts it.
  const groups = (imp?.groups ?? []).filter((x) => x !== ALL_AUTHENTICATED);
  const extra: Record<string, string> = { [EXTRA_GRANT]: g.id, [EXTRA_AUTHENTICATED_BY]: identity.issuer };
  if (imp?.asMember) extra[EXTRA_USER] = identity.user;
  return { user: imp?.user ?? identity.user, groups, extra };
}

/** `kubectl auth can-i --list`: a SelfSubjectRulesReview, which kube answers from the identity it is given. */
function isSelfRulesReview(a: RequestAttributes): boolean {
  return a.isResourceRequest && a.verb === 'create' && a.apiGroup === 'authorization.k8s.io' && a.resource === 'selfsubjectrulesreviews' && a.subresource === '';
}

/**
 * For a rules review, also the activation groups of the caller's conditional grants that are
 * active now (expiry, windows, invoked break-glass), so `kubectl auth can-i --list` shows what the
 * proxy would allow at this moment, not only the unconditional part. Only the review carries them.
 */
function withActiveConditions(imp: Admission['impersonate'], identity: Identity, bundle: ActiveBundle, activations: ReadonlyMap<string, number>, now: number): Admission['impersonate'] {
  const invoked = new Set(activations.keys());
  const mine = (s: Grant['subjects'][number]) => (s.kind === 'User' ? s.name === identity.user : identity.groups.includes(s.name));
  const active = bundle.ruleSet.grants.filter((g) => g.activationGroup !== undefined && g.subjects.some(mine) && evaluateConditions(g.id, g.conditions, now, invoked).active);
  return { ...imp, groups: [...new Set([...imp.groups, ...active.flatMap((g) => (g.activationGroup ? [g.activationGroup] : []))])] };
}

/** The earliest instant access ends for a long-running request, and why. */
export function deadlineOf(identity: Identity, g: Grant, bundle: ActiveBundle, now: number, breakGlassUntil: number | undefined): StreamDeadline {
  const cands: StreamDeadline[] = [{ at: bundle.notAfter, reason: 'bundle-expired' }];
  if (identity.expiresAt !== undefined) cands.push({ at: identity.expiresAt, reason: 'token-expired' });
  cands.push({ at: activeUntil(g.conditions, now), reason: 'window-ended' });
  if (breakGlassUntil !== undefined) cands.push({ at: breakGlassUntil, reason: 'break-glass-ended' });
  return cands.reduce((a, b) => (b.at < a.at ? b : a));
}

/** kube-apiserver's forbidden message (as in authorization filters' forbidden responder), built only from the request itself. */
function forbiddenMessage(a: RequestAttributes): string {
  if (!a.isResourceRequest) return `forbidden: User "${a.user}" cannot ${a.verb || 'access'} path "${a.path}" (portcullis)`;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const ns = a.namespace ? ` in the namespace "${a.namespace}"` : '';
  const name = a.name ? ` "${a.name}"` : '';
  return `${res}${name} is forbidden: User "${a.user}" cannot ${a.verb || 'access'} resource "${res}" in API group "${a.apiGroup}"${ns} (portcullis)`;
}
