import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { decide } from '../core/decide.ts';
import { AUDIT_PATH } from '../core/names.ts';
import type { RuleIndex } from '../core/rule-index.ts';
import type { AuditEvent } from '../runtime-proxy/audit/event.ts';
import { ProxyError } from '../runtime-proxy/errors.ts';
import type { Exchange } from '../runtime-proxy/exchange.ts';
import type { Identity } from '../runtime-proxy/identity.ts';
import { readBody, type Req, type Res } from '../runtime-proxy/request-state.ts';
import { fleetKubeconfig, sessionFromIdToken, type SessionEndpointContext } from '../runtime-proxy/sessions/endpoints.ts';
import { verifyCredential } from '../runtime-proxy/sessions/session-credential.ts';
import type { SessionService } from '../runtime-proxy/sessions/sessions.ts';
import { BREAK_GLASS_PATH } from '../runtime-proxy/break-glass-endpoint.ts';
import { callProxy, relayTarget, type ProxySelf } from './proxy-call.ts';
import { answerQuestion } from './questions.ts';
import { ActivityRelay } from './activity-relay.ts';
import { serveActivityStream, type Live } from './activity-stream.ts';
import { ActivityFeed, activityOf, withMissingGrants, type ActivityFilter, type ActivityItem } from './activity.ts';
import { loadAssets, pageTemplate, type Asset } from './assets.ts';
import type { ConsoleConfig } from './config.ts';
import { myAccess } from './my-access.ts';
import { ConsoleSignIn, SignInError } from './sign-in.ts';
import { RedisPendingSignIns } from './pending-sign-ins.ts';
import { loadPty, TerminalSession, type TerminalEnd } from './terminal/terminal-session.ts';
import {
  clearLoginCookie,
  clearSessionCookie,
  CONSOLE_PREFIX,
  cookieValue,
  CSRF_HEADER,
  csrfMatches,
  csrfToken,
  LOGIN_COOKIE,
  loginCookie,
  sameOrigin,
  securityHeaders,
  SESSION_COOKIE,
  sessionCookie,
  styleNonce,
} from './web-security.ts';

/** The proxy's side of the console: what the console may use, and nothing more. */
export interface ConsoleHost {
  readonly clock: () => number;
  readonly log: Logger;
  readonly config: ConsoleConfig;
  /** The replicas' shared session key (CSRF tokens are derived from it). */
  readonly sessionKey: Buffer;
  readonly sessions: SessionService;
  readonly sessionContext: SessionEndpointContext;
  readonly lockedOut: (identity: Identity) => ProxyError | undefined;
  /** Each cluster and the index of the signed bundle it enforces now (undefined: none valid). */
  readonly clusters: () => readonly { readonly name: string; readonly index: RuleIndex | undefined }[];
  /** A person's active activations (break-glass, approved requests) on a cluster: grant → end. */
  readonly activations: (cluster: string, user: string) => ReadonlyMap<string, number>;
  readonly audit: { subscribe(fn: (e: AuditEvent) => void): () => void };
  /** The CA of the identity provider's TLS certificate, when not a public one. */
  readonly idpCaPem: string | undefined;
  /** The replicas' shared store (`sessions.store.url`): the live feed goes through its pub/sub. */
  readonly storeUrl: string;
  /** The proxy's own listener as the console reaches it on loopback (its endpoints, the terminal's kubectl). */
  readonly self: () => ProxySelf;
}

/** A signed-in caller of the console. */
interface Caller {
  readonly identity: Identity;
  readonly credential: string;
  readonly sessionId: string;
}


/** Activity streams and terminals one session may hold open at once (each holds memory and a connection). */
const MAX_LIVE_PER_SESSION = 8;

/**
 * The web console, served by the proxy under /console on its own TLS listener (same origin as
 * the proxy: the page's calls and the browser shell's kubectl all go through the one front door,
 * authorized and audited like every other request). Every request is one audited exchange.
 */
export class PortcullisConsole {
  readonly #assets: ReadonlyMap<string, Asset>;
  readonly #page: (nonce: string) => string;
  readonly #signIn: ConsoleSignIn;
  readonly #feed = new ActivityFeed();
  readonly #unsubscribeAudit: () => void;
  readonly #live = new Map<string, Set<Live>>();
  readonly #terminals = new Set<{ readonly user: string; readonly session: TerminalSession }>();
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  readonly #relay: ActivityRelay;
  /** node-pty's spawn once loaded; or why the terminal is unavailable. */
  #pty: { readonly spawn: Awaited<ReturnType<typeof loadPty>> } | { readonly error: string } = { error: 'not started' };

