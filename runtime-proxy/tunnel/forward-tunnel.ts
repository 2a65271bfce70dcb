import http2, { type ClientHttp2Stream, type IncomingHttpHeaders as H2Headers, type OutgoingHttpHeaders } from 'node:http2';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { PassThrough, type Duplex } from 'node:stream';
import { METHOD_HEADER } from '../../agent/protocol.ts';
import { filterResponseHeaders, type UpstreamHeaders } from '../headers.ts';
import { relayResponse, type ForwardHooks, type Forwarded } from '../forward.ts';
import { followClient } from '../forward-h2.ts';
import { relay, type UpgradeHooks } from '../upgrade.ts';
import type { Tunnel } from './tunnels.ts';

/** Connection-specific headers HTTP/2 forbids, and the upstream credential, which the agent alone adds (SECURITY rule 32). */
const NOT_THROUGH = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'authorization']);
const MAX_REFUSAL_BODY = 1024 * 1024;

/** The request's headers as one tunnel stream's: the exact target, allow-listed headers, no credential. */
function streamHeaders(method: string, target: string, headers: UpstreamHeaders): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {};
  for (const k in headers) if (!NOT_THROUGH.has(k)) h[k] = headers[k];
  h[':method'] = method;
  h[':path'] = target;
  return h;
}

/**
 * Opens a stream on a tunnel and counts it until it closes. A long-running one closed by the
 * tunnel's end is reported first (this listener runs before the forwarder's), so its record
 * says `tunnel-lost`.
 */
function open(t: Tunnel, h: OutgoingHttpHeaders, endStream: boolean, auditId: string | undefined): ClientHttp2Stream {
  const up = t.session.request(h, { endStream });
  t.active++;
  let reported = false;
  const lost = (): void => {
    if (reported || auditId === undefined || t.usable) return;
    reported = true;
    t.lost(auditId);
  };
  // A destroyed stream emits 'error' before 'close': whichever comes first tells.
  up.on('error', lost);
  up.once('close', () => {
    t.active--;
    lost();
  });
  return up;
}

/** Why a tunnel stream failed, for the record: the tunnel's end, or the stream's own error. */
function failure(t: Tunnel, up: ClientHttp2Stream, err?: Error): string {
  if (!t.usable) return `tunnel lost: agent ${t.remote} of ${t.cluster}`;
  return err?.message ?? `tunnel stream closed (code ${up.rstCode})`;
}

/**
 * Stage 4, forward over an agent's tunnel (ordinary and long-running
 * requests): one HTTP/2 stream per request, the exact target and the
 * allow-listed headers, never a credential (the agent adds its own); bodies
 * both ways with backpressure (HTTP/2 flow control on the tunnel, stream
 * backpressure at each end). An ordinary response's last chunk is held back
 * until its record is written, as forwardHttp does; a long-running one is
 * relayed as it comes.
 */
export function forwardTunnel(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  t: Tunnel,
  target: string,
  headers: UpstreamHeaders,
  hooks: ForwardHooks,
  o: { readonly longRunning: boolean; readonly body?: Buffer | undefined },
): Forwarded {
  let ended = false;
  let status = 0;
  let held: Buffer | undefined;
  const end = (x: Parameters<ForwardHooks['onEnd']>[0]): void => {
    if (ended) return;
    ended = true;
    hooks.onEnd(x);
  };
  const noBody = o.body === undefined && hasNoBody(req);
  const up = open(t, streamHeaders(req.method ?? 'GET', target, headers), noBody, o.longRunning ? String(headers['audit-id']) : undefined);
  const capture = hooks.capture;
  if (o.body !== undefined) {
    capture?.request?.add(o.body);
    up.end(o.body);
  } else if (!noBody) {
    const body = (req as NodeJS.ReadableStream).pipe(new PassThrough());
    if (capture?.request) body.on('data', (c: Buffer) => capture.request?.add(c));
    body.pipe(up);
  }
  up.once('response', (h: H2Headers) => {
    status = Number(h[':status'] ?? 502);
    if (status < 200) return;
    if (capture?.response) {
      capture.responseType = one(h['content-type']);
      capture.responseEncoding = one(h['content-encoding']);
    }
    hooks.onResponse(status);
    if (o.longRunning) return relayResponse(up, h, status, res, headers, end);
    if (!res.headersSent) res.writeHead(status, withAuditId(h, headers));
    up.on('data', (chunk: Buffer) => {
      capture?.response?.add(chunk);
      const previous = held;
      held = chunk;
      if (previous && !(res as NodeJS.WritableStream).write(previous)) {
        up.pause();
        res.once('drain', () => up.resume());
      }
    });
    up.once('end', () => {
      // Recorded before the client has the whole response: with blocking audit its end waits for the record.
      end({ kind: 'response', status });
      if (held) res.end(held);
      else res.end();
    });
  });
  up.on('error', (err) => {
    if (status === 0) end({ kind: 'upstream-error', message: failure(t, up, err) });
    else {
      res.destroy(err);
      end({ kind: 'aborted', status, message: failure(t, up, err) });
    }
  });
  up.once('close', () => {
    if (status === 0) end({ kind: 'upstream-error', message: failure(t, up) });
    else if (!ended && !up.readableEnded) {
      res.destroy();
      end({ kind: 'aborted', status, message: failure(t, up) });
    }
  });
  return followClient(up, res, () => ({ ended, status }), end);
}

