import type { RequestAttributes } from '../../core/attributes.ts';
import { AUDIT_ANNOTATION as A, EXTRA_AUTHENTICATED_BY } from '../../core/names.ts';
import type { AuditLevel } from './policy.ts';

/** Audit stages the proxy writes (audit.k8s.io/v1 Stage). */
export type AuditStage = 'ResponseStarted' | 'ResponseComplete';

/** The transport a request arrived on. */
export type Transport = 'http1' | 'http2' | 'websocket' | 'spdy';

/** One audit record, in the audit.k8s.io/v1 Event shape, annotations carrying the proxy's decision. */
export interface AuditEvent {
  readonly kind: 'Event';
  readonly apiVersion: 'audit.k8s.io/v1';
  readonly level: Exclude<AuditLevel, 'None'>;
  readonly auditID: string;
  readonly stage: AuditStage;
  readonly requestURI: string;
  readonly verb: string;
  readonly user: { readonly username: string; readonly groups?: readonly string[]; readonly extra?: Readonly<Record<string, readonly string[]>> };
  readonly impersonatedUser?: { readonly username: string; readonly groups?: readonly string[] };
  readonly sourceIPs: readonly string[];
  readonly userAgent?: string;
  readonly objectRef?: {
    readonly resource?: string;
    readonly namespace?: string;
    readonly name?: string;
    readonly apiGroup?: string;
    readonly apiVersion?: string;
    readonly subresource?: string;
  };
  readonly responseStatus: { readonly metadata: Record<string, never>; readonly code: number; readonly status?: string; readonly reason?: string; readonly message?: string };
  readonly requestReceivedTimestamp: string;
  readonly stageTimestamp: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** At level Request and above: the request's body, as JSON. */
  readonly requestObject?: unknown;
  /** At level RequestResponse: the response's body, as JSON. */
  readonly responseObject?: unknown;
}

/** Everything the pipeline knows about a request when it writes a stage. */
export interface AuditFacts {
  readonly auditId: string;
  readonly stage: AuditStage;
  readonly requestURI: string;
  readonly method: string;
  readonly receivedAt: number;
  readonly at: number;
  readonly sourceIP: string;
  readonly userAgent?: string;
  readonly cluster?: string;
  readonly transport: Transport;
  readonly user?: { readonly name: string; readonly groups: readonly string[]; readonly issuer: string };
  readonly impersonated?: { readonly user: string; readonly groups: readonly string[] };
  readonly attributes?: RequestAttributes;
  readonly decision: 'allow' | 'deny' | 'error';
  readonly reason: string;
  readonly grantId?: string;
  readonly denyId?: string;
  readonly source?: string;
  readonly bundleRevision?: number;
  readonly policyDigest?: string;
  /** The git commit the bundle's delivery named (unsigned; `portcullis audit-trace` checks it). */
  readonly policyCommit?: string;
  readonly code: number;
  readonly errorCode?: string;
  /** Why a request was refused, in full (never sent to the client). */
  readonly detail?: string;
  readonly streamEnd?: string;
  readonly breakGlass?: string;
  /** The session recording's id, and on its last record the file's SHA-256 or why it failed. */
  readonly recording?: string;
  readonly recordingSha256?: string;
  readonly recordingError?: string;
  /** The audit policy's level for this request. @default Metadata */
  readonly level?: Exclude<AuditLevel, 'None'>;
  readonly requestObject?: unknown;
  readonly responseObject?: unknown;
  /** Bodies the level asks for that are not in the record, and why. */
  readonly bodyOmitted?: string;
}

