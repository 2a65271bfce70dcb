import type { RequestAttributes } from '../core/attributes.ts';
import { EXTRA_AUTHENTICATED_BY } from '../core/names.ts';
import { ALL_AUTHENTICATED } from './discovery.ts';
import type { Identity } from './identity.ts';

/**
 * SelfSubjectAccessReview (`kubectl auth can-i`) answered by the proxy's own
 * decision: upstream alone cannot know the proxy's denies, conditions and
 * activation groups. A review the proxy would refuse is answered "no" here;
 * one it would allow goes upstream impersonating exactly what the real
 * request would carry (the determining grant's activation group included), so
 * the answer also reflects the cluster's RBAC.
 */

/** Whether a request is the creation of a SelfSubjectAccessReview. */
export function isSelfAccessReview(a: RequestAttributes): boolean {
  return a.isResourceRequest && a.verb === 'create' && a.apiGroup === 'authorization.k8s.io' && a.resource === 'selfsubjectaccessreviews' && a.subresource === '';
}

/** A SelfSubjectReview (`kubectl auth whoami`, authentication.k8s.io/v1): the proxy answers it with the caller's own identity. */
export function isSelfSubjectReview(a: RequestAttributes): boolean {
  return a.isResourceRequest && a.verb === 'create' && a.apiGroup === 'authentication.k8s.io' && a.resource === 'selfsubjectreviews' && a.subresource === '';
}

/**
 * The SelfSubjectReview of an identity as kube-apiserver builds it (pkg/registry/authentication/selfsubjectreview:
 * the user's name, groups and extra), for the identity the proxy authenticated, not MEMBER_USER whom it
 * impersonates upstream for a member the policy does not name; the version is the one asked for.
 */
export function selfSubjectReview(version: string, identity: Identity): object {
  return {
    kind: 'SelfSubjectReview',
    apiVersion: `authentication.k8s.io/${version}`,
    metadata: { creationTimestamp: null },
    status: { userInfo: { username: identity.user, groups: [...identity.groups, ALL_AUTHENTICATED], extra: { [EXTRA_AUTHENTICATED_BY]: [identity.issuer] } } },
  };
}

/** The spec of a SelfSubjectAccessReview (authorization/v1), as JSON names it. */
export interface ReviewSpec {
  resourceAttributes?: { namespace?: string; verb?: string; group?: string; version?: string; resource?: string; subresource?: string; name?: string };
  nonResourceAttributes?: { path?: string; verb?: string };
}

/** Reads the spec from a review body in JSON or Kubernetes protobuf (what kubectl sends); undefined when unreadable. */
export function readReviewSpec(contentType: string, body: Buffer): ReviewSpec | undefined {
  try {
    if (contentType.startsWith('application/json')) {
      const spec = (JSON.parse(body.toString('utf8')) as { spec?: ReviewSpec } | null)?.spec;
      return spec && typeof spec === 'object' ? spec : undefined;
    }
    if (contentType.startsWith('application/vnd.kubernetes.protobuf')) return protobufSpec(body);
  } catch {
    return undefined;
  }
  return undefined;
}

// Kubernetes protobuf: the magic "k8s\0", then runtime.Unknown{typeMeta=1, raw=2, …}; raw is the
// SelfSubjectAccessReview{metadata=1, spec=2}; spec{resourceAttributes=1, nonResourceAttributes=2};
// ResourceAttributes{namespace=1, verb=2, group=3, version=4, resource=5, subresource=6, name=7};
// NonResourceAttributes{path=1, verb=2} (k8s.io/api/authorization/v1/generated.proto).
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

function protobufSpec(body: Buffer): ReviewSpec | undefined {
  if (!body.subarray(0, 4).equals(MAGIC)) return undefined;
  const raw = fields(body.subarray(4)).get(2);
  const specBytes = raw && fields(raw).get(2);
  if (!specBytes) return undefined;
  const spec = fields(specBytes);
  const text = (m: Map<number, Buffer>, n: number): string | undefined => m.get(n)?.toString('utf8');
  const ra = spec.get(1);
  if (ra) {
    const f = fields(ra);
    const out: Record<string, string> = {};
    for (const [n, k] of [[1, 'namespace'], [2, 'verb'], [3, 'group'], [4, 'version'], [5, 'resource'], [6, 'subresource'], [7, 'name']] as const) {
      const v = text(f, n);
      if (v !== undefined) out[k] = v;
    }
    return { resourceAttributes: out };
  }
  const na = spec.get(2);
  if (na) {
    const f = fields(na);
    return { nonResourceAttributes: { ...(text(f, 1) !== undefined ? { path: text(f, 1) } : {}), ...(text(f, 2) !== undefined ? { verb: text(f, 2) } : {}) } as { path?: string; verb?: string } };
  }
  return {};
}

/** The length-delimited fields of one protobuf message (last occurrence wins); other wire types are skipped. */
function fields(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let n = 0; n < 10; n++) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated');
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (i < buf.length) {
    const tag = varint();
    const wire = tag % 8;
    const field = Math.floor(tag / 8);
    if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error('truncated');
      out.set(field, buf.subarray(i, i + len));
      i += len;
    } else if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`wire type ${wire}`);
  }
  return out;
}

/** The attributes a review asks about, for this identity; undefined when the spec names neither kind of attributes. */
export function reviewAttributes(spec: ReviewSpec | undefined, user: string, groups: readonly string[]): RequestAttributes | undefined {
  if (!spec || typeof spec !== 'object') return undefined;
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  if (spec.resourceAttributes && typeof spec.resourceAttributes === 'object') {
    const r = spec.resourceAttributes;
    return {
      user,
      groups,
      verb: str(r.verb),
      isResourceRequest: true,
      path: '',
      apiGroup: str(r.group),
      apiVersion: str(r.version),
      resource: str(r.resource),
      subresource: str(r.subresource),
      namespace: str(r.namespace),
      name: str(r.name),
    };
  }
  if (spec.nonResourceAttributes && typeof spec.nonResourceAttributes === 'object') {
    const n = spec.nonResourceAttributes;
    return { user, groups, verb: str(n.verb), isResourceRequest: false, path: str(n.path), apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
  }
  return undefined;
}

/** The review object answered locally (JSON, which kubectl accepts) when the proxy would refuse the request (kube's response shape, 201). */
export function deniedReview(spec: ReviewSpec | undefined, denied: boolean): unknown {
  return {
    kind: 'SelfSubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: {},
    spec: spec ?? {},
    status: { allowed: false, ...(denied ? { denied: true } : {}), reason: denied ? 'denied by portcullis policy' : 'no portcullis grant allows this' },
  };
}
