import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { toAuditEvent, type AuditFacts, type AuditStage, type Transport } from './audit/event.ts';
import type { AuditSink } from './audit/sink.ts';
import { ProxyError, type ProxyErrorCode } from './errors.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { Admission } from './pipeline.ts';
import type { Req, RequestState } from './request-state.ts';
import type { StreamEndReason, StreamRegistry } from './streams.ts';

/** What every exchange shares: the proxy's clock, metrics, log, audit sink, streams and drain accounting. */
export interface ExchangeHost {
  readonly clock: () => number;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  readonly audit: AuditSink;
  readonly streams: StreamRegistry;
  readonly drain: Drain;
}

/**
 * In-flight accounting for graceful shutdown: ordinary requests hold up the drain until they
 * end; long-running ones stop holding it when they start streaming (shutdown closes them) and
 * count as live until their end is audited.
 */
export class Drain {
  #inflight = 0;
  #live = 0;
  #idle: (() => void) | undefined;

  /** Long-running requests whose end was not yet audited. */
  get live(): number {
    return this.#live;
  }

  /** Resolves when no ordinary request is in flight. */
  idle(): Promise<void> {
    return this.#inflight === 0 ? Promise.resolve() : new Promise((resolve) => (this.#idle = resolve));
  }

  enter(): void {
    this.#inflight++;
  }

  leave(): void {
    this.#inflight--;
    if (this.#inflight === 0 && this.#idle) this.#idle();
  }

  streamStarted(): void {
    this.#live++;
  }

  streamEnded(): void {
    this.#live--;
  }
}

/** How an exchange sends a Kubernetes `Status` error on its transport (a response, or a raw upgrade socket). */
export type StatusSender = (err: ProxyError, auditId: string) => void;

/**
 * One request from arrival to its audit record: the proxy's request lifecycle. Every outcome,
 * refusals, upstream failures, the proxy's own endpoints and internal errors included, ends here
 * in `end`, the one point that writes the ResponseComplete record (SECURITY rule 17, 23), and
 * only once; `started` writes the ResponseStarted record of a long-running request. The
 * bookkeeping of long-running requests (stream registry, live count, metrics) is here once for
 * HTTP and upgrades alike.
 */
export class Exchange {
  /** What the stages learnt about the request; the audit record is built from it. */
  readonly st: RequestState;
  #ended = false;
  #streaming = false;
  #closeReason: StreamEndReason | undefined;

  constructor(
    private readonly host: ExchangeHost,
    req: Req,
    transport: Transport,
    private readonly send: StatusSender,
  ) {
    const ua = req.headers['user-agent'];
    this.st = {
      auditId: randomUUID(),
      receivedAt: host.clock(),
      method: req.method ?? '',
      requestURI: req.url ?? '',
      sourceIP: req.socket?.remoteAddress ?? '',
      ...(typeof ua === 'string' ? { userAgent: ua } : {}),
      transport,
    };
    host.drain.enter();
  }

  get auditId(): string {
    return this.st.auditId;
  }

  /** Whether the exchange has ended (its record is written). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Why the proxy cut the stream, if it did. */
  get closeReason(): StreamEndReason | undefined {
    return this.#closeReason;
  }

  /** Authorization admitted the request (counted once as `allow`). */
  admitted(admission: Admission): void {
    this.st.admission = admission;
    this.host.metrics.decisions.inc({ cluster: this.st.cluster ?? '', result: 'allow' });
    this.st.counted = true;
  }

  /**
   * Registers the admitted request as long-running, to be cut by `cut` when access ends; false
   * past the identity's limit (the admission is withdrawn: the refusal is a deny).
   */
  stream(a: Admission, cut: (reason: StreamEndReason) => void): boolean {
    const cluster = a.bundle.cluster;
    // The per-identity limit counts the caller, whoever it acts as.
    const caller = a.impersonation?.caller ?? a.identity;
    const ok = this.host.streams.register({
      id: this.st.auditId,
      cluster,
      identityKey: `${caller.issuer} ${caller.user}`,
      identity: a.identity,
      attributes: a.attributes,
      grantId: a.grant.id,
      ...(a.impersonation ? { impersonation: a.impersonation } : {}),
      deadline: a.deadline,
      close: (reason) => {
        this.#closeReason = reason;
        cut(reason);
      },
    });
    if (!ok) {
      this.st.admission = undefined;
      return false;
    }
    this.#streaming = true;
    this.host.drain.streamStarted();
    this.host.drain.leave(); // streams do not hold up the drain; shutdown closes them
    this.host.metrics.activeStreams.set({ cluster }, this.host.streams.count(cluster));
    return true;
  }

