import { buildKubeconfig, renderKubeconfig, type FleetCluster } from '../../client/kubeconfig.ts';
import type { RuleSet } from '../../core/index.ts';
import { ProxyError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import { decodeJwt } from 'jose';
import type { Authenticator, Identity } from '../identity.ts';
import type { Req, Res } from '../request-state.ts';
import { refuseFrontDoor, sendJson } from '../front-door.ts';
import type { SessionService } from './sessions.ts';
import type { Session } from './session-store.ts';

/** How recent the login's ID token must be: a session comes from a sign-in, not from a token kept around. */
const FRESH_LOGIN_S = 600;

/** Where the fleet-level endpoints live (on the proxy's own host, not a cluster's). */
export const SESSIONS_PREFIX = '/portcullis/v1/';

/** What `portcullis login` needs to know, served to anyone (`GET /portcullis/v1/login`). */
export interface LoginConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
}

/** What the session endpoints need from the proxy. */
export interface SessionEndpointContext {
  readonly clock: () => number;
  readonly sessions: SessionService;
  /** The identity provider's tokens (never a session credential: a session does not make another). */
  readonly idpAuthenticator: Authenticator;
  /** The refusal for someone under a fleet-wide lock: no new session for them. */
  readonly lockedOut: (identity: Identity) => ProxyError | undefined;
  readonly login: LoginConfig;
  /** The clusters, their host names, and the rule set each currently enforces. */
  readonly clusters: () => readonly { readonly name: string; readonly hostnames: readonly string[]; readonly ruleSet: RuleSet | undefined }[];
  /** The base URL kubeconfigs name (default: the URL the request came to). */
  readonly proxyUrl: string | undefined;
  readonly caPem: string | undefined;
}

/**
 * The front door's endpoints, each one exchange with its audit record:
 * - `GET  /portcullis/v1/login`: the identity provider and client `portcullis login` uses (not audited: public);
 * - `POST /portcullis/v1/sessions`: an ID token from that provider → a session credential;
 * - `DELETE /portcullis/v1/sessions/current`: logout (the session ends on every replica);
 * - `GET  /portcullis/v1/kubeconfig`: the fleet kubeconfig for the session, with a context for each
 *   cluster where its identity has some grant, and the session credential as a plain token.
 */
export async function serveSessionEndpoint(ctx: SessionEndpointContext, req: Req, res: Res, ex: Exchange, path: string): Promise<void> {
  const st = ex.st;
  const now = ctx.clock();
  const json = (status: number, body: unknown): void => sendJson(res, ex, status, body);
  try {
    if (path === `${SESSIONS_PREFIX}login` && req.method === 'GET') {
      json(200, { kind: 'LoginConfig', apiVersion: 'portcullis.dev/v1', ...ctx.login });
      return ex.end(200, { reason: 'login configuration', decision: 'allow' });
    }
    if (path === `${SESSIONS_PREFIX}sessions` && req.method === 'POST') {
      const { credential, session } = await sessionFromIdToken(ctx, req.rawHeaders, now, st);
      json(201, { kind: 'Session', apiVersion: 'portcullis.dev/v1', credential, user: session.user, groups: session.groups, expiresAt: new Date(session.expiresAt).toISOString(), idleTimeoutSeconds: Math.round(session.idleTimeoutMs / 1000) });
      return ex.end(201, { reason: `session created, ends by ${new Date(session.expiresAt).toISOString()}`, decision: 'allow' });
    }
    const r = await ctx.sessions.authenticator({ authenticate: async () => ({ ok: false, code: 'INVALID_CREDENTIALS', message: 'a session credential is required here' }) }).authenticate({ rawHeaders: req.rawHeaders }, now);
    if (!r.ok) throw new ProxyError('UNAUTHENTICATED', `${r.code}: ${r.message}`);
    st.identity = r.identity;
    if (path === `${SESSIONS_PREFIX}sessions/current` && req.method === 'DELETE') {
      const id = ctx.sessions.sessionOf(r.identity);
      if (id !== undefined) await ctx.sessions.revoke(id);
      json(200, { kind: 'Status', apiVersion: 'v1', status: 'Success', message: 'logged out' });
      return ex.end(200, { reason: 'session ended (logout)', decision: 'allow' });
    }
    if (path === `${SESSIONS_PREFIX}kubeconfig` && req.method === 'GET') {
      const base = ctx.proxyUrl ?? `https://${String(req.headers[':authority'] ?? req.headers.host ?? '')}`;
      const k = fleetKubeconfig(ctx, r.identity, bearer(req.rawHeaders), base, now);
      res.writeHead(200, { 'content-type': 'application/yaml', 'cache-control': 'no-store', 'audit-id': st.auditId });
      res.end(k.yaml);
      return ex.end(200, { reason: `kubeconfig for ${k.contexts.join(', ') || 'no cluster'}`, decision: 'allow' });
    }
    throw new ProxyError('NOT_FOUND', `no ${req.method ?? ''} ${path}`);
  } catch (err) {
    refuseFrontDoor(ex, err);
  }
}

