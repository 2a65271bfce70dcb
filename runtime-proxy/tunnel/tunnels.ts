import http2, { type ClientHttp2Session } from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { connectionBinding, REFUSAL_HEADER, REGISTRATION_HEADER, TunnelRefused, verifyAssertion, verifyRegistration} from '../../agent/protocol.ts';
import type { AgentPins } from './agent-pins.ts';

/** The limits of one tunnel (config `agents.limits`). */
export interface TunnelLimits {
  /** Streams the proxy opens at once on one tunnel; beyond it, another tunnel or a 503. */
  readonly maxStreams: number;
  /** Bytes an agent may send on one stream before the proxy reads them (HTTP/2 flow control). */
  readonly streamWindowBytes: number;
  /** Bytes an agent may send on the whole tunnel before the proxy reads them. */
  readonly connectionWindowBytes: number;
}

/** One agent's connection to this replica: an HTTP/2 session in which the proxy is the client. */
export class Tunnel {
  /** Streams open on it now. */
  active = 0;
  constructor(
    readonly cluster: string,
    readonly thumbprint: string,
    readonly remote: string,
    readonly session: ClientHttp2Session,
    /** A long-running request on it ended because the tunnel did: its record says `tunnel-lost`. */
    readonly lost: (auditId: string) => void,
  ) {}

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }
}

/** What the tunnels need of the proxy. */
export interface TunnelsOptions {
  readonly pins: AgentPins;
  /** Registration keys by key id (config `agents.registrationKeyFiles`). */
  readonly registrationKeys: ReadonlyMap<string, KeyObject>;
  readonly limits: TunnelLimits;
  readonly log: Logger;
  /** Whether `cluster` may be served through an agent here (configured with `agent: true`, or by the defaults for registered clusters). */
  readonly accepts: (cluster: string) => boolean;
  /** A cluster was registered now (its first agent): the proxy starts serving it. */
  readonly registered: (cluster: string) => void;
  /** A long-running request went over a tunnel that is gone. */
  readonly lost: (auditId: string) => void;
  readonly clock: () => number;
}

/**
 * The tunnels of this replica, by cluster. Agents connect to every replica
 * (docs/tunnel.md, HA): a replica serves a cluster through the tunnels it
 * holds itself, with no hop through another replica and no routing state to
 * share. A request takes the tunnel with the fewest open streams.
 */
export class Tunnels {
  readonly #byCluster = new Map<string, Tunnel[]>();
  #closing = false;

  constructor(private readonly o: TunnelsOptions) {}

  /** The tunnel with the most room for `cluster`, if any is up and under its stream limit. */
  pick(cluster: string): Tunnel | undefined {
    let best: Tunnel | undefined;
    for (const t of this.#byCluster.get(cluster) ?? []) {
      if (t.usable && t.active < this.o.limits.maxStreams && (!best || t.active < best.active)) best = t;
    }
    return best;
  }

