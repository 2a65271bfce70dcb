import http from 'node:http';
import http2, { type Http2Session } from 'node:http2';
import { createPublicKey, type KeyObject } from 'node:crypto';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ApiServer, type ApiServerOptions } from './apiserver.ts';
import { connectionBinding, REFUSAL_HEADER, REGISTRATION_HEADER, signAssertion, TUNNEL_PATH, TUNNEL_UPGRADE } from './protocol.ts';

/** What `portcullis agent` runs with. */
export interface AgentOptions {
  /** The cluster this agent serves (its registration credential names it too). */
  readonly cluster: string;
  /** Every proxy replica's URL: the agent keeps a tunnel to each. */
  readonly proxies: readonly string[];
  /** The CA the proxies' serving certificate must chain to. @default the system's */
  readonly proxyCa?: Buffer;
  /** The cluster's agent key (Ed25519, shared by the agent's replicas). */
  readonly key: KeyObject;
  /** The registration credential of the bootstrap manifest, used if the proxies do not know this agent yet. */
  readonly registration?: string;
  readonly apiserver: ApiServerOptions;
  readonly log: Logger;
  /** Streams the proxy may open at once on one tunnel. @default 4096 */
  readonly maxStreams?: number;
  /** Reconnection backoff: full jitter between 0 and min(maxMs, minMs·2^attempt). @default 250 ms to 10 s */
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
}

/** One proxy replica as the agent sees it. */
export interface TunnelStatus {
  readonly proxy: string;
  readonly state: 'connecting' | 'open' | 'waiting';
  readonly lastError?: string;
}

/**
 * The in-cluster agent: dials out to every proxy replica (no inbound port),
 * proves which cluster it serves, and relays the proxy's requests to its
 * kube-apiserver with the credential that never leaves the cluster. A lost
 * tunnel is dialled again after a jittered backoff.
 */
export class TunnelAgent {
  readonly #api: ApiServer;
  readonly #publicKey: KeyObject;
  readonly #server: http2.Http2Server;
  readonly #status = new Map<string, TunnelStatus>();
  readonly #sockets = new Set<TLSSocket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(private readonly o: AgentOptions) {
    this.#api = new ApiServer(o.apiserver);
    this.#publicKey = createPublicKey(o.key);
    this.#server = http2.createServer({
      // RFC 8441: upgrades come as extended CONNECT. A bound on what the proxy may open and send at once.
      settings: { enableConnectProtocol: true, maxConcurrentStreams: o.maxStreams ?? 4096, initialWindowSize: 1024 * 1024, maxHeaderListSize: 256 * 1024 },
      maxSessionMemory: 64,
    });
    this.#server.on('stream', (stream, headers) => this.#api.serve(stream, headers));
    this.#server.on('session', (s: Http2Session) => s.setTimeout(0));
  }

  /** Dials every proxy. */
  start(): void {
    for (const p of this.o.proxies) this.#dial(p, 0, false);
  }

  /** Each proxy's tunnel state. */
  status(): TunnelStatus[] {
    return [...this.#status.values()];
  }

  /** Closes every tunnel and stops dialling. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#sockets) s.destroy();
    this.#api.close();
  }

  #dial(proxy: string, attempt: number, register: boolean): void {
    if (this.#stopped) return;
    this.#status.set(proxy, { proxy, state: 'connecting' });
    const u = new URL(proxy);
    const socket = tls.connect({
      host: u.hostname,
      port: Number(u.port || 443),
      ...(/^[\d.]+$|^\[/.test(u.hostname) ? {} : { servername: u.hostname }),
      ...(this.o.proxyCa ? { ca: this.o.proxyCa } : {}),
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: true,
    });
    this.#sockets.add(socket);
    let opened = false;
    let retried = false;
    const retry = (why: string, registerNext = false): void => {
      if (retried) return;
      retried = true;
      this.#sockets.delete(socket);
      socket.destroy();
      if (this.#stopped) return;
      // Straight back after an hour-long tunnel; growing (with full jitter) while the proxy refuses or is away.
      const next = opened ? 0 : attempt + 1;
      const b = this.o.backoff ?? { minMs: 250, maxMs: 10_000 };
      const delay = registerNext ? 0 : Math.random() * Math.min(b.maxMs, b.minMs * 2 ** Math.min(next, 16));
      this.#status.set(proxy, { proxy, state: 'waiting', lastError: why });
      this.o.log.warn({ proxy, cluster: this.o.cluster, err: why, retryInMs: Math.round(delay) }, opened ? 'tunnel closed' : 'tunnel not opened');
      const t = setTimeout(() => {
        this.#timers.delete(t);
        this.#dial(proxy, next, registerNext);
      }, delay);
      this.#timers.add(t);
    };
    socket.on('error', (err) => retry(err.message));
    socket.on('close', () => retry('connection closed'));
    socket.once('secureConnect', () => {
      void (async () => {
        const assertion = await signAssertion(this.o.key, this.#publicKey, this.o.cluster, connectionBinding(socket));
        const headers: Record<string, string> = { connection: 'Upgrade', upgrade: TUNNEL_UPGRADE, authorization: `Bearer ${assertion}`, host: u.host };
        if (register && this.o.registration) headers[REGISTRATION_HEADER] = this.o.registration;
        const req = http.request({ createConnection: () => socket, method: 'GET', path: TUNNEL_PATH, headers });
        req.on('error', (err) => retry(err.message));
        req.on('response', (res) => {
          const reason = String(res.headers[REFUSAL_HEADER] ?? '');
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c.slice(0, 2048)));
          res.on('end', () => {
            // Not known yet: register with the bootstrap credential, once, at once.
            if (reason === 'not-registered' && this.o.registration && !register) return retry('not registered yet: registering', true);
            retry(`refused ${res.statusCode}: ${reason} ${body.trim()}`);
          });
        });
        req.on('upgrade', (_res, s: TLSSocket, head: Buffer) => {
          opened = true;
          attempt = 0;
          this.#status.set(proxy, { proxy, state: 'open' });
          this.o.log.info({ proxy, cluster: this.o.cluster }, 'tunnel open');
          // What followed the 101 already is the proxy's HTTP/2 preface.
          if (head.length > 0) s.unshift(head);
          // From here the connection speaks HTTP/2, the agent as its server. Node's HTTP/2 server takes a
          // TLS connection only if its ALPN said h2; this one said http/1.1 for the upgrade that came before.
          (s as { alpnProtocol: string | false | null }).alpnProtocol = 'h2';
          this.#server.emit('connection', s);
        });
        req.end();
      })().catch((err: unknown) => retry((err as Error).message));
    });
  }
}
