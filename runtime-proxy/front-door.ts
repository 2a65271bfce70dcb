import { createRequire } from 'node:module';
import type { createClient as CreateClient } from '@redis/client';
import { ProxyError } from './errors.ts';
import type { Exchange } from './exchange.ts';
import type { Authenticator, Identity } from './identity.ts';
import type { Req, Res } from './request-state.ts';

/**
 * What the front door's endpoints (sessions, locks, access requests) share: how they answer,
 * who is asking, and what a store failure becomes. Each endpoint is one audited exchange.
 */

/** The shared store is unreachable, or refused a write: new logins, locks, approvals and revocations fail with this. */
export class SessionStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SessionStoreError';
  }
}

/** A JSON answer that no cache keeps, carrying the exchange's Audit-ID. */
export function sendJson(res: Res, ex: Exchange, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'audit-id': ex.auditId });
  res.end(JSON.stringify(body));
}

/** The caller, authenticated (a session credential or the identity provider's token) and under no fleet-wide lock; throws the refusal. */
export async function frontDoorCaller(authn: Authenticator, lockedOut: (identity: Identity) => ProxyError | undefined, req: Req, ex: Exchange, now: number): Promise<Identity> {
  const a = await authn.authenticate({ rawHeaders: req.rawHeaders }, now);
  if (!a.ok) throw new ProxyError('UNAUTHENTICATED', `${a.code}: ${a.message}`);
  ex.st.identity = a.identity;
  const out = lockedOut(a.identity);
  if (out) throw out;
  return a.identity;
}

/** Refuses the exchange: a store that cannot answer is a 503 saying so, anything else as it is. */
export function refuseFrontDoor(ex: Exchange, err: unknown): void {
  if (err instanceof SessionStoreError) ex.refuse(new ProxyError('SESSION_STORE_UNAVAILABLE', err.message));
  else ex.refuse(err);
}

/**
 * How long the shared store may take to answer one action. A store that accepts the connection
 * but stops answering (a failover in progress, a stalled host) fails the action with 503
 * SESSION_STORE_UNAVAILABLE instead of holding the request open: node-redis's own command timeout
 * covers only a command's wait to be sent, never the wait for its reply.
 */
export const STORE_ANSWER_MS = 2000;

/** `p`, or a SessionStoreError once STORE_ANSWER_MS has passed with no answer from the `store` store. */
export function answered<T>(p: Promise<T>, store: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SessionStoreError(`the ${store} store did not answer within ${STORE_ANSWER_MS / 1000} s (what was sent may still take effect once it answers)`)), STORE_ANSWER_MS);
  });
  // race() subscribes to `p`, so its own late failure is handled, not an unhandled rejection.
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * One action on a shared store, as every store runs it: refused at once while the client is not
 * connected (`unreachable` says what that means for the caller), failed with a SessionStoreError
 * when the store does not answer in time or refuses.
 */
export async function storeAction<T>(client: { readonly isReady: boolean }, store: string, unreachable: string, fn: () => Promise<T>): Promise<T> {
  if (!client.isReady) throw new SessionStoreError(unreachable);
  try {
    return await answered(fn(), store);
  } catch (err) {
    throw err instanceof SessionStoreError ? err : new SessionStoreError(`the ${store} store refused: ${(err as Error).message}`);
  }
}

/** A client of the shared store: reconnects with backoff (at most 2 s apart); fails commands at once while disconnected. */
export function storeClient(url: string, onError: (err: Error) => void) {
  const { createClient } = redis();
  const c = createClient({ url, socket: { reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000), connectTimeout: 2000 }, disableOfflineQueue: true });
  c.on('error', onError);
  return c;
}

let redisModule: { readonly createClient: typeof CreateClient } | undefined;

/**
 * The Redis client library, loaded the first time a store is configured: a proxy without
 * sessions never needs it, and it would hold ~5 MiB of every replica's memory (issue 18).
 */
function redis(): { readonly createClient: typeof CreateClient } {
  redisModule ??= createRequire(import.meta.url)('@redis/client') as { readonly createClient: typeof CreateClient };
  return redisModule;
}