/** Builds the Event; pure. */
export function toAuditEvent(f: AuditFacts): AuditEvent {
  const a = f.attributes;
  const annotations: Record<string, string> = {
    [A.decision]: f.decision,
    [A.reason]: f.reason,
    [A.transport]: f.transport,
  };
  if (f.cluster !== undefined) annotations[A.cluster] = f.cluster;
  if (f.grantId !== undefined) annotations[A.grant] = f.grantId;
  if (f.denyId !== undefined) annotations[A.deny] = f.denyId;
  if (f.source !== undefined) annotations[A.source] = f.source;
  if (f.bundleRevision !== undefined) annotations[A.bundleRevision] = String(f.bundleRevision);
  if (f.policyDigest !== undefined) annotations[A.policyDigest] = f.policyDigest;
  if (f.policyCommit !== undefined) annotations[A.policyCommit] = f.policyCommit;
  if (f.errorCode !== undefined) annotations[A.error] = f.errorCode;
  if (f.detail !== undefined) annotations[A.detail] = f.detail;
  if (f.streamEnd !== undefined) annotations[A.streamEnd] = f.streamEnd;
  if (f.breakGlass !== undefined) annotations[A.breakGlass] = f.breakGlass;
  if (f.recording !== undefined) annotations[A.recording] = f.recording;
  if (f.recordingSha256 !== undefined) annotations[A.recordingSha256] = f.recordingSha256;
  if (f.recordingError !== undefined) annotations[A.recordingError] = f.recordingError;
  if (f.bodyOmitted !== undefined) annotations[A.bodyOmitted] = f.bodyOmitted;
  // Built field by field, in kube's order (bodies before the timestamps, annotations last, where the
  // chain splices its own), with no conditional spreads: this runs for every record.
  const ev: { -readonly [K in keyof AuditEvent]?: AuditEvent[K] } = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: f.level ?? 'Metadata',
    auditID: f.auditId,
    stage: f.stage,
    requestURI: f.requestURI,
    verb: a?.verb || f.method.toLowerCase(),
    user: f.user ? { username: f.user.name, groups: f.user.groups, extra: { [EXTRA_AUTHENTICATED_BY]: [f.user.issuer] } } : { username: 'system:anonymous' },
  };
  if (f.impersonated) ev.impersonatedUser = { username: f.impersonated.user, groups: f.impersonated.groups };
  ev.sourceIPs = [f.sourceIP];
  if (f.userAgent !== undefined) ev.userAgent = f.userAgent;
  if (a && a.isResourceRequest) {
    const ref: { -readonly [K in keyof NonNullable<AuditEvent['objectRef']>]: string } = { resource: a.resource };
    if (a.namespace) ref.namespace = a.namespace;
    if (a.name) ref.name = a.name;
    ref.apiGroup = a.apiGroup;
    ref.apiVersion = a.apiVersion;
    if (a.subresource) ref.subresource = a.subresource;
    ev.objectRef = ref;
  }
  ev.responseStatus = f.code >= 400 ? { metadata: {}, code: f.code, status: 'Failure', reason: f.reason } : { metadata: {}, code: f.code };
  // Bodies only at the levels Request and RequestResponse.
  if (f.requestObject !== undefined) ev.requestObject = f.requestObject;
  if (f.responseObject !== undefined) ev.responseObject = f.responseObject;
  ev.requestReceivedTimestamp = micro(f.receivedAt);
  ev.stageTimestamp = micro(f.at);
  ev.annotations = annotations;
  return ev as AuditEvent;
}

/** The last second formatted (`YYYY-MM-DDTHH:MM:SS`): the records of one second share it. */
let lastSecond = Number.NaN;
let lastPrefix = '';

/**
 * An instant as kube's audit timestamps: RFC 3339 in UTC with microseconds (the proxy's clock has
 * milliseconds). Only a new second goes through Date (whose toISOString also asks ICU for the
 * local zone's offset); within it, the milliseconds are appended to the second's prefix.
 */
function micro(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    // toISOString is `YYYY-MM-DDTHH:MM:SS.sssZ` for the years kube's timestamps can hold (it throws for an invalid date).
    lastPrefix = new Date(second * 1000).toISOString().slice(0, 19);
    lastSecond = second;
  }
  const milli = ms - second * 1000;
  return `${lastPrefix}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}000Z`;
}
