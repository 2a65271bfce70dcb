import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PRODUCT_VERSION } from '../core/version.ts';

/** The proxy's Prometheus metrics, on their own registry (one per proxy instance). */
export interface ProxyMetrics {
  readonly registry: Registry;
  readonly decisions: Counter<'cluster' | 'result'>;
  readonly latency: Histogram<'cluster' | 'result'>;
  readonly reloads: Counter<'cluster' | 'result'>;
  readonly bundleRevision: Gauge<'cluster'>;
  readonly bundleExpiry: Gauge<'cluster'>;
  readonly activeStreams: Gauge<'cluster'>;
  readonly streamsClosed: Counter<'cluster' | 'reason'>;
  readonly auditLost: Counter;
  /** How many lost records the counter already counts (the sink's own count is cumulative). */
  auditLostSeen: number;
  readonly authnFailures: Counter<'code'>;
  readonly upstreamErrors: Counter<'cluster' | 'code'>;
  readonly auditHealthy: Gauge;
  readonly breakGlass: Counter<'cluster' | 'result'>;
  readonly recordings: Counter<'cluster' | 'result'>;
}

/** Creates the metrics, with Node's process metrics and the build information. */
export function createMetrics(): ProxyMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  new Gauge({ name: 'portcullis_build_info', help: 'Always 1; the labels say which build runs', labelNames: ['version', 'node_version'], registers }).set({ version: PRODUCT_VERSION, node_version: process.version }, 1);
  return {
    registry,
    decisions: new Counter({ name: 'portcullis_decisions_total', help: 'Authorization decisions by result (allow, deny, error)', labelNames: ['cluster', 'result'], registers }),
    latency: new Histogram({
      name: 'portcullis_request_duration_seconds',
      help: 'Time from request received to response complete (non-long-running requests)',
      labelNames: ['cluster', 'result'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reloads: new Counter({ name: 'portcullis_bundle_reloads_total', help: 'Bundle reloads by result (accepted, unchanged, rejected, fetch_failed)', labelNames: ['cluster', 'result'], registers }),
    bundleRevision: new Gauge({ name: 'portcullis_bundle_revision', help: 'Revision of the active bundle', labelNames: ['cluster'], registers }),
    bundleExpiry: new Gauge({
      name: 'portcullis_bundle_expiry_timestamp_seconds',
      help: "The active bundle's notAfter, seconds since the epoch; alert well before time() reaches it (the cluster then refuses every request)",
      labelNames: ['cluster'],
      registers,
    }),
    activeStreams: new Gauge({ name: 'portcullis_active_streams', help: 'Live long-running requests (watch, exec, attach, port-forward, follow logs)', labelNames: ['cluster'], registers }),
    streamsClosed: new Counter({ name: 'portcullis_streams_closed_total', help: 'Long-running requests closed by the proxy, by reason', labelNames: ['cluster', 'reason'], registers }),
    auditLostSeen: 0,
    auditLost: new Counter({ name: 'portcullis_audit_lost_records_total', help: 'Audit records dropped because the sink failed and the buffer overflowed', registers }),
    authnFailures: new Counter({ name: 'portcullis_authentication_failures_total', help: 'Requests refused by authentication, by code (NO_CREDENTIALS, INVALID_CREDENTIALS, AMBIGUOUS_CREDENTIALS, EXPIRED, UNUSABLE_IDENTITY)', labelNames: ['code'], registers }),
    upstreamErrors: new Counter({ name: 'portcullis_upstream_errors_total', help: 'Admitted requests the cluster failed (unreachable, reset, TLS), by code', labelNames: ['cluster', 'code'], registers }),
    auditHealthy: new Gauge({ name: 'portcullis_audit_sink_healthy', help: '1 when the last audit write succeeded', registers }),
    breakGlass: new Counter({ name: 'portcullis_break_glass_total', help: 'Break-glass invocations by result', labelNames: ['cluster', 'result'], registers }),
    recordings: new Counter({ name: 'portcullis_session_recordings_total', help: 'exec and attach session recordings by result (written, failed: unavailable or broken mid-session)', labelNames: ['cluster', 'result'], registers }),
  };
}
