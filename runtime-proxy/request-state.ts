import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Transport } from './audit/event.ts';
import type { AuditDecision } from './audit/policy.ts';
import type { Identity } from './identity.ts';
import type { Admission, AuthorizeFacts } from './pipeline.ts';

/** A request on either transport (HTTP/1.1 or the HTTP/2 compatibility API). */
export type Req = IncomingMessage | Http2ServerRequest;
/** A response on either transport. */
export type Res = ServerResponse | Http2ServerResponse;

/** The per-request record the stages fill in; audit reads it whatever the outcome. */
export interface RequestState extends AuthorizeFacts {
  readonly auditId: string;
  readonly receivedAt: number;
  readonly method: string;
  readonly requestURI: string;
  readonly sourceIP: string;
  readonly userAgent?: string;
  transport: Transport;
  cluster?: string;
  identity?: Identity;
  admission?: Admission | undefined;
  bundleRevision?: number;
  policyDigest?: string;
  policyCommit?: string;
  breakGlass?: string;
  /** The id of the session's recording (exec, attach), on both of its records. */
  recording?: string;
  /** Why the session could not be recorded (it went on under `audit.onFailure: serve`). */
  recordingError?: string;
  /** What the audit policy says of an admitted request (none configured: Metadata for all). */
  auditDecision?: AuditDecision;
  /** The bodies its level asks for, as the record holds them. */
  requestObject?: unknown;
  responseObject?: unknown;
  bodyOmitted?: string;
  /** Set once the decision was counted in the metrics. */
  counted?: boolean;
}

/** What the proxy's own endpoints (break-glass, self-review) need from the server; they end their Exchange. */
export interface EndpointContext {
  readonly clock: () => number;
}

/** Reads a request body of at most `max` bytes. */
export function readBody(req: Req, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) reject(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