/**
 * Stage 4, forward (upgrades: exec, attach, port-forward) over a tunnel: an
 * RFC 8441 extended CONNECT stream whose `:protocol` is the upgrade token; the
 * agent makes the upgrade request to its kube-apiserver and answers 200 with
 * the 101's headers, or the refusal as it came. Like forwardUpgrade, the
 * client's socket is not read before the upgrade, and a client that sends
 * early is cut off.
 */
export function forwardTunnelUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  t: Tunnel,
  target: string,
  headers: UpstreamHeaders,
  protocol: string,
  hooks: UpgradeHooks,
): { readonly cut: () => void } {
  let ended = false;
  let upgraded = false;
  let linger: NodeJS.Timeout | undefined;
  const h = streamHeaders('CONNECT', target, headers);
  // The upgrade request's own body length (a SPDY POST says 0) is not the stream's: what follows the upgrade is.
  delete h['content-length'];
  h[':protocol'] = protocol;
  h[':scheme'] = 'https';
  h[':authority'] = `${t.cluster}.agent.invalid`;
  h[METHOD_HEADER] = req.method ?? 'GET';
  const up = open(t, h, false, String(headers['audit-id']));
  const end = (o: Parameters<UpgradeHooks['onEnd']>[0]): void => {
    if (ended) return;
    ended = true;
    if (linger) clearTimeout(linger);
    socket.destroy();
    if (!up.destroyed) up.close(http2.constants.NGHTTP2_CANCEL);
    hooks.onEnd(o);
  };
  const early = (): void => end({ kind: 'early-bytes' });
  if (head.length > 0) queueMicrotask(early);
  else socket.on('data', early);
  socket.on('error', () => end(upgraded ? { kind: 'upgraded-closed', status: 101 } : { kind: 'upstream-error', message: 'client socket error' }));
  socket.on('close', () => {
    if (!ended && !upgraded) end({ kind: 'upstream-error', message: 'client closed before upgrade' });
  });
  up.once('response', (rh: H2Headers) => {
    const status = Number(rh[':status'] ?? 502);
    if (ended) return;
    socket.removeListener('data', early);
    if (status === 200) {
      upgraded = true;
      const relayed = filterResponseHeaders(rh);
      const lines = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', `Upgrade: ${protocol}`];
      for (const [k, v] of Object.entries(relayed)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      hooks.tap?.upgraded({ ...relayed, connection: 'Upgrade', upgrade: protocol } as IncomingHttpHeaders);
      hooks.onUpgraded();
      relay(up, socket, () => end({ kind: 'upgraded-closed', status: 101 }), (x) => (linger = x), hooks.tap);
      return;
    }
    // Refused upstream (or by the agent): relayed as it came, then both close.
    const chunks: Buffer[] = [];
    let size = 0;
    up.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REFUSAL_BODY) chunks.push(c);
    });
    up.once('end', () => {
      const body = Buffer.concat(chunks);
      const lines = [`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Refused'}`];
      for (const [k, v] of Object.entries(filterResponseHeaders(rh))) {
        if (k === 'content-length') continue;
        for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
      }
      lines.push(`content-length: ${body.length}`, 'connection: close');
      socket.end(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), body]), () => end({ kind: 'refused', status }));
    });
  });
  up.on('error', (err) => end(upgraded ? { kind: 'upgraded-closed', status: 101 } : { kind: 'upstream-error', message: failure(t, up, err) }));
  up.once('close', () => {
    if (!upgraded && !ended) end({ kind: 'upstream-error', message: failure(t, up) });
  });
  return {
    cut: () => end(upgraded ? { kind: 'upgraded-closed', status: 101 } : { kind: 'upstream-error', message: 'cut' }),
  };
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function withAuditId(h: H2Headers, sent: UpstreamHeaders): Record<string, string | string[]> {
  const out = filterResponseHeaders(h);
  if (out['audit-id'] === undefined) out['audit-id'] = String(sent['audit-id'] ?? '');
  return out;
}

/** Whether a request says it has no body (most requests: GET, LIST, DELETE). */
function hasNoBody(req: IncomingMessage | Http2ServerRequest): boolean {
  if (req.httpVersionMajor === 2) return (req as Http2ServerRequest).stream.endAfterHeaders;
  const h = req.headers;
  return h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0');
}
