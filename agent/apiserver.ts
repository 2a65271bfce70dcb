import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import https from 'node:https';
import { readFileSync, statSync } from 'node:fs';
import { METHOD_HEADER } from './protocol.ts';

/** How the agent reaches its own kube-apiserver: in the cluster, with its ServiceAccount's token. */
export interface ApiServerOptions {
  readonly url: string;
  readonly ca: Buffer;
  /** The impersonate-only ServiceAccount token; re-read when the file changes (projected tokens rotate). */
  readonly tokenFile: string;
}

/** Streams per HTTP/2 connection to kube-apiserver (Go's default limit is 250). */
const STREAMS_PER_SESSION = 100;
/** Headers of the tunnel stream that are not the request's: pseudo-headers, ours, and any credential (only the agent's own goes upstream). */
const DROP = new Set(['authorization', METHOD_HEADER, 'connection', 'upgrade', 'host', 'te', 'keep-alive', 'proxy-connection', 'transfer-encoding']);
/** Response headers that do not cross into HTTP/2. */
const HOP = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding']);

/**
 * Relays the proxy's tunnel streams to kube-apiserver. Ordinary and
 * long-running requests go over a few pooled HTTP/2 connections (2,000
 * watches are 20 connections, not 2,000); upgrades over a fresh HTTP/1.1
 * connection each, as kube-apiserver wants them. Bodies stream both ways with
 * backpressure; a stream the proxy cancels is cancelled upstream.
 */
export class ApiServer {
  readonly #base: URL;
  readonly #sessions: { session: ClientHttp2Session; active: number }[] = [];
  #token = '';
  #mtime = -1;
  #checkedAt = 0;

  constructor(private readonly o: ApiServerOptions) {
    this.#base = new URL(o.url.endsWith('/') ? o.url : `${o.url}/`);
    this.#authorization();
  }

  /** One stream from the proxy. */
  serve(stream: ServerHttp2Stream, h: IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const path = h[':path'];
    if (typeof path !== 'string' || !path.startsWith('/')) return refuse(stream, 400, 'the tunnel stream has no request path');
    let auth: string;
    try {
      auth = this.#authorization();
    } catch (err) {
      return refuse(stream, 502, `the agent cannot read its ServiceAccount token: ${(err as Error).message}`);
    }
    if (h[':method'] === 'CONNECT') return this.#upgrade(stream, h, path, auth);
    const out: OutgoingHttpHeaders = {};
    for (const k in h) if (k.charCodeAt(0) !== 58 && !DROP.has(k)) out[k] = h[k];
    out[':method'] = h[':method'] ?? 'GET';
    out[':path'] = this.#path(path);
    out[':authority'] = this.#base.host;
    out['authorization'] = auth;
    const pooled = this.#acquire();
    pooled.active++;
    const up = pooled.session.request(out, { endStream: stream.endAfterHeaders });
    up.once('close', () => pooled.active--);
    if (!stream.endAfterHeaders) stream.pipe(up);
    up.once('response', (rh) => {
      if (stream.destroyed) return;
      const headers: OutgoingHttpHeaders = {};
      for (const k in rh) if (!HOP.has(k)) headers[k] = rh[k];
      stream.respond(headers);
      up.pipe(stream);
    });
    up.on('error', (err) => (stream.headersSent ? stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR) : refuse(stream, 502, `kube-apiserver: ${err.message}`)));
    // The proxy cancelled (its client left, or the access ended): cancel upstream too.
    stream.once('close', () => {
      if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
  }

  /** exec, attach, port-forward: the upgrade made here, with this agent's credential, then bytes both ways. */
  #upgrade(stream: ServerHttp2Stream, h: IncomingHttpHeaders, path: string, auth: string): void {
    const protocol = h[':protocol'];
    if (typeof protocol !== 'string') return refuse(stream, 400, 'a CONNECT stream without :protocol');
    const headers: Record<string, string | string[]> = {};
    for (const k in h) {
      const v = h[k];
      if (k.charCodeAt(0) !== 58 && !DROP.has(k) && v !== undefined) headers[k] = v;
    }
    headers['connection'] = 'Upgrade';
    headers['upgrade'] = protocol;
    headers['authorization'] = auth;
    const method = typeof h[METHOD_HEADER] === 'string' ? h[METHOD_HEADER] : 'GET';
    const up = https.request({
      protocol: 'https:',
      hostname: this.#base.hostname,
      port: this.#base.port || 443,
      method,
      path: this.#path(path),
      headers,
      agent: false,
      ca: this.o.ca,
      rejectUnauthorized: true,
      ...(/^[\d.]+$|^\[/.test(this.#base.hostname) ? {} : { servername: this.#base.hostname }),
    });
    up.on('upgrade', (res, socket, head) => {
      if (stream.destroyed) return socket.destroy();
      const rh: OutgoingHttpHeaders = { ':status': 200 };
      for (const [k, v] of Object.entries(res.headers)) if (!HOP.has(k) && v !== undefined) rh[k] = v;
      stream.respond(rh);
      if (head.length > 0) stream.write(head);
      socket.on('error', () => stream.close(http2.constants.NGHTTP2_CANCEL));
      socket.pipe(stream);
      stream.pipe(socket);
      stream.once('close', () => socket.destroy());
    });
    up.on('response', (res) => {
      if (stream.destroyed) return res.destroy();
      const rh: OutgoingHttpHeaders = { ':status': res.statusCode ?? 502 };
      for (const [k, v] of Object.entries(res.headers)) if (!HOP.has(k) && v !== undefined) rh[k] = v;
      stream.respond(rh);
      res.pipe(stream);
    });
    up.on('error', (err) => (stream.headersSent ? stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR) : refuse(stream, 502, `kube-apiserver: ${err.message}`)));
    stream.once('close', () => up.destroy());
    up.end();
  }

  #path(target: string): string {
    return `${this.#base.pathname.replace(/\/$/, '')}${target}`;
  }

  #acquire(): { session: ClientHttp2Session; active: number } {
    const open = this.#sessions.find((s) => !s.session.closed && !s.session.destroyed && s.active < STREAMS_PER_SESSION);
    if (open) return open;
    const session = http2.connect(this.#base.origin, {
      ca: this.o.ca,
      rejectUnauthorized: true,
      ...(/^[\d.]+$|^\[/.test(this.#base.hostname) ? {} : { servername: this.#base.hostname }),
      maxSessionMemory: 64,
    });
    const pooled = { session, active: 0 };
    const drop = (): void => {
      const i = this.#sessions.indexOf(pooled);
      if (i >= 0) this.#sessions.splice(i, 1);
    };
    session.on('error', drop);
    session.on('close', drop);
    session.on('goaway', drop);
    session.setTimeout(0);
    session.unref();
    this.#sessions.push(pooled);
    return pooled;
  }

  /** `Bearer …` from the token file, re-read at most every second when it changed. */
  #authorization(): string {
    const now = Date.now();
    if (this.#token === '' || now - this.#checkedAt >= 1000) {
      this.#checkedAt = now;
      const m = statSync(this.o.tokenFile).mtimeMs;
      if (m !== this.#mtime) {
        this.#token = readFileSync(this.o.tokenFile, 'utf8').trim();
        this.#mtime = m;
      }
    }
    return `Bearer ${this.#token}`;
  }

  close(): void {
    for (const s of this.#sessions.splice(0)) s.session.destroy();
  }
}

/** Answers a stream with a Kubernetes Status, as kube-apiserver would. */
function refuse(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': code, 'content-type': 'application/json' });
  stream.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: code === 400 ? 'BadRequest' : 'InternalError', code }));
}
