import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { ProxyError } from './errors.ts';
import { forwardHttp, forwardStream, type ForwardHooks, type Forwarded } from './forward.ts';
import { closeH2Pool, forwardHttp2, h2PoolFor } from './forward-h2.ts';
import type { UpstreamHeaders } from './headers.ts';
import { forwardTunnel, forwardTunnelUpgrade } from './tunnel/forward-tunnel.ts';
import type { Tunnels } from './tunnel/tunnels.ts';
import { forwardUpgrade, type UpgradeHooks } from './upgrade.ts';
import type { Upstream } from './upstream.ts';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/**
 * How stage 4 reaches one cluster's kube-apiserver: directly, with the proxy's
 * own credential for it, or through the tunnels its agents opened, where the
 * credential stays in the cluster. The rest of the request's life does not
 * know which.
 */
export interface ClusterLink {
  /** An ordinary request; `body` is one the proxy already read and checked. */
  forward(req: Req, res: Res, target: string, headers: UpstreamHeaders, hooks: ForwardHooks, body?: Buffer): Forwarded;
  /** A long-running request (watch, follow logs). */
  forwardLongRunning(req: Req, res: Res, target: string, headers: UpstreamHeaders, hooks: ForwardHooks): Forwarded;
  /** An upgrade (exec, attach, port-forward); `protocol` is the client's Upgrade token. */
  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: string, headers: UpstreamHeaders, protocol: string, hooks: UpgradeHooks): { readonly cut: () => void };
  /** The `Authorization` the proxy sends upstream itself; none through a tunnel. */
  authorization(): string | undefined;
  /** The direct upstream (for the bundle ConfigMap and shared ConfigMaps); none through a tunnel. */
  readonly upstream: Upstream | undefined;
  close(): void;
}

/** A cluster the proxy reaches itself. */
export function directLink(upstream: Upstream): ClusterLink {
  return {
    upstream,
    forward: (req, res, target, headers, hooks, body) => forwardHttp(req, res, upstream, target, headers, hooks, body),
    // Long-running GETs (watches, follow logs) multiplex over pooled upstream HTTP/2 sessions;
    // other long-running requests take the uncapped HTTP/1.1 pool.
    forwardLongRunning: (req, res, target, headers, hooks) =>
      req.method === 'GET' ? forwardHttp2(req, res, upstream, h2PoolFor(upstream), target, headers, hooks) : forwardStream(req, res, upstream, target, headers, hooks),
    forwardUpgrade: (req, socket, head, target, headers, _protocol, hooks) => forwardUpgrade(req, socket, head, upstream, target, headers, hooks),
    authorization: () => upstream.authorization(),
    close: () => {
      upstream.close();
      closeH2Pool(upstream);
    },
  };
}

/** A cluster reached through its agents' tunnels to this replica; with none up, requests fail at once with 503 (SECURITY rule 33). */
export function tunnelLink(cluster: string, tunnels: Tunnels): ClusterLink {
  const pick = () => {
    const t = tunnels.pick(cluster);
    if (!t) throw new ProxyError('AGENT_UNAVAILABLE', tunnels.connected(cluster) ? `every tunnel of ${cluster} is at its stream limit` : `no agent of ${cluster} is connected to this replica`);
    return t;
  };
  return {
    upstream: undefined,
    forward: (req, res, target, headers, hooks, body) => forwardTunnel(req, res, pick(), target, headers, hooks, { longRunning: false, body }),
    forwardLongRunning: (req, res, target, headers, hooks) => forwardTunnel(req, res, pick(), target, headers, hooks, { longRunning: true }),
    forwardUpgrade: (req, socket, head, target, headers, protocol, hooks) => forwardTunnelUpgrade(req, socket, head, pick(), target, headers, protocol, hooks),
    authorization: () => undefined,
    close: () => undefined,
  };
}