/**
 * A new session from an ID token in `rawHeaders` (`Authorization: Bearer`): only the login
 * provider's, issued for the login client, and fresh (not a CI token, not an old one), for
 * someone under no lock. Shared by `POST /portcullis/v1/sessions` and the console's sign-in.
 */
export async function sessionFromIdToken(ctx: SessionEndpointContext, rawHeaders: readonly string[], now: number, st: { identity?: Identity }): Promise<{ readonly credential: string; readonly session: Session }> {
  const r = await ctx.idpAuthenticator.authenticate({ rawHeaders }, now);
  if (!r.ok) throw new ProxyError('UNAUTHENTICATED', `${r.code}: ${r.message}`);
  st.identity = r.identity;
  const token = bearer(rawHeaders);
  let claims: { aud?: unknown; iat?: unknown } = {};
  try {
    claims = decodeJwt(token);
  } catch {
    // verified above: a JWT
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (r.identity.issuer !== ctx.login.issuer || !aud.includes(ctx.login.clientId)) throw new ProxyError('UNAUTHENTICATED', `a session is made only from an ID token of ${ctx.login.issuer} for ${ctx.login.clientId}`);
  if (typeof claims.iat !== 'number' || now / 1000 - claims.iat > FRESH_LOGIN_S) throw new ProxyError('UNAUTHENTICATED', `the ID token was issued more than ${FRESH_LOGIN_S} s ago; sign in again`);
  const out = ctx.lockedOut(r.identity);
  if (out) throw out;
  return ctx.sessions.create(r.identity, now);
}

/** The session's fleet kubeconfig (a context per cluster where the identity has some grant), at `base`. */
export function fleetKubeconfig(ctx: SessionEndpointContext, identity: Identity, credential: string, base: string, now: number, extra: { readonly tlsServerName?: string } = {}): { readonly yaml: string; readonly contexts: readonly string[] } {
  const port = new URL(base).port;
  const list = ctx.clusters();
  const fleet = {
    clusters: list.map((c): FleetCluster => ({ name: c.name, server: '', proxyUrl: c.hostnames[0] !== undefined ? `https://${c.hostnames[0]}${port ? `:${port}` : ''}` : `${base.replace(/\/$/, '')}/clusters/${c.name}` })),
  };
  const ruleSets = new Map(list.flatMap((c) => (c.ruleSet ? [[c.name, c.ruleSet] as const] : [])));
  const config = buildKubeconfig({ identity, fleet, ruleSets, login: { sessionCredential: credential }, now, ...(ctx.caPem !== undefined ? { proxyCaPem: ctx.caPem } : {}) });
  const yaml = renderKubeconfig(config);
  return { yaml: extra.tlsServerName !== undefined ? yaml.replace(/^(\s+)server: (.*)$/gm, `$1server: $2\n$1tls-server-name: ${extra.tlsServerName}`) : yaml, contexts: config.contexts.map((c) => c.name) };
}

function bearer(rawHeaders: readonly string[]): string {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if ((rawHeaders[i] ?? '').toLowerCase() === 'authorization') return (rawHeaders[i + 1] ?? '').replace(/^bearer /i, '');
  return '';
}
