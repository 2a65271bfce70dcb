import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { filterResponseHeaders, type UpstreamHeaders } from './headers.ts';
import type { Dispatcher } from 'undici';
import type { BodyCollector } from './audit/bodies.ts';
import { upstreamPath, upstreamRequest, type Upstream } from './upstream.ts';

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
  /** Collects the bodies an audit record at level Request or RequestResponse holds (forwardHttp only). */
  readonly capture?: BodyCapture | undefined;
}

/** The bodies of one request for its audit record, and the response's content headers. */
export interface BodyCapture {
  readonly request?: BodyCollector;
  readonly response?: BodyCollector;
  responseType?: string | undefined;
  responseEncoding?: string | undefined;
}

/** A forwarded request that can be cut (a watch whose access ended). */
export interface Forwarded {
  readonly cut: () => void;
}

/**
 * Relays a long-running upstream response: its filtered headers (with the
 * proxy's Audit-ID when upstream did not echo it, so the client can always
 * join its response to the audit record), sent at once, since a watch may
 * send no body for a long time; then the body with backpressure. Shared by
 * the HTTP/1.1 and HTTP/2 stream paths.
 */
export function relayResponse(
  body: Readable,
  upstreamHeaders: Readonly<Record<string, string | string[] | number | undefined>>,
  status: number,
  res: ServerResponse | Http2ServerResponse,
  sent: UpstreamHeaders,
  end: (o: ForwardOutcome) => void,
): void {
  if (!res.headersSent) res.writeHead(status, responseHeaders(upstreamHeaders, sent));
  (res as ServerResponse).flushHeaders?.();
  pipeline(body, res as NodeJS.WritableStream, (err) => end(err ? { kind: 'aborted', status, message: err.message } : { kind: 'response', status }));
}

/** The response headers relayed to the client: upstream's, filtered, with the proxy's Audit-ID when upstream did not echo it. */
function responseHeaders(upstreamHeaders: Readonly<Record<string, string | string[] | number | undefined>>, sent: UpstreamHeaders): Record<string, string | string[]> {
  const h = filterResponseHeaders(upstreamHeaders);
  if (h['audit-id'] === undefined) h['audit-id'] = String(sent['audit-id'] ?? '');
  return h;
}

