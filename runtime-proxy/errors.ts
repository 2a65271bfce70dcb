/**
 * The one table that maps every proxy error to an HTTP status and a
 * Kubernetes `Status` body with a safe message. Details never go to the
 * client: they go to the log and the audit record (SECURITY rule 16).
 */

/** Stable codes for every way the proxy refuses or fails a request. */
export type ProxyErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'TOO_MANY_STREAMS'
  | 'UPSTREAM_FAILED'
  | 'NO_BUNDLE'
  | 'AUDIT_UNAVAILABLE'
  | 'SHUTTING_DOWN'
  | 'NOTIFY_FAILED'
  | 'BREAK_GLASS_STORE'
  | 'TOO_MANY_HEADERS'
  | 'MALFORMED_REQUEST'
  | 'IMPERSONATION_REFUSED'
  | 'SESSION_STORE_UNAVAILABLE'
  | 'LOCKED'
  | 'AGENT_UNAVAILABLE'
  | 'INTERNAL';

interface Row {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
}

const TABLE: Readonly<Record<ProxyErrorCode, Row>> = {
  BAD_REQUEST: { code: 400, reason: 'BadRequest', message: 'the request target is not in canonical form' },
  UNAUTHENTICATED: { code: 401, reason: 'Unauthorized', message: 'Unauthorized' },
  FORBIDDEN: { code: 403, reason: 'Forbidden', message: 'forbidden by portcullis policy' },
  NOT_FOUND: { code: 404, reason: 'NotFound', message: 'the server could not find the requested resource' },
  METHOD_NOT_ALLOWED: { code: 405, reason: 'MethodNotAllowed', message: 'the method is not allowed here' },
  TOO_MANY_STREAMS: { code: 429, reason: 'TooManyRequests', message: 'too many long-running requests for this identity; close some and retry' },
  UPSTREAM_FAILED: { code: 502, reason: 'InternalError', message: 'the cluster could not be reached through portcullis' },
  NO_BUNDLE: { code: 503, reason: 'ServiceUnavailable', message: 'portcullis has no valid policy bundle for this cluster yet' },
  AUDIT_UNAVAILABLE: { code: 503, reason: 'ServiceUnavailable', message: 'portcullis cannot write its audit log; refusing requests' },
  SHUTTING_DOWN: { code: 503, reason: 'ServiceUnavailable', message: 'portcullis is shutting down; retry' },
  BREAK_GLASS_STORE: { code: 503, reason: 'ServiceUnavailable', message: 'the break-glass activation could not be recorded; not activated' },
  NOTIFY_FAILED: { code: 503, reason: 'ServiceUnavailable', message: 'break-glass notification failed; not activated' },
  TOO_MANY_HEADERS: { code: 431, reason: 'BadRequest', message: 'too many header lines, or header fields too large' },
  MALFORMED_REQUEST: { code: 400, reason: 'BadRequest', message: 'malformed HTTP request' },
  IMPERSONATION_REFUSED: { code: 403, reason: 'Forbidden', message: 'impersonation (kubectl --as, --as-group) is allowed through portcullis only where the policy grants it' },
  SESSION_STORE_UNAVAILABLE: { code: 503, reason: 'ServiceUnavailable', message: 'the session store is unreachable: logins, logouts and locks cannot be recorded now; retry' },
  AGENT_UNAVAILABLE: { code: 503, reason: 'ServiceUnavailable', message: "the cluster's agent is not connected to portcullis; retry shortly" },
  LOCKED: { code: 403, reason: 'Forbidden', message: 'access is locked by an administrator' },
  INTERNAL: { code: 500, reason: 'InternalError', message: 'portcullis failed to handle the request (an error of its own, not the cluster)' },
};

/** A refusal or failure: the code picks the status; `detail` is for logs and audit only. */
export class ProxyError extends Error {
  constructor(
    readonly code: ProxyErrorCode,
    readonly detail: string,
    /** Overrides the table's safe message when the message is built only from what the client sent (e.g. kube's forbidden text). */
    readonly safeMessage?: string,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'ProxyError';
  }

  get httpStatus(): number {
    return TABLE[this.code].code;
  }
}

/** A Kubernetes `Status` object (meta/v1), as kubectl expects in error responses. */
export interface KubeStatus {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure';
  readonly message: string;
  readonly reason: string;
  readonly code: number;
}

/** The status and body sent for an error; the detail is left out on purpose. */
export function statusFor(err: ProxyError): KubeStatus {
  const row = TABLE[err.code];
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.safeMessage ?? row.message, reason: row.reason, code: row.code };
}
