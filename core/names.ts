/**
 * Names Portcullis writes into clusters and audit records, in one place, so
 * the side that writes a name and the side that reads it cannot drift apart:
 * the compiler labels objects and gitops prunes by those labels; the proxy
 * impersonates with user-extra keys and the compiler's RBAC allows exactly
 * those; the proxy annotates audit records and `audit-trace` reads them.
 */
import { POLICY_COMMIT_ANNOTATION } from './bundle.ts';

/**
 * The non-resource path whose rights say who may set locks (`post`), lift them (`delete`) and list
 * them (`get`): granted like any other right (`Roles.locker`), decided by the same authorizer.
 */
export const LOCKS_PATH = '/portcullis/locks';

/**
 * The non-resource path whose `get` right makes an auditor (`Roles.auditor`): in the console, an
 * auditor of a cluster sees every person's audit events there, not only their own, and may ask
 * explain and who-can. Decided by the same authorizer, from the signed bundle.
 */
export const AUDIT_PATH = '/portcullis/audit';

/** Where the proxy's ServiceAccount, its bundle ConfigMap and (deployed by the chart) the proxy live. */
export const PROXY_NAMESPACE = 'portcullis-system';
/** The proxy's ServiceAccount: it may do nothing but impersonate. */
export const PROXY_SERVICE_ACCOUNT = 'portcullis-proxy';
/** The ClusterRole that lets the proxy impersonate exactly the policy's users and groups. */
export const IMPERSONATOR_ROLE = 'portcullis:proxy-impersonator';
/** The ServiceAccount that may only read (get, list, watch) the bundle ConfigMap: the proxy's bundle source credential. */
export const BUNDLE_READER = 'portcullis-bundle-reader';
/** The ConfigMap `apply` delivers a cluster's signed bundle in (the proxy's ConfigMap source default). */
export const BUNDLE_CONFIGMAP = 'portcullis-bundle';
/** The ConfigMap proxy replicas share break-glass activations through (the proxy's `breakGlass.configMap` default). */
export const BREAK_GLASS_CONFIGMAP = 'portcullis-break-glass';
/** The ConfigMap proxy replicas keep the highest accepted bundle revision per cluster in (the proxy's `revisionFloor.configMap` default). */
export const REVISION_FLOOR_CONFIGMAP = 'portcullis-bundle-revisions';

/** The label every managed object carries; apply prunes by it. */
export const MANAGED_BY = { key: 'app.kubernetes.io/managed-by', value: 'portcullis' } as const;
/** The label naming the cluster an object was generated for. */
export const CLUSTER_LABEL = 'portcullis.dev/cluster';

/** User-extra key (Impersonate-Extra-*) naming the grant that allowed the request. */
export const EXTRA_GRANT = 'portcullis.dev/grant';
/** User-extra key naming the issuer that authenticated the caller. */
export const EXTRA_AUTHENTICATED_BY = 'portcullis.dev/authenticated-by';
/** User-extra key carrying the caller's own username when it is impersonated as {@link MEMBER_USER}. */
export const EXTRA_USER = 'portcullis.dev/user';
/** Every user-extra key the proxy sets; its ServiceAccount may impersonate these and no others. */
export const EXTRA_KEYS = [EXTRA_AUTHENTICATED_BY, EXTRA_GRANT, EXTRA_USER] as const;

/**
 * The user the proxy impersonates for an identity the policy does not name: a member of groups
 * the policy grants to (a new hire in `sre`) acts upstream as this fixed, non-system user with its
 * groups, its own name in the {@link EXTRA_USER} extra. No grant may name it (the compiler refuses
 * the reserved prefix), so upstream it holds exactly what its groups are granted.
 */
export const MEMBER_USER = 'portcullis:member';
/** Names with this prefix are the proxy's own (activation groups, the member user); no identity provider may assert one. */
export const RESERVED_PREFIX = 'portcullis:';

/** Annotations of the proxy's audit records (`audit.k8s.io/v1` Event `annotations`). */
export const AUDIT_ANNOTATION = {
  decision: 'portcullis.dev/decision',
  reason: 'portcullis.dev/reason',
  transport: 'portcullis.dev/transport',
  cluster: 'portcullis.dev/cluster',
  grant: 'portcullis.dev/grant',
  deny: 'portcullis.dev/deny',
  source: 'portcullis.dev/source',
  bundleRevision: 'portcullis.dev/bundle-revision',
  policyDigest: 'portcullis.dev/policy-digest',
  policyCommit: POLICY_COMMIT_ANNOTATION,
  error: 'portcullis.dev/error',
  detail: 'portcullis.dev/detail',
  streamEnd: 'portcullis.dev/stream-end',
  breakGlass: 'portcullis.dev/break-glass',
  /** The id of an exec or attach session's recording (`AUDITID.cast`). */
  recording: 'portcullis.dev/recording',
  /** The SHA-256 of the recording file, on the session's ResponseComplete record. */
  recordingSha256: 'portcullis.dev/recording-sha256',
  /** Why a session's recording could not be written (under `audit.onFailure: serve`). */
  recordingError: 'portcullis.dev/recording-error',
  /** Bodies the audit policy's level asks for that the record leaves out, and why (too large, not JSON). */
  bodyOmitted: 'portcullis.dev/body-omitted',
} as const;
