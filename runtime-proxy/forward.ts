import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { pipeline } from 'node:stream';
import { filterResponseHeaders, type UpstreamHeaders } from './headers.ts';
import { upstreamRequest, type Upstream } from './upstream.ts';

/** How a forwarded request ended. */
export type ForwardOutcome =
  | { readonly kind: 'response'; readonly status: number }
  | { readonly kind: 'upstream-error'; readonly message: string }
  | { readonly kind: 'aborted'; readonly status: number; readonly message: string };

/** Callbacks of one forwarded request. */
export interface ForwardHooks {
  /** Upstream answered; headers are about to be relayed. */
  readonly onResponse: (status: number) => void;
  /** The exchange ended (always called once). */
  readonly onEnd: (o: ForwardOutcome) => void;
}

/** A forwarded request that can be cut (a watch whose access ended). */
export interface Forwarded {
  readonly cut: () => void;
}

/**
 * Relays an upstream response: its filtered headers (with the proxy's
 * Audit-ID when upstream did not echo it, so the client can always join its
 * response to the audit record), flushed at once since a watch may send no
 * body for a long time, then the body with backpressure. Shared by the
 * HTTP/1.1 and HTTP/2 upstream paths.
 */
export function relayResponse(
  body: NodeJS.ReadableStream,
  upstreamHeaders: Readonly<Record<string, string | string[] | number | undefined>>,
  status: number,
  res: ServerResponse | Http2ServerResponse,
  sent: UpstreamHeaders,
  end: (o: ForwardOutcome) => void,
): void {
  const plain: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(upstreamHeaders)) if (!k.startsWith(':') && v !== undefined) plain[k] = typeof v === 'number' ? String(v) : v;
  const h = filterResponseHeaders(plain);
  if (h['audit-id'] === undefined) h['audit-id'] = String(sent['audit-id'] ?? '');
  if (!res.headersSent) res.writeHead(status, h);
  (res as ServerResponse).flushHeaders?.();
  pipeline(body, res as NodeJS.WritableStream, (err) => {
    if (err) end({ kind: 'aborted', status, message: err.message });
    else end({ kind: 'response', status });
  });
}

/**
 * Stage 4, forward (ordinary requests): the exact canonical target, the
 * allow-listed headers, over the cluster's verified keep-alive pool. Bodies
 * stream both ways with backpressure (stream.pipeline), so a watch flows as
 * upstream writes it. Redirects are relayed, never followed (SECURITY rule 11):
 * node:https never follows them and the status and Location pass as they are.
 */
export function forwardHttp(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  upstream: Upstream,
  target: string,
  headers: UpstreamHeaders,
  hooks: ForwardHooks,
  /** A body the proxy already read (and checked); otherwise the client's body streams through. */
  body?: Buffer,
): Forwarded {
  let ended = false;
  let status = 0;
  const end = (o: ForwardOutcome): void => {
    if (ended) return;
    ended = true;
    hooks.onEnd(o);
  };
  const up = https.request({ ...upstreamRequest(upstream, req.method, target, headers), agent: upstream.agent });
  up.on('response', (upRes) => {
    status = upRes.statusCode ?? 502;
    hooks.onResponse(status);
    relayResponse(upRes, upRes.headers, status, res, headers, end);
  });
  up.on('error', (err) => {
    if (status !== 0) end({ kind: 'aborted', status, message: err.message });
    else end({ kind: 'upstream-error', message: err.message });
  });
  if (body !== undefined) up.end(body);
  else {
    pipeline(req as NodeJS.ReadableStream, up, (err) => {
      if (err && status === 0) {
        up.destroy();
        end({ kind: 'upstream-error', message: `client body: ${err.message}` });
      }
    });
  }
  res.on('close', () => {
    // The client went away (or we cut it): stop the upstream too.
    if (ended) return;
    if (res.writableFinished) end({ kind: 'response', status });
    else {
      up.destroy();
      end({ kind: 'aborted', status, message: 'client closed' });
    }
  });
  return {
    cut: () => {
      up.destroy();
      res.destroy();
    },
  };
}
