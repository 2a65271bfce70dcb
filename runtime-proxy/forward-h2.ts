import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { relayResponse, type ForwardHooks, type ForwardOutcome, type Forwarded } from './forward.ts';
import type { UpstreamHeaders } from './headers.ts';
import { upstreamPath, type Upstream } from './upstream.ts';

/** Streams per upstream HTTP/2 connection; Go's server allows 250 by default (kube's --http2-max-streams-per-connection). */
const STREAMS_PER_SESSION = 100;
/** Connection-specific headers HTTP/2 forbids. */
const H1_ONLY = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te']);

interface PooledSession {
  readonly session: ClientHttp2Session;
  active: number;
}

/**
 * Upstream HTTP/2 sessions of one cluster, for long-running GETs. Watches
 * multiplex over a few verified TLS connections instead of holding one
 * each: at 2,000 watches that is most of the proxy's memory.
 */
export class Http2Pool {
  private readonly sessions: PooledSession[] = [];

  constructor(private readonly upstream: Upstream) {}

  /** A session with room for one more stream. */
  acquire(): PooledSession {
    const open = this.sessions.find((s) => !s.session.closed && !s.session.destroyed && s.active < STREAMS_PER_SESSION);
    if (open) return open;
    const { ca, cert, key, servername } = this.upstream.tls;
    const session = http2.connect(this.upstream.base.origin, {
      ca,
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(servername ? { servername } : {}),
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
      maxSessionMemory: 64,
    });
    const pooled: PooledSession = { session, active: 0 };
    const drop = () => {
      const i = this.sessions.indexOf(pooled);
      if (i >= 0) this.sessions.splice(i, 1);
    };
    session.on('error', drop);
    session.on('close', drop);
    session.on('goaway', drop);
    session.setTimeout(0);
    session.unref(); // never what keeps a process alive: the server's socket does that
    this.sessions.push(pooled);
    return pooled;
  }

  close(): void {
    for (const s of this.sessions.splice(0)) s.session.destroy();
  }
}

const pools = new WeakMap<Upstream, Http2Pool>();

/** The HTTP/2 pool of a cluster's upstream, made on first use. */
export function h2PoolFor(upstream: Upstream): Http2Pool {
  let p = pools.get(upstream);
  if (!p) pools.set(upstream, (p = new Http2Pool(upstream)));
  return p;
}

/** Closes a cluster's HTTP/2 sessions (shutdown). */
export function closeH2Pool(upstream: Upstream): void {
  pools.get(upstream)?.close();
}

/**
 * Stage 4, forward (long-running GETs): the same exchange as forwardHttp —
 * exact target, allow-listed headers, responses relayed as they are, never
 * a redirect followed — as one stream of a pooled upstream HTTP/2 session.
 */
export function forwardHttp2(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  upstream: Upstream,
  pool: Http2Pool,
  target: string,
  headers: UpstreamHeaders,
  hooks: ForwardHooks,
): Forwarded {
  let ended = false;
  let status = 0;
  const end = (o: Parameters<ForwardHooks['onEnd']>[0]): void => {
    if (ended) return;
    ended = true;
    pooled.active--;
    hooks.onEnd(o);
  };
  const h2headers: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !H1_ONLY.has(k.toLowerCase())) h2headers[k.toLowerCase()] = v;
  h2headers[':method'] = req.method ?? 'GET';
  h2headers[':path'] = upstreamPath(upstream.base, target);
  h2headers[':authority'] = upstream.base.host;
  const pooled = pool.acquire();
  pooled.active++;
  const up = pooled.session.request(h2headers, { endStream: true });
  up.on('response', (h) => {
    status = Number(h[':status'] ?? 502);
    hooks.onResponse(status);
    relayResponse(up, h, status, res, headers, end);
  });
  up.on('error', (err) => {
    if (status !== 0) end({ kind: 'aborted', status, message: err.message });
    else end({ kind: 'upstream-error', message: err.message });
  });
  up.on('close', () => {
    if (status === 0) end({ kind: 'upstream-error', message: `upstream stream closed (code ${up.rstCode})` });
  });
  return followClient(up, res, () => ({ ended, status }), end);
}

/**
 * The client's side of an exchange relayed as an upstream HTTP/2 stream (a pooled session's or a
 * tunnel's): a client that goes away before its response is complete cancels the stream and ends
 * the exchange as aborted; `cut` (access ended) cancels the stream and closes the client's side.
 */
export function followClient(
  up: ClientHttp2Stream,
  res: ServerResponse | Http2ServerResponse,
  now: () => { readonly ended: boolean; readonly status: number },
  end: (o: ForwardOutcome) => void,
): Forwarded {
  res.once('close', () => {
    const { ended, status } = now();
    if (ended) return;
    if (res.writableFinished) end({ kind: 'response', status });
    else {
      up.close(http2.constants.NGHTTP2_CANCEL);
      end({ kind: 'aborted', status, message: 'client closed' });
    }
  });
  return {
    cut: () => {
      up.close(http2.constants.NGHTTP2_CANCEL);
      res.destroy();
    },
  };
}