  constructor(private readonly host: ConsoleHost) {
    this.#assets = loadAssets();
    this.#page = pageTemplate();
    const login = host.sessionContext.login;
    this.#signIn = new ConsoleSignIn(
      { issuer: login.issuer, clientId: login.clientId, scopes: login.scopes, ...(host.idpCaPem !== undefined ? { caPem: host.idpCaPem } : {}) },
      host.clock,
      new RedisPendingSignIns(host.storeUrl, (err) => host.log.warn({ err: err.message }, 'console sign-in store: connection error')),
    );
    this.#relay = new ActivityRelay(host.storeUrl, (item) => this.#feed.publish(item), (err) => host.log.warn({ err: err.message }, 'console activity relay: store connection error'));
    this.#unsubscribeAudit = host.audit.subscribe((e) => {
      const item = activityOf(e);
      if (!item) return;
      const full = withMissingGrants(item, (cluster, grant) => this.#sourceOf(cluster, grant));
      this.#feed.publish(full);
      this.#relay.publish(full);
    });
    // Logout, a lock on the person, idle or lifetime: whatever ends a session ends its streams and terminals.
    host.sessions.onEnded((id) => this.#endSession(id, 'session-ended'));
  }

  /** The terminals open now (who, which kubectl runs, its directory): for status and tests. */
  terminals(): { readonly user: string; readonly dir: string; readonly running: number | undefined; readonly pids: readonly number[] }[] {
    return [...this.#terminals].map((t) => ({ user: t.user, dir: t.session.dir, running: t.session.running, pids: t.session.pids }));
  }

  /** Connects the live feed to the other replicas (an unreachable store is logged; the feed then shows this replica's records). */
  async start(): Promise<void> {
    if (this.host.config.terminal) {
      try {
        this.#pty = { spawn: await loadPty() };
      } catch (err) {
        this.#pty = { error: `node-pty cannot be loaded (${(err as Error).message}): npm install node-pty` };
        this.host.log.error({ err: this.#pty.error, alert: true }, 'console terminal unavailable');
      }
    }
    await this.#relay.start().catch((err: unknown) => this.host.log.warn({ err: (err as Error).message }, 'console activity relay not connected: the live feed shows this replica only'));
  }

  /** Ends every terminal and stream (the proxy is stopping). */
  async stop(): Promise<void> {
    for (const id of [...this.#live.keys()]) this.#endSession(id, 'shutdown');
    this.#unsubscribeAudit();
    await this.#relay.stop();
    await this.#signIn.close();
    this.#wss.close();
  }

  /** The policy line of a grant in the bundle a cluster enforces now. */
  #sourceOf(cluster: string, grant: string): string | undefined {
    const g = this.host.clusters().find((c) => c.name === cluster)?.index?.ruleSet.grants.find((x) => x.id === grant);
    return g ? `${g.source.file}:${g.source.line}` : undefined;
  }

  #endSession(id: string, why: TerminalEnd): void {
    const set = this.#live.get(id);
    this.#live.delete(id);
    for (const l of set ?? []) l.end(why);
  }

  /**
   * Ties a stream or terminal to its session: it ends when the session ends here (logout, lock,
   * revocation heard from another replica) and, at the latest, when the session's lifetime does.
   */
  #track(c: Caller, l: Live): () => void {
    let set = this.#live.get(c.sessionId);
    if (!set) this.#live.set(c.sessionId, (set = new Set()));
    set.add(l);
    const left = (c.identity.expiresAt ?? Number.POSITIVE_INFINITY) - this.host.clock();
    const timer = Number.isFinite(left) ? setTimeout(() => l.end('session-ended'), Math.max(0, Math.min(left, 2 ** 31 - 1))) : undefined;
    timer?.unref();
    return () => {
      if (timer) clearTimeout(timer);
      set.delete(l);
    };
  }

  /** A request under /console (`release` lets a long-lived response end before its record is committed). */
  async serve(req: Req, res: Res, ex: Exchange, path: string, release: () => void): Promise<void> {
    const method = req.method ?? '';
    const sub = path.slice(CONSOLE_PREFIX.length) || '/';
    try {
      if (method === 'GET' && (sub === '/' || sub === '/index.html')) return this.#sendPage(res, ex);
      if (method === 'GET' && sub.startsWith('/assets/')) return this.#sendAsset(res, ex, sub.slice('/assets/'.length));
      if (method === 'GET' && sub === '/login') return await this.#startSignIn(req, res, ex);
      if (method === 'GET' && sub === '/callback') return await this.#finishSignIn(req, res, ex);
      if (!sub.startsWith('/api/')) throw new ProxyError('NOT_FOUND', `no ${method} ${path}`);
      const caller = await this.#caller(req, ex);
      // Anything but GET changes state (or is refused as unknown after this check).
      if (method !== 'GET') this.#checkCsrf(req, caller);
      await this.#api(req, res, ex, caller, method, sub.slice('/api'.length), release);
    } catch (err) {
      if (!res.headersSent) for (const [k, v] of Object.entries(securityHeaders())) res.setHeader(k, v);
      ex.refuse(err);
    }
  }

  #sendPage(res: Res, ex: Exchange): void {
    const nonce = styleNonce();
    res.writeHead(200, { ...securityHeaders(nonce), 'content-type': 'text/html; charset=utf-8', 'audit-id': ex.auditId });
    res.end(this.#page(nonce));
    ex.end(200, { reason: 'console page', decision: 'allow' });
  }

  #sendAsset(res: Res, ex: Exchange, name: string): void {
    const a = this.#assets.get(name);
    if (!a) throw new ProxyError('NOT_FOUND', `no console asset ${name}`);
    res.writeHead(200, { ...securityHeaders(), 'cache-control': 'no-cache', 'content-type': a.type, 'content-length': String(a.body.length), 'audit-id': ex.auditId });
    res.end(a.body);
    ex.end(200, { reason: `console asset ${name}`, decision: 'allow' });
  }

  #origin(req: Req): string {
    const p = this.host.sessionContext.proxyUrl;
    return p !== undefined ? new URL(p).origin : `https://${String(req.headers[':authority'] ?? req.headers.host ?? '')}`;
  }

  async #startSignIn(req: Req, res: Res, ex: Exchange): Promise<void> {
    let started;
    try {
      started = await this.#signIn.start(`${this.#origin(req)}${CONSOLE_PREFIX}/callback`);
    } catch (err) {
      this.host.log.warn({ err: (err as Error).message }, 'console sign-in cannot start');
      return this.#signInPage(res, ex, 503, 'Sign-in is unavailable right now (the identity provider or the session store cannot be reached); try again shortly.', { reason: `console sign-in cannot start: ${(err as Error).message}`, decision: 'deny' });
    }
    const { key, url } = started;
    res.writeHead(302, { ...securityHeaders(), location: url, 'set-cookie': loginCookie(key), 'audit-id': ex.auditId });
    res.end();
    ex.end(302, { reason: 'console sign-in started: sent to the identity provider', decision: 'allow' });
  }

  async #finishSignIn(req: Req, res: Res, ex: Exchange): Promise<void> {
    const query = new URL(req.url ?? '', 'https://x').searchParams;
    const now = this.host.clock();
    let idToken: string;
    try {
      idToken = await this.#signIn.finish(cookieValue(req.headers, LOGIN_COOKIE), query, `${this.#origin(req)}${CONSOLE_PREFIX}/callback`);
    } catch (err) {
      const message = err instanceof SignInError ? err.message : 'the identity provider could not be reached';
      this.host.log.warn({ err: (err as Error).message }, 'console sign-in failed');
      return this.#signInPage(res, ex, 401, `Sign-in failed: ${message}`, { reason: `console sign-in failed: ${(err as Error).message}`, decision: 'deny' });
    }
    let made;
    try {
      made = await sessionFromIdToken(this.host.sessionContext, ['authorization', `Bearer ${idToken}`], now, ex.st);
    } catch (err) {
      const e = err instanceof ProxyError ? err : new ProxyError('INTERNAL', String(err));
      return this.#signInPage(res, ex, e.httpStatus, `Sign-in refused: ${e.safeMessage ?? e.code}`, { reason: `console session refused: ${e.detail}`, decision: 'deny' });
    }
    const { credential, session } = made;
    res.writeHead(200, {
      ...securityHeaders(),
      'content-type': 'text/html; charset=utf-8',
      'set-cookie': [sessionCookie(credential, (session.expiresAt - now) / 1000), clearLoginCookie],
      'audit-id': ex.auditId,
    });
    // A same-site navigation from here (not a redirect of the provider's cross-site one), so the SameSite=Strict cookie goes with it.
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${CONSOLE_PREFIX}/"><title>Signed in</title></head><body><p>Signed in. <a href="${CONSOLE_PREFIX}/">Open the console</a>.</p></body></html>`);
    ex.end(200, { reason: `console session created, ends by ${new Date(session.expiresAt).toISOString()}`, decision: 'allow' });
  }

  #signInPage(res: Res, ex: Exchange, status: number, message: string, facts: { reason: string; decision: 'allow' | 'deny' }): void {
    res.writeHead(status, { ...securityHeaders(), 'content-type': 'text/html; charset=utf-8', 'set-cookie': clearLoginCookie, 'audit-id': ex.auditId });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title></head><body><h1>Portcullis</h1><p role="alert">${escapeHtml(message)}</p><p><a href="${CONSOLE_PREFIX}/login">Sign in again</a></p></body></html>`);
    ex.end(status, facts);
  }

  /** The signed-in caller, from the session cookie, checked as every session credential is; under no lock. */
  async #caller(req: Req, ex: Exchange): Promise<Caller> {
    const credential = cookieValue(req.headers, SESSION_COOKIE);
    if (credential === undefined) throw new ProxyError('UNAUTHENTICATED', 'no console session cookie', 'sign in first');
    const r = await this.host.sessions.check(credential, this.host.clock());
    if (!r.ok) throw new ProxyError('UNAUTHENTICATED', `${r.code}: ${r.message}`, 'your session ended: sign in again');
    ex.st.identity = r.identity;
    const out = this.host.lockedOut(r.identity);
    if (out) throw out;
    const sessionId = verifyCredential(this.host.sessionKey, credential);
    if (sessionId === undefined) throw new ProxyError('UNAUTHENTICATED', 'session credential not verifiable');
    return { identity: r.identity, credential, sessionId };
  }

  /** SECURITY rule 29: a state-changing call comes from the console's origin and carries the session's CSRF token. */
  #checkCsrf(req: Req, c: Caller): void {
    if (!sameOrigin(req.headers)) throw new ProxyError('FORBIDDEN', `cross-origin ${req.method ?? ''} refused (Origin ${String(req.headers.origin ?? 'missing')})`, 'refused: not from the console (Origin)');
    const given = req.headers[CSRF_HEADER];
    if (!csrfMatches(this.host.sessionKey, c.credential, typeof given === 'string' ? given : undefined)) throw new ProxyError('FORBIDDEN', 'missing or wrong CSRF token', 'refused: missing or wrong CSRF token (reload the page)');
  }

  /** Whether the caller holds `Roles.auditor` on a cluster, by the proxy's decision on its signed bundle. */
  #auditorOn(identity: Identity): Set<string> {
    const now = this.host.clock();
    const out = new Set<string>();
    for (const c of this.host.clusters()) {
      if (!c.index) continue;
      const attrs = { user: identity.user, groups: [...identity.groups, 'system:authenticated'], verb: 'get', isResourceRequest: false, path: AUDIT_PATH, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
      if (decide(attrs, c.index, { now, breakGlass: new Set(this.host.activations(c.name, identity.user).keys()) }).decision.allowed) out.add(c.name);
    }
    return out;
  }

  async #api(req: Req, res: Res, ex: Exchange, c: Caller, method: string, route: string, release: () => void): Promise<void> {
    const now = this.host.clock();
    const json = (status: number, body: unknown, reason: string): void => {
      res.writeHead(status, { ...securityHeaders(), 'content-type': 'application/json', 'audit-id': ex.auditId });
      res.end(JSON.stringify(body));
      ex.end(status, { reason, decision: 'allow' });
    };
    const q = new URL(req.url ?? '', 'https://x').searchParams;
    const who = c.identity;
    if (route === '/me' && method === 'GET') {
      const auditor = this.#auditorOn(who);
      const clusters = this.host.clusters().map((x) => x.name);
      return json(
        200,
        { user: who.user, groups: who.groups, expiresAt: new Date(who.expiresAt ?? now).toISOString(), csrf: csrfToken(this.host.sessionKey, c.credential), auditorOn: [...auditor], clusters, terminal: this.host.config.terminal !== undefined },
        'console: who am I',
      );
    }
    if (route === '/logout' && method === 'POST') {
      await this.host.sessions.revoke(c.sessionId);
      this.#endSession(c.sessionId, 'logout');
      res.writeHead(200, { ...securityHeaders(), 'content-type': 'application/json', 'set-cookie': clearSessionCookie, 'audit-id': ex.auditId });
      res.end(JSON.stringify({ status: 'Success', message: 'logged out' }));
      return ex.end(200, { reason: 'console session ended (logout)', decision: 'allow' });
    }
    if (route === '/access' && method === 'GET') {
      const clusters = this.host.clusters().map((x) => ({ cluster: x.name, valid: x.index !== undefined, rows: x.index ? myAccess(x.name, x.index, who, now, this.host.activations(x.name, who.user)) : [] }));
      return json(200, { clusters }, 'console: my access');
    }
    if (route === '/kubeconfig' && method === 'GET') {
      const k = fleetKubeconfig(this.host.sessionContext, who, c.credential, this.host.sessionContext.proxyUrl ?? this.#origin(req), now);
      res.writeHead(200, { ...securityHeaders(), 'content-type': 'application/yaml', 'content-disposition': 'attachment; filename="portcullis-kubeconfig.yaml"', 'audit-id': ex.auditId });
      res.end(k.yaml);
      return ex.end(200, { reason: `console: kubeconfig for ${k.contexts.join(', ') || 'no cluster'}`, decision: 'allow' });
    }
    if (route === '/activity' && method === 'GET') return this.#activity(req, res, ex, c, q, release);
    if ((route === '/explain' || route === '/who-can') && method === 'GET') return this.#question(ex, c, route, q, json);
    // Requests, approvals, activations and break-glass: the proxy's own endpoints, called as this person.
    const relay = relayTarget(method, route);
    if (relay) {
      const body = method === 'POST' ? (await readBody(req, 16 * 1024)).toString('utf8') : undefined;
      let path = relay;
      if (relay === BREAK_GLASS_PATH) {
        const cluster = (() => {
          try {
            return String((JSON.parse(body ?? '{}') as { cluster?: unknown }).cluster ?? '');
          } catch {
            return '';
          }
        })();
        if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(cluster)) throw new ProxyError('BAD_REQUEST', 'break-glass needs a cluster', 'name the cluster');
        path = `/clusters/${cluster}${BREAK_GLASS_PATH}`;
      }
      const r = await callProxy(this.host.self(), method, path, c.credential, body);
      res.writeHead(r.status, { ...securityHeaders(), 'content-type': 'application/json', 'audit-id': ex.auditId, 'x-portcullis-upstream-audit-id': r.auditId });
      res.end(r.body);
      return ex.end(r.status, { reason: `console: ${method} ${path} → ${r.status} (record ${r.auditId})`, decision: r.status < 400 ? 'allow' : 'deny' });
    }
    throw new ProxyError('NOT_FOUND', `no ${method} /console/api${route}`);
  }

  /** explain and who-can for auditors, answered from the signed bundles as the CLI answers them (the same functions). */
  #question(ex: Exchange, c: Caller, route: '/explain' | '/who-can', q: URLSearchParams, json: (s: number, b: unknown, r: string) => void): void {
    const cluster = q.get('cluster') ?? '';
    if (!this.#auditorOn(c.identity).has(cluster)) throw new ProxyError('FORBIDDEN', `${c.identity.user} is not an auditor of ${cluster}`, `only auditors of ${cluster} may ask this (Roles.auditor)`);
    ex.st.cluster = cluster;
    const index = this.host.clusters().find((x) => x.name === cluster)?.index;
    if (!index) throw new ProxyError('NO_BUNDLE', `cluster ${cluster} has no valid bundle`);
    const a = answerQuestion(route, q, cluster, index, this.host.clock(), (user) => new Set(this.host.activations(cluster, user).keys()));
    json(200, a.body, a.reason);
  }

  /** The live feed: the caller's own records, or an auditor's clusters', filtered as asked. */
  #activity(req: Req, res: Res, ex: Exchange, c: Caller, q: URLSearchParams, release: () => void): void {
    const open = this.#live.get(c.sessionId)?.size ?? 0;
    if (open >= MAX_LIVE_PER_SESSION) throw new ProxyError('TOO_MANY_STREAMS', `${open} streams and terminals open for this session`, `at most ${MAX_LIVE_PER_SESSION} live pages per session: close some`);
    const auditorOn = this.#auditorOn(c.identity);
    const everywhere = this.host.clusters().every((x) => auditorOn.has(x.name));
    const visible = (i: ActivityItem): boolean => i.user === c.identity.user || (i.cluster === '' ? everywhere && auditorOn.size > 0 : auditorOn.has(i.cluster));
    const filter: ActivityFilter = Object.fromEntries((['cluster', 'user', 'verb', 'decision'] as const).flatMap((k) => (q.get(k) ? [[k, q.get(k) ?? '']] : [])));
    release();
    serveActivityStream(req, res, ex, this.#feed, { visible, auditorOn: [...auditorOn], filter }, (l) => this.#track(c, l));
  }

  /** A WebSocket upgrade under /console: only the terminal, only from the console's origin, only signed in, then the CSRF token first. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ex: Exchange): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    try {
      if (path !== `${CONSOLE_PREFIX}/terminal`) throw new ProxyError('NOT_FOUND', `no upgrade at ${path}`);
      // SECURITY rule 29: cross-site WebSocket hijacking — the cookie would go along, the Origin tells.
      if (!sameOrigin(req.headers)) throw new ProxyError('FORBIDDEN', `cross-origin WebSocket refused (Origin ${String(req.headers.origin ?? 'missing')})`, 'refused: not from the console (Origin)');
      const c = await this.#caller(req as unknown as Req, ex);
      const cfg = this.host.config.terminal;
      if (!cfg) throw new ProxyError('NOT_FOUND', 'the console has no terminal configured', 'no terminal on this proxy');
      const pty = this.#pty;
      if (!('spawn' in pty)) throw new ProxyError('INTERNAL', `terminal unavailable: ${pty.error}`, 'the terminal is unavailable on this proxy (its administrators are told why)');
      const mine = [...this.#terminals].filter((t) => t.user === c.identity.user).length;
      if (mine >= cfg.maxPerUser) throw new ProxyError('TOO_MANY_STREAMS', `${mine} terminals open`, `at most ${cfg.maxPerUser} terminals at once`);
      const s = this.host.self();
      const kubeconfig = fleetKubeconfig(this.host.sessionContext, c.identity, c.credential, `https://127.0.0.1:${s.port}`, this.host.clock(), s.serverName !== '127.0.0.1' ? { tlsServerName: s.serverName } : {});
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        ex.started(101);
        // The first message must be the session's CSRF token: nothing runs before it.
        const hello = setTimeout(() => ws.close(1008, 'no hello'), 10_000);
        ws.once('message', (data) => {
          clearTimeout(hello);
          let token: unknown;
          try {
            token = (JSON.parse(data.toString()) as { csrf?: unknown }).csrf;
          } catch {
            token = undefined;
          }
          if (!csrfMatches(this.host.sessionKey, c.credential, typeof token === 'string' ? token : undefined)) {
            ws.close(1008, 'csrf');
            return ex.end(403, { reason: 'console terminal refused: missing or wrong CSRF token', decision: 'deny' });
          }
          let session: TerminalSession;
          try {
            session = new TerminalSession(
              ws,
              cfg,
              kubeconfig.yaml,
              (why, commands) => {
                this.#terminals.delete(entry);
                untrack();
                ex.end(101, { reason: `console terminal ended (${why}) after ${commands} kubectl command(s)`, decision: 'allow' });
              },
              pty.spawn,
              (line, refused) =>
                refused === undefined
                  ? this.host.log.info({ user: c.identity.user, auditID: ex.auditId, line }, 'console shell: kubectl')
                  : this.host.log.warn({ user: c.identity.user, auditID: ex.auditId, line, refused, alert: true }, 'console shell: line refused'),
            );
          } catch (err) {
            this.host.log.error({ err: (err as Error).message, alert: true }, 'console terminal cannot start');
            ws.send('The terminal cannot start on this proxy (its administrators are told why).\r\n');
            ws.close(1011, 'cannot start');
            return ex.end(500, { reason: 'console terminal cannot start', detail: (err as Error).message, decision: 'allow' });
          }
          const entry = { user: c.identity.user, session };
          this.#terminals.add(entry);
          const untrack = this.#track(c, { end: (why) => session.end(why) });
        });
        ws.on('close', () => {
          clearTimeout(hello);
          if (!ex.ended) ex.end(101, { reason: 'console terminal closed before it started', decision: 'allow' });
        });
      });
    } catch (err) {
      if (!socket.destroyed) {
        const e = err instanceof ProxyError ? err : new ProxyError('INTERNAL', String(err));
        socket.end(`HTTP/1.1 ${e.httpStatus} ${e.httpStatus === 403 ? 'Forbidden' : 'Refused'}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${e.safeMessage ?? e.code}\n`);
      }
      ex.refuse(err);
    }
  }
}

/** Escapes text for HTML (the only HTML the server builds with data: the sign-in error page). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