  /** Whether any agent of `cluster` is connected here. */
  connected(cluster: string): boolean {
    return (this.#byCluster.get(cluster) ?? []).some((t) => t.usable);
  }

  /** Clusters with a tunnel here, and how many. */
  summary(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [c, ts] of this.#byCluster) out[c] = ts.filter((t) => t.usable).length;
    return out;
  }

  /**
   * An agent asks to open a tunnel (the upgrade at TUNNEL_PATH). Authenticates it, then answers
   * 101 and opens the HTTP/2 session; or answers the refusal, and logs it with its reason
   * (SECURITY rule 32).
   */
  async accept(req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void> {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    let cluster: string | undefined;
    try {
      if (this.#closing) throw new TunnelRefused('unavailable', 'the proxy is shutting down');
      if (head.length > 0) throw new TunnelRefused('bad-assertion', 'bytes before the tunnel was opened');
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ')) throw new TunnelRefused('bad-assertion', 'no agent assertion');
      const a = await verifyAssertion(auth.slice(7), connectionBinding(socket), this.o.clock());
      cluster = a.cluster;
      if (!this.o.accepts(a.cluster)) throw new TunnelRefused('unknown-cluster', `cluster ${a.cluster} is not served through an agent here`);
      const pin = await this.o.pins.get(a.cluster);
      if (pin !== undefined && pin !== a.thumbprint) throw new TunnelRefused('other-agent', `cluster ${a.cluster} is registered to another agent key`);
      if (pin === undefined) await this.#register(req, a.cluster, a.thumbprint);
      if (socket.destroyed) return;
      this.#open(a.cluster, a.thumbprint, remote, socket);
    } catch (err) {
      const r = err instanceof TunnelRefused ? err : new TunnelRefused('unavailable', `the agent store failed: ${(err as Error).message}`);
      this.o.log.warn({ alert: r.reason !== 'unavailable', remote, cluster, reason: r.reason, err: r.message }, 'agent tunnel refused');
      const status = r.reason === 'unavailable' ? 503 : r.reason === 'other-agent' || r.reason === 'registration-used' || r.reason === 'unknown-cluster' ? 403 : 401;
      const body = `${r.message}\n`;
      socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-type: text/plain\r\n${REFUSAL_HEADER}: ${r.reason}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    }
  }

  /** The first agent of a cluster: its registration credential pins its key, once. */
  async #register(req: IncomingMessage, cluster: string, thumbprint: string): Promise<void> {
    const token = req.headers[REGISTRATION_HEADER];
    if (typeof token !== 'string') throw new TunnelRefused('not-registered', `cluster ${cluster} has no registered agent; bring the registration credential`);
    const reg = await verifyRegistration(token, this.o.registrationKeys, this.o.clock());
    if (reg.cluster !== cluster) throw new TunnelRefused('bad-registration', `the credential registers cluster ${reg.cluster}, not ${cluster}`);
    if (reg.thumbprint !== thumbprint) throw new TunnelRefused('bad-registration', 'the credential registers another agent key');
    const r = await this.o.pins.register(cluster, thumbprint, reg.id, reg.expiresAt);
    if (r === 'used') throw new TunnelRefused('registration-used', `registration credential ${reg.id} was used before`);
    if (r === 'other-key') throw new TunnelRefused('other-agent', `cluster ${cluster} is registered to another agent key`);
    this.o.log.info({ cluster, thumbprint, credential: reg.id }, 'agent registered');
    this.o.registered(cluster);
  }

  #open(cluster: string, thumbprint: string, remote: string, socket: TLSSocket): void {
    socket.setNoDelay(true);
    // The 101 must be written before HTTP/2 takes the socket over (its writes would otherwise interleave).
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: portcullis-tunnel/1\r\n\r\n`, () => {
      const lim = this.o.limits;
      const session = http2.connect(`https://${cluster}.agent.invalid`, {
        createConnection: () => socket,
        // No pushes, and a bound on what the agent may send before the proxy reads it.
        settings: { enablePush: false, initialWindowSize: lim.streamWindowBytes, maxHeaderListSize: 256 * 1024 },
        maxSessionMemory: 64,
        peerMaxConcurrentStreams: lim.maxStreams,
      });
      const t = new Tunnel(cluster, thumbprint, remote, session, this.o.lost);
      session.once('connect', () => {
        session.setLocalWindowSize(lim.connectionWindowBytes);
        const list = this.#byCluster.get(cluster) ?? [];
        list.push(t);
        this.#byCluster.set(cluster, list);
        this.o.log.info({ cluster, remote, tunnels: list.length }, 'agent tunnel open');
      });
      session.setTimeout(0);
      // A bad frame, an oversized one, a push: nghttp2 ends the session with a GOAWAY and says why.
      session.on('error', (err) => this.o.log.warn({ cluster, remote, err: err.message, alert: true }, 'agent tunnel failed'));
      session.on('frameError', (type, code) => this.o.log.warn({ cluster, remote, frameType: type, code }, 'agent tunnel frame error'));
      session.once('close', () => this.#lost(t));
      session.once('goaway', () => session.close());
    });
  }

  #lost(t: Tunnel): void {
    const list = (this.#byCluster.get(t.cluster) ?? []).filter((x) => x !== t);
    if (list.length > 0) this.#byCluster.set(t.cluster, list);
    else this.#byCluster.delete(t.cluster);
    this.o.log.warn({ cluster: t.cluster, remote: t.remote, tunnels: list.length }, 'agent tunnel closed');
  }

  /** Shutdown: no new tunnels; open ones get GOAWAY (their streams were drained before). */
  close(): void {
    this.#closing = true;
    for (const ts of this.#byCluster.values()) for (const t of ts) t.session.close();
  }

  /** Ends every tunnel now (the grace is over). */
  destroyAll(): void {
    for (const ts of this.#byCluster.values()) for (const t of ts) t.session.destroy();
  }

}