  /** The response of a long-running request started: its ResponseStarted record. */
  started(status: number): void {
    if (this.#streaming && !this.#ended) this.#record('ResponseStarted', status, {});
  }

  /**
   * The exchange is over with `status`: its one ResponseComplete record, then the metrics,
   * stream and drain accounting. A stream the proxy cut says why (`stream-end`). Later calls do nothing.
   */
  end(status: number, facts: Partial<AuditFacts> = {}): void {
    if (this.#ended) return;
    this.#ended = true;
    const cluster = this.st.cluster ?? '';
    if (this.#streaming) {
      this.host.streams.unregister(this.st.auditId);
      this.host.drain.streamEnded();
      this.host.metrics.activeStreams.set({ cluster }, this.host.streams.count(cluster));
      if (this.#closeReason) this.host.metrics.streamsClosed.inc({ cluster, reason: this.#closeReason });
    } else {
      const result = this.st.admission || facts.decision === 'allow' ? 'allow' : facts.errorCode === 'FORBIDDEN' ? 'deny' : 'error';
      this.host.metrics.latency.observe({ cluster, result }, (this.host.clock() - this.st.receivedAt) / 1000);
    }
    this.#record('ResponseComplete', status, this.#closeReason && facts.streamEnd === undefined ? { ...facts, streamEnd: this.#closeReason } : facts);
    if (!this.#streaming) this.host.drain.leave();
  }

  /**
   * Refuses the request or reports its failure: counts the decision (deny for FORBIDDEN, error
   * otherwise) unless counted, logs the detail, sends the Status and ends. Anything but a
   * ProxyError is a bug of the proxy's own: INTERNAL (500), never blamed on the cluster.
   */
  refuse(err: unknown, facts: Partial<AuditFacts> = {}): ProxyError {
    const e = asProxyError(err);
    if (this.#ended) return e;
    const cluster = this.st.cluster ?? '';
    if (!this.st.counted) this.host.metrics.decisions.inc({ cluster, result: e.code === 'FORBIDDEN' ? 'deny' : 'error' });
    this.st.counted = true;
    if (e.code === 'UNAUTHENTICATED') this.host.metrics.authnFailures.inc({ code: authnCode(e.detail) });
    if (e.code === 'INTERNAL') this.host.log.error({ auditID: this.st.auditId, cluster: this.st.cluster, err: e.detail }, 'request handler failed');
    else this.host.log.info({ auditID: this.st.auditId, cluster: this.st.cluster, code: e.code, detail: e.detail, user: this.st.identity?.user }, 'request refused');
    this.send(e, this.st.auditId);
    this.end(e.httpStatus, { reason: reasonOf(e.code), errorCode: e.code, detail: e.detail, decision: this.st.admission ? 'allow' : 'deny', ...facts });
    return e;
  }

  /** Upstream failed after admission: 502 Status (when the client can still get one) and the record. */
  upstreamFailed(message: string, errorCode: string = 'UPSTREAM_FAILED', facts: Partial<AuditFacts> = {}): void {
    if (this.#ended) return;
    this.host.log.warn({ auditID: this.st.auditId, cluster: this.st.cluster, err: message }, 'upstream request failed');
    this.host.metrics.upstreamErrors.inc({ cluster: this.st.cluster ?? '', code: errorCode });
    const e = new ProxyError('UPSTREAM_FAILED', message);
    this.send(e, this.st.auditId);
    this.end(e.httpStatus, { errorCode, ...facts });
  }

  #record(stage: AuditStage, code: number, extra: Partial<AuditFacts>): void {
    const st = this.st;
    const a = st.admission;
    const id = st.identity;
    const ad = st.auditDecision;
    // The audit policy may leave out an admitted request's records (level None, omitStages), but never a
    // refusal or failure (an error code) nor a recorded session, whose last record holds the recording's digest.
    if (ad && a && extra.errorCode === undefined && st.recording === undefined && (ad.level === 'None' || (stage === 'ResponseStarted' && ad.omitStarted))) return;
    // Assigned field by field (no conditional spreads): this runs for every request.
    const facts: { -readonly [K in keyof AuditFacts]: AuditFacts[K] } = {
      auditId: st.auditId,
      stage,
      requestURI: st.requestURI,
      method: st.method,
      receivedAt: st.receivedAt,
      at: this.host.clock(),
      sourceIP: st.sourceIP,
      transport: st.transport,
      decision: a ? 'allow' : 'deny',
      reason: a ? 'grant' : 'refused',
      code,
    };
    if (st.userAgent !== undefined) facts.userAgent = st.userAgent;
    if (st.cluster !== undefined) facts.cluster = st.cluster;
    if (id) facts.user = { name: id.user, groups: id.groups, issuer: id.issuer };
    if (a) {
      facts.impersonated = { user: a.impersonate.user, groups: a.impersonate.groups };
      facts.grantId = a.grant.id;
    }
    if (st.attributes) facts.attributes = st.attributes;
    if (st.denyId !== undefined) facts.denyId = st.denyId;
    if (st.source !== undefined) facts.source = st.source;
    if (st.bundleRevision !== undefined) facts.bundleRevision = st.bundleRevision;
    if (st.policyDigest !== undefined) facts.policyDigest = st.policyDigest;
    if (st.policyCommit !== undefined) facts.policyCommit = st.policyCommit;
    if (st.breakGlass !== undefined) facts.breakGlass = st.breakGlass;
    if (st.recording !== undefined) facts.recording = st.recording;
    if (st.recordingError !== undefined) facts.recordingError = st.recordingError;
    if (ad && a && ad.level !== 'None' && ad.level !== 'Metadata') {
      facts.level = ad.level;
      if (st.requestObject !== undefined) facts.requestObject = st.requestObject;
      if (st.responseObject !== undefined) facts.responseObject = st.responseObject;
      if (st.bodyOmitted !== undefined) facts.bodyOmitted = st.bodyOmitted;
    }
    Object.assign(facts, extra);
    const sink = this.host.audit;
    sink.write(toAuditEvent(facts));
    this.host.metrics.auditHealthy.set(sink.healthy ? 1 : 0);
    // The sink counts its losses; the counter follows it.
    const lost = sink.lost - this.host.metrics.auditLostSeen;
    if (lost > 0) {
      this.host.metrics.auditLost.inc(lost);
      this.host.metrics.auditLostSeen = sink.lost;
    }
  }
}

/** A response whose end can be held back. */
interface Ending {
  end: (...args: never[]) => unknown;
}

/**
 * Blocking audit (SECURITY rule 17): the end of `res`, its last bytes, waits until the records
 * queued by then are written, so that no client holds a complete response whose record a crash
 * could still lose. Whoever ends an exchange records it first, or in the same turn.
 */
export function endAfterCommit(res: Ending, sink: AuditSink): { readonly release: () => void } {
  const original = res.end;
  const end = res.end.bind(res) as (...args: unknown[]) => unknown;
  res.end = ((...args: unknown[]) => {
    void sink.committed().then(() => end(...args));
    return res;
  }) as Ending['end'];
  // A long-running response records its end when the client has it (ResponseStarted came first).
  return { release: () => (res.end = original) };
}

/** authenticateStage's details start with the failure's code (`EXPIRED: …`). */
function authnCode(detail: string): string {
  const m = /^([A-Z_]+):/.exec(detail);
  return m?.[1] ?? 'UNUSABLE_IDENTITY';
}

function asProxyError(err: unknown): ProxyError {
  return err instanceof ProxyError ? err : new ProxyError('INTERNAL', (err as Error)?.stack ?? String(err));
}

function reasonOf(code: ProxyErrorCode): string {
  return code === 'FORBIDDEN' ? 'forbidden' : code.toLowerCase().replace(/_/g, '-');
}
