import { readFileSync, statSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import type { Pool } from 'undici';
import type { ClusterConfig } from './config.ts';

/** How the proxy reaches one cluster's API server with its own credential. */
export interface Upstream {
  readonly base: URL;
  /**
   * Keep-alive pool for ordinary requests (undici: with it Portcullis spent
   * 5–15% less CPU per proxied GET than with node:https, bench/proxy.ts).
   */
  readonly pool: Pool;
  /**
   * Pool for long-running requests (watches, follow logs): not capped, since
   * each holds its connection for as long as it lives; the per-identity limit
   * on long-running requests bounds it instead.
   */
  readonly streamAgent: https.Agent;
  /** TLS options for fresh connections (upgrades use one each). */
  readonly tls: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer; readonly servername?: string };
  /** `Bearer …` from the token file, re-read when it changes; undefined with client-certificate auth. */
  authorization(): string | undefined;
  close(): void;
}

/** Builds the upstream of a cluster from its configuration: verified TLS, never the bundle's data. */
export function createUpstream(c: NonNullable<ClusterConfig['upstream']>): Upstream {
  const base = new URL(c.url.endsWith('/') ? c.url : `${c.url}/`);
  const ca = readFileSync(c.caFile);
  const cert = c.clientCertFile !== undefined ? readFileSync(c.clientCertFile) : undefined;
  const key = c.clientKeyFile !== undefined ? readFileSync(c.clientKeyFile) : undefined;
  const servername = /^[\d.]+$|^\[/.test(base.hostname) ? undefined : base.hostname;
  const tls = { ca, ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(servername ? { servername } : {}) };
  // Ordinary requests: a capped keep-alive pool. Long-running ones never take from it (watches
  // multiplex over HTTP/2, forward-h2.ts; other streams use streamAgent), so none queue behind them.
  // No pipelining (a slow request would hold up those behind it); idle connections kept 30 s, under
  // kube-apiserver's 90 s idle timeout; a connection attempt gives up after 10 s; no timeouts on
  // headers or body, as with node:https: kube-apiserver bounds ordinary requests itself. undici
  // turns Nagle off.
  const pool = new (poolClass())(base.origin, {
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { rejectUnauthorized: true, timeout: 10_000, ...tls },
  });
  // Other long-running requests: one connection each, kept when they end. Nagle off.
  const streamAgent = new https.Agent({ keepAlive: true, maxFreeSockets: 16, noDelay: true, rejectUnauthorized: true, ...tls });
  let token: string | undefined;
  let mtime = -1;
  let checkedAt = 0;
  const readToken = (): string | undefined => {
    if (c.tokenFile === undefined) return undefined;
    const now = Date.now();
    if (token === undefined || now - checkedAt >= 1000) {
      checkedAt = now;
      const m = statSync(c.tokenFile).mtimeMs;
      if (m !== mtime) {
        token = readFileSync(c.tokenFile, 'utf8').trim();
        mtime = m;
      }
    }
    return token;
  };
  readToken();
  return {
    base,
    pool,
    streamAgent,
    tls,
    authorization: () => {
      const t = readToken();
      return t === undefined ? undefined : `Bearer ${t}`;
    },
    close: () => {
      void pool.destroy();
      streamAgent.destroy();
    },
  };
}

let PoolClass: typeof Pool | undefined;

/**
 * undici's Pool alone (its `dispatch` is all forward.ts uses): undici's index loads fetch,
 * WebSocket, caches and mocks too, ~3 MiB of heap every major collection marks and ~9 MiB of
 * RSS (issue 18). undici has no exports map, so the module path is public.
 */
function poolClass(): typeof Pool {
  PoolClass ??= createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof Pool;
  return PoolClass;
}

/** The upstream path for a canonical request target: the base path plus the target (which starts with `/`). */
export function upstreamPath(base: URL, target: string): string {
  return `${base.pathname.replace(/\/$/, '')}${target}`;
}

/** Request options for the exact canonical target on a cluster's upstream; callers add the agent or TLS. */
export function upstreamRequest(upstream: Upstream, method: string | undefined, target: string, headers: https.RequestOptions['headers']): https.RequestOptions {
  return {
    protocol: 'https:',
    hostname: upstream.base.hostname,
    port: upstream.base.port || 443,
    method,
    path: upstreamPath(upstream.base, target),
    headers,
  };
}