/**
 * Stage 4, forward (ordinary requests): the exact canonical target, the
 * allow-listed headers, over the cluster's verified keep-alive pool (undici).
 * Bodies stream both ways with backpressure; a request that says it has none
 * (GET, LIST, most DELETEs) is sent without one. Redirects are relayed, never
 * followed (SECURITY rule 11): a dispatch never follows them and the status
 * and Location pass as they are.
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
  let controller: Dispatcher.DispatchController | undefined;
  let paused = false;
  let cut = false;
  let upstreamEnded = false;
  let held: Buffer | undefined;
  const end = (o: ForwardOutcome): void => {
    if (ended) return;
    ended = true;
    hooks.onEnd(o);
  };
  const stop = (): void => {
    cut = true;
    controller?.abort(new Error('client closed'));
  };
  const onDrain = (): void => {
    paused = false;
    controller?.resume();
  };
  // The client's body goes through a PassThrough, not as `req` itself: when upstream answers
  // before reading all of it (a 403 on an upload), undici destroys the body stream it was given,
  // and a destroyed `req` would leave the client's HTTP/1.1 connection unread and stalled.
  const streamed = body === undefined && !hasNoBody(req) ? (req as Readable).pipe(new PassThrough()) : undefined;
  const capture = hooks.capture;
  if (capture?.request) {
    if (body !== undefined) capture.request.add(body);
    // From the client's side of the pipe (which reads it by 'data' too), not from what undici consumes.
    else if (streamed !== undefined) (req as Readable).on('data', (c: Buffer) => capture.request?.add(c));
  }
  upstream.pool.dispatch(
    {
      path: upstreamPath(upstream.base, target),
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers,
      body: body ?? streamed ?? null,
      // Keep the connection after HEAD too (undici closes it by default, for servers that send a
      // body with HEAD; kube-apiserver does not).
      reset: false,
    },
    {
      onRequestStart: (c) => {
        controller = c;
        if (cut) c.abort(new Error('client closed'));
      },
      onResponseStart: (_c, statusCode, upstreamHeaders) => {
        if (statusCode < 200) return; // 1xx: the proxy never asks for 100-continue
        status = statusCode;
        if (capture?.response) {
          capture.responseType = headerValue(upstreamHeaders['content-type']);
          capture.responseEncoding = headerValue(upstreamHeaders['content-encoding']);
        }
        hooks.onResponse(status);
        if (!res.headersSent) res.writeHead(status, responseHeaders(upstreamHeaders, headers));
      },
      onResponseData: (c, chunk) => {
        capture?.response?.add(chunk);
        // The last chunk is held back until the response is recorded (below).
        const previous = held;
        held = chunk;
        if (previous && !(res as NodeJS.WritableStream).write(previous) && !paused) {
          paused = true;
          c.pause();
          res.once('drain', onDrain);
        }
      },
      onResponseEnd: () => {
        upstreamEnded = true;
        // Recorded before the client has the whole response: with blocking audit its end waits for the record.
        end({ kind: 'response', status });
        if (held) res.end(held);
        else res.end();
      },
      onResponseError: (_c, err) => {
        // Our own abort (the client left, or the request was cut) is not upstream's failure.
        if (cut) end({ kind: 'aborted', status, message: 'client closed' });
        else if (status === 0) end({ kind: 'upstream-error', message: err.message });
        else {
          res.destroy(err);
          end({ kind: 'aborted', status, message: err.message });
        }
      },
    },
  );
  // Finished after upstream's response ended: served. Finished or closed before (the client went
  // away, or an HTTP/2 stream was reset, which ends its response too): stop the upstream as well.
  const onClientDone = (): void => {
    if (upstreamEnded && res.writableFinished) {
      // Whatever of the client's body upstream did not read is discarded, so the connection stays usable.
      if (streamed !== undefined && !req.complete) {
        req.unpipe(streamed);
        req.resume();
      }
      end({ kind: 'response', status });
    } else if (!ended) {
      end({ kind: 'aborted', status, message: 'client closed' });
      stop();
    }
  };
  res.once('finish', onClientDone);
  res.once('close', onClientDone);
  return {
    cut: () => {
      stop();
      res.destroy();
    },
  };
}

/**
 * Stage 4, forward (long-running requests other than watches, e.g. follow
 * logs over HTTP/1.1): like forwardHttp, over the uncapped stream pool, with
 * the headers sent at once, since such a response may send no body for a long
 * time.
 */
export function forwardStream(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  upstream: Upstream,
  target: string,
  headers: UpstreamHeaders,
  hooks: ForwardHooks,
): Forwarded {
  let ended = false;
  let status = 0;
  const end = (o: ForwardOutcome): void => {
    if (ended) return;
    ended = true;
    hooks.onEnd(o);
  };
  const up = https.request({ ...upstreamRequest(upstream, req.method, target, headers), agent: upstream.streamAgent });
  up.on('response', (upRes) => {
    status = upRes.statusCode ?? 502;
    hooks.onResponse(status);
    relayResponse(upRes, upRes.headers, status, res, headers, end);
  });
  up.on('error', (err) => {
    if (status !== 0) end({ kind: 'aborted', status, message: err.message });
    else end({ kind: 'upstream-error', message: err.message });
  });
  if (hasNoBody(req)) up.end();
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

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Whether a request says it has no body (most requests: GET, LIST, DELETE), so there is nothing to stream upstream. */
function hasNoBody(req: IncomingMessage | Http2ServerRequest): boolean {
  if (req.httpVersionMajor === 2) return (req as Http2ServerRequest).stream.endAfterHeaders;
  const h = req.headers;
  return h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0');
}
