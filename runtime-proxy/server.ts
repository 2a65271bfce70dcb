import type { KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2SecureServer, type Http2ServerRequest, type Http2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { pino, type Logger } from 'pino';
import { decide } from '../core/decide.ts';
import { trustedKeysOf } from '../core/bundle.ts';
import { EXTRA_USER, LOCKS_PATH } from '../core/names.ts';
import { ALL_AUTHENTICATED } from './discovery.ts';
import { AuditSink } from './audit/sink.ts';
import { AuditWebhook, exportWebhookMetrics } from './audit/webhook.ts';
import { Connections } from './connections.ts';
import { bundleExpiry, describeExpiry } from '../core/bundle-expiry.ts';
import { ActivationStore, ConfigMapActivations, DirectoryActivations, type SharedActivations } from './break-glass.ts';
import type { ConfigMapLocation } from './configmap-document.ts';
import { ConfigMapFloors, DirectoryFloors, type RevisionFloors } from './revision-floor.ts';
import { fetchBundle, watchBundleSource } from './bundle-source.ts';
import { BundleStore, type OfferResult } from './bundle-store.ts';
import { ConfigError, type ClusterConfig, type ProxyConfig, type SessionsConfig } from './config.ts';
import { impersonate, impersonationAsked, stillImpersonates } from './impersonation.ts';
import { ProxyError } from './errors.ts';
import type { BodyCapture, ForwardHooks } from './forward.ts';
import { buildUpstreamHeaders, type UpstreamIdentity } from './headers.ts';
import type { Authenticator, Identity } from './identity.ts';
import { cachingAuthenticator } from './credential-cache.ts';
import { createMetrics, type ProxyMetrics } from './metrics.ts';
import { authenticateStage, authorizeStage, deadlineOf, parseRequestStage, route, type Admission } from './pipeline.ts';
import { isSelfAccessReview, isSelfSubjectReview, selfSubjectReview } from './self-review.ts';
import { sendStatus, sendStatusOnSocket } from './status-body.ts';
import { BREAK_GLASS_PATH, serveBreakGlass, type BreakGlassContext } from './break-glass-endpoint.ts';
import type { Req, Res } from './request-state.ts';
import { serveSelfReview } from './self-review-endpoint.ts';
import { StreamRegistry } from './streams.ts';
import { upgradeProtocol, type UpgradeOutcome } from './upgrade.ts';
import type { AuditFacts } from './audit/event.ts';
import { BodyCollector } from './audit/bodies.ts';
import { auditDecision, parseAuditPolicy, withoutManagedFields, type AuditLevel, type AuditPolicy } from './audit/policy.ts';
import { SessionRecorder, type RecordingResult } from './recording/index.ts';
import { serveSessionEndpoint, SESSIONS_PREFIX, type SessionEndpointContext } from './sessions/endpoints.ts';
import { SessionService } from './sessions/sessions.ts';
import { RedisSessions, type SharedSessions } from './sessions/session-store.ts';
import { lockCovers, RedisLocks, type LockKind } from './locks/locks.ts';
import { LOCKS_ENDPOINT, serveLockEndpoint, type LockEndpointContext } from './locks/endpoints.ts';
import { RedisRequests } from './requests/access-requests.ts';
import { ACTIVATIONS_ENDPOINT, REQUESTS_ENDPOINT, serveRequestEndpoint, type RequestEndpointContext } from './requests/endpoints.ts';
import { postJson } from './webhook.ts';
import { createUpstream } from './upstream.ts';
import { bundleFor, type AgentsConfig } from './config.ts';
import { directLink, tunnelLink, type ClusterLink } from './cluster-link.ts';
import { TUNNEL_PATH, TUNNEL_UPGRADE } from '../agent/protocol.ts';
import { DirectoryPins, RedisPins, type AgentPins } from './tunnel/agent-pins.ts';
import { Tunnels } from './tunnel/tunnels.ts';
import { CONSOLE_PREFIX, PortcullisConsole } from '../console/index.ts';
import { Drain, endAfterCommit, Exchange, type ExchangeHost } from './exchange.ts';

/** What the proxy is built from. */
export interface ProxyOptions {
  readonly config: ProxyConfig;
  readonly authenticator: Authenticator;
  readonly logger?: Logger;
  readonly clock?: () => number;
  /** Where audit lines for `audit.stdout` go (defaults to process.stdout). */
  readonly auditStdout?: (chunk: string) => void;
}

interface ClusterRuntime {
  readonly config: ClusterConfig;
  readonly store: BundleStore;
  /** How requests reach its kube-apiserver: directly, or through its agents' tunnels. */
  readonly link: ClusterLink;
  reloading: Promise<OfferResult | undefined> | undefined;
  stopWatch?: () => void;
  /** The revision this replica accepted but could not yet record in the shared floor. */
  unrecordedFloor?: number;
  /** When the last expiry warning was logged, and for which revision. */
  expiryWarned?: { readonly revision: number; readonly at: number };
}

/** Header lines Node keeps of a request (its maxHeadersCount, set to this); a request with as many is refused with 431. */
const MAX_HEADER_LINES = 2000;

/** How often an expiring bundle is warned about again. */
const EXPIRY_WARN_EVERY_MS = 3_600_000;

/**
 * The runtime proxy: one HTTPS server (HTTP/2 with HTTP/1.1 fallback) for the
 * whole fleet at /clusters/NAME/…, running every request through
 * authenticate → parse request → authorize → forward → audit.
 */
export class PortcullisProxy {
  readonly metrics: ProxyMetrics;
  readonly streams: StreamRegistry;
  readonly audit: AuditSink;
  /** Where the records go after the file, when `audit.webhook` is configured. */
  readonly auditWebhook: AuditWebhook | undefined;
  readonly activations: ActivationStore;
  readonly log: Logger;
  readonly #clusters = new Map<string, ClusterRuntime>();
  /** Per-cluster host names (config `hostnames`): host → cluster. */
  readonly #hosts = new Map<string, string>();
  readonly #clock: () => number;
  readonly #server: Http2SecureServer;
  #metricsServer: http.Server | undefined;
  #stopping = false;
  /** Set once the drain is over: what still arrives is refused (and the connection closed). */
  #closing = false;
  readonly #connections = new Connections();
  readonly #drain = new Drain();
  /** What every request's Exchange shares. */
  readonly #host: ExchangeHost;
  readonly #webhookCa: Buffer | undefined;
  readonly #authn: Authenticator;
  /** The proxy's own sessions (`portcullis login`), when configured. */
  readonly #sessions: SharedState | undefined;
  /** Access requests and activations in the shared store, when sessions are configured. */
  readonly #requests: RedisRequests | undefined;
  /** The replicas' shared revision floors, if configured; until they are read, no bundle is accepted. */
  readonly #floors: RevisionFloors | undefined;
  #floorsLoaded = false;
  #expiryTimer: NodeJS.Timeout | undefined;
  /** The audit policy (`audit.policyFile`); none: every request at Metadata, with no cost per request. */
  readonly #auditPolicy: AuditPolicy | undefined;
  /** The agents' tunnels to this replica (`agents`), and the keys they are pinned to. */
  readonly #tunnels: Tunnels | undefined;
  #pins: AgentPins | undefined;
  /** The web console at /console (`console`), when configured. */
  readonly console: PortcullisConsole | undefined;

  constructor(private readonly opts: ProxyOptions) {
    const c = opts.config;
    this.#auditPolicy = c.audit.policyFile !== undefined ? loadAuditPolicy(c.audit.policyFile) : undefined;
    this.#clock = opts.clock ?? Date.now;
    this.log = opts.logger ?? pino({ name: 'portcullis-proxy' }, pino.destination(2));
    this.metrics = createMetrics();
    this.streams = new StreamRegistry(c.limits.maxLongRunningPerIdentity, this.#clock);
    this.auditWebhook = c.audit.webhook ? new AuditWebhook(c.audit.webhook, (message) => this.log.warn({ alert: true }, message)) : undefined;
    const webhook = this.auditWebhook;
    if (webhook) exportWebhookMetrics(webhook, this.metrics.registry);
    this.audit = new AuditSink({
      ...c.audit,
      ...(webhook ? { ship: (line: string) => webhook.enqueue(line) } : {}),
      ...(c.audit.signingKeyFile !== undefined ? { signingKeyPem: readFileSync(c.audit.signingKeyFile, 'utf8') } : {}),
      ...(opts.auditStdout ? { stdoutWrite: opts.auditStdout } : {}),
    });
    // With a shared store (sessions), approved requests and break-glass live there too, unless configured elsewhere.
    this.#requests = c.sessions ? new RedisRequests(c.sessions.store.url, (err) => this.log.warn({ err: err.message }, 'request store connection error')) : undefined;
    this.activations = new ActivationStore(
      sharedActivations(c) ?? this.#requests,
      this.#clock,
      (err) => this.log.error({ err: err.message, alert: true }, 'break-glass activations could not be read; keeping the last copy'),
      // Ended early through another replica: the streams it allowed here are re-checked now.
      (clusters) => {
        for (const cl of clusters) this.#recheckStreams(cl);
      },
    );
    this.#webhookCa = c.breakGlass.webhookCaFile !== undefined ? readFileSync(c.breakGlass.webhookCaFile) : undefined;
    this.#sessions = c.sessions ? this.#sessionService(c.sessions) : undefined;
    const idp = cachingAuthenticator(opts.authenticator);
    // Session credentials are checked by the sessions (a map lookup), never cached past a logout.
    this.#authn = this.#sessions ? this.#sessions.service.authenticator(idp) : idp;
    this.#floors = revisionFloors(c);
    this.console = c.console && this.#sessions ? this.#makeConsole(c, this.#sessions) : undefined;
    this.#host = { clock: this.#clock, metrics: this.metrics, log: this.log, audit: this.audit, streams: this.streams, drain: this.#drain };
    this.#tunnels = c.agents ? this.#agentTunnels(c.agents) : undefined;
    for (const cc of c.clusters) {
      this.#clusters.set(cc.name, { config: cc, store: new BundleStore(cc.name, loadKeys(cc.trustedKeyFiles)), link: this.#link(cc), reloading: undefined });
      for (const h of cc.hostnames) this.#hosts.set(h, cc.name);
    }
    const clientCa = (c.authn as { clientCertificates?: { caFile?: string } }).clientCertificates?.caFile;
    this.#server = http2.createSecureServer({
      key: readFileSync(c.tls.keyFile),
      cert: readFileSync(c.tls.certFile),
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
      // The authenticator verifies client certificates against its own CAs.
      // Client certificates are asked for (not required: bearer tokens are the norm) and verified against the client CA;
      // only a verified one reaches the authenticator, which checks it again.
      ...(clientCa !== undefined ? { requestCert: true, rejectUnauthorized: false, ca: readFileSync(clientCa) } : {}),
      settings: { maxHeaderListSize: c.limits.maxHeaderBytes, maxConcurrentStreams: 1000 },
      maxSessionMemory: 32,
      // Small responses go out at once: without this, Nagle plus the client's delayed ACK adds ~40 ms.
      noDelay: true,
    });
    this.#server.on('secureConnection', (sock: TLSSocket) => {
      sock.setNoDelay(true);
      this.#connections.accepted(sock);
    });
    this.#server.on('session', (session: Http2Session) => this.#connections.session(session));
    // A request Node's parser refuses never reaches a handler: answer it with a Status too (Node 22
    // refuses more than maxHeadersCount lines itself; Node 20 drops the rest, which #preflight catches).
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return void socket.end('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\r\n');
      this.log.debug({ code: err.code }, 'request refused by the HTTP parser');
      sendStatusOnSocket(socket, new ProxyError(err.code === 'HPE_HEADER_OVERFLOW' ? 'TOO_MANY_HEADERS' : 'MALFORMED_REQUEST', err.code ?? 'parse error'));
    });
    // SECURITY rule 15 for the HTTP/1.1 side: Node's strict parser (insecureHTTPParser is never set), bounded headers, timeouts.
    const s = this.#server as unknown as { maxHeaderSize: number; maxHeadersCount: number; headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number };
    s.maxHeaderSize = c.limits.maxHeaderBytes;
    // Node keeps this many header lines and silently drops the rest; #preflight refuses a request that reaches it (SECURITY rule 20).
    s.maxHeadersCount = MAX_HEADER_LINES;
    s.headersTimeout = c.limits.headersTimeoutMs;
    s.requestTimeout = c.limits.requestTimeoutMs;
    s.keepAliveTimeout = c.limits.idleTimeoutMs;
    // Node enforces the two timeouts above from a timer (30 s by default, read when listening):
    // check often enough that a slow client is cut close to its deadline, not up to 30 s later.
    s.connectionsCheckingInterval = Math.max(250, Math.min(1000, Math.floor(Math.min(c.limits.headersTimeoutMs, c.limits.requestTimeoutMs) / 4)));
    this.#server.setTimeout(c.limits.idleTimeoutMs);
    this.#server.on('timeout', (x: Http2Session | Socket) => {
      // Idle HTTP/2 sessions close gracefully (live streams finish first); idle HTTP/1.1 sockets close.
      if ('close' in x && 'goaway' in x) (x as Http2Session).close();
      else (x as Socket).destroy();
    });
    // A bug in a handler must fail that request, never the process (an unhandled rejection would end it).
    // Inside the lifecycle it is an audited INTERNAL refusal; this catches only what fails before it (the ops endpoints).
    this.#server.on('request', (req: Req, res: Res) => {
      if (req.httpVersionMajor === 1) this.#connections.request(req.socket as TLSSocket, res as ServerResponse);
      return this.#onRequest(req, res).catch((err: unknown) => {
        this.log.error({ err: (err as Error)?.stack ?? String(err) }, 'request handler failed');
        sendStatus(res, new ProxyError('INTERNAL', 'handler failed'));
      });
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#connections.upgraded(socket as TLSSocket);
      return this.#onUpgrade(req, socket, head).catch((err: unknown) => {
        this.log.error({ err: (err as Error)?.stack ?? String(err) }, 'upgrade handler failed');
        socket.destroy();
      });
    });
    this.#server.on('sessionError', (err) => this.log.debug({ err: err.message }, 'http2 session error'));
  }

  /** Loads every cluster's bundle once, starts watching the sources and listens. */
  async start(): Promise<{ readonly port: number; readonly host: string; readonly metricsPort?: number }> {
    if (this.#sessions) {
      // An unreachable store does not stop the proxy: sessions fail closed until it answers (logged).
      const started = Promise.all([this.#sessions.shared.start(), this.#sessions.locks.start(), this.#requests?.start()]).then(
        () => true,
        (err: unknown) => (this.log.error({ err: (err as Error).message, alert: true }, 'session store unreachable at start'), false),
      );
      await Promise.race([started, new Promise((r) => setTimeout(r, 5000).unref())]);
      // The console's live feed joins the other replicas' once the store answers (never holds the start up).
      await Promise.race([this.console?.start(), new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    await this.activations.start();
    await this.#loadFloors();
    // Clusters registered by their agents earlier (maybe through another replica) are served from the start.
    if (this.#pins) {
      const pinned = await this.#pins.all().catch((err: unknown) => (this.log.error({ err: (err as Error).message, alert: true }, 'cannot read the registered agents'), new Map<string, string>()));
      for (const name of pinned.keys()) this.#addAgentCluster(name);
    }
    for (const name of [...this.#clusters.keys()]) await this.#startCluster(name);
    this.#started = true;
    this.#expiryTimer = setInterval(() => this.#warnExpiry(), 60_000);
    this.#expiryTimer.unref();
    const { host, port } = this.opts.config.listen;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => resolve());
    });
    const a = this.#server.address() as AddressInfo;
    this.log.info({ host: a.address, port: a.port }, 'portcullis proxy listening');
    const m = this.opts.config.metrics;
    if (!m) return { port: a.port, host: a.address };
    const ms = http.createServer((req, res) => void this.#onMetricsRequest(req, res).catch(() => res.destroy()));
    this.#metricsServer = ms;
    await new Promise<void>((resolve, reject) => {
      ms.once('error', reject);
      ms.listen(m.listen.port, m.listen.host, () => resolve());
    });
    const ma = ms.address() as AddressInfo;
    this.log.info({ host: ma.address, port: ma.port }, 'metrics listening (plain HTTP: /metrics, /healthz, /readyz)');
    return { port: a.port, host: a.address, metricsPort: ma.port };
  }

  /**
   * Whether every cluster has a valid bundle and the audit sink can write (`problems`), and what
   * needs attention before it stops being so (`warnings`: bundles within `bundleExpiry.warnBeforeMs`).
   */
  ready(): { readonly ok: boolean; readonly problems: readonly string[]; readonly warnings: readonly string[] } {
    const problems: string[] = [];
    const warnings: string[] = [];
    const now = this.#clock();
    if (this.#floors && !this.#floorsLoaded) problems.push('revision floors not read yet: no bundle is accepted until they are');
    for (const [name, cr] of this.#clusters) {
      const last = cr.store.lastAccepted();
      const e = last && bundleExpiry(last.notAfter, now, this.opts.config.bundleExpiry.warnBeforeMs);
      if (!last) problems.push(`cluster ${name}: no valid bundle`);
      else if (e?.state === 'expired') problems.push(`cluster ${name}: bundle revision ${last.revision} ${describeExpiry(e)}; every request is refused until a renewed bundle is applied`);
      else if (e?.state === 'expiring') warnings.push(`cluster ${name}: bundle revision ${last.revision} ${describeExpiry(e)}; renew it (portcullis compile --renew-within, then apply)`);
    }
    if (!this.audit.healthy && this.opts.config.audit.onFailure === 'deny') problems.push('audit sink failing');
    if (this.#stopping) problems.push('shutting down');
    return { ok: problems.length === 0, problems, warnings };
  }

  /** Reads the shared revision floors into every cluster's store; false (logged) when they cannot be read. */
  async #loadFloors(): Promise<boolean> {
    if (!this.#floors || this.#floorsLoaded) return true;
    try {
      const floors = await this.#floors.load();
      for (const [name, cr] of this.#clusters) {
        const f = floors.get(name);
        if (f) cr.store.raiseFloor(f);
      }
      this.#floorsLoaded = true;
      return true;
    } catch (err) {
      this.log.error({ err: (err as Error).message, alert: true }, 'cannot read the shared revision floors; accepting no bundle until they can be read');
      return false;
    }
  }

  /** Records a cluster's accepted revision in the shared floors; retried at the next reload when it fails. */
  async #recordFloor(cr: ClusterRuntime): Promise<void> {
    const floor = cr.store.floor();
    if (!this.#floors || !floor) return;
    cr.unrecordedFloor = floor.revision;
    try {
      await this.#floors.raise(cr.config.name, floor);
      if (cr.unrecordedFloor === floor.revision) delete cr.unrecordedFloor;
    } catch (err) {
      this.log.error({ cluster: cr.config.name, revision: floor.revision, err: (err as Error).message, alert: true }, 'cannot record the accepted revision in the shared floors; a replica starting now could accept an older bundle');
    }
  }

  /** Logs a warning, at most hourly per cluster, for every bundle within the warning margin of its expiry. */
  #warnExpiry(): void {
    const now = this.#clock();
    for (const [name, cr] of this.#clusters) {
      const b = cr.store.lastAccepted();
      if (!b) continue;
      const e = bundleExpiry(b.notAfter, now, this.opts.config.bundleExpiry.warnBeforeMs);
      if (e.state === 'valid') continue;
      const w = cr.expiryWarned;
      if (w && w.revision === b.revision && now - w.at < EXPIRY_WARN_EVERY_MS) continue;
      cr.expiryWarned = { revision: b.revision, at: now };
      const msg = e.state === 'expired' ? 'bundle expired: every request to this cluster is refused until a renewed bundle is applied' : 'bundle expires soon: renew it (portcullis compile --renew-within, then apply)';
      this.log.warn({ cluster: name, revision: b.revision, notAfter: new Date(b.notAfter).toISOString(), alert: true }, msg);
    }
  }

  /** Loads a cluster's bundle and watches its source. */
  async #startCluster(name: string): Promise<void> {
    const cr = this.#clusters.get(name);
    if (!cr || cr.stopWatch) return;
    cr.stopWatch = () => undefined;
    await this.reload(name);
    cr.stopWatch = watchBundleSource(cr.config.bundle, () => void this.reload(name), bundleEndpoint(cr), (w) => {
      if (w.state === 'watching') this.log.info({ cluster: name }, 'watching the bundle ConfigMap');
      else this.log.warn({ cluster: name, why: w.why, retryInMs: w.retryInMs, pollIntervalMs: cr.config.bundle.pollIntervalMs }, 'cannot watch the bundle ConfigMap; polling until the watch works (is `watch` granted on it?)');
    });
  }

  #started = false;

  /** How a configured cluster is reached. */
  #link(cc: ClusterConfig): ClusterLink {
    if (cc.upstream) return directLink(createUpstream(cc.upstream));
    if (!this.#tunnels) throw new ConfigError(`cluster ${cc.name} is reached through its agent, but there is no agents section`);
    return tunnelLink(cc.name, this.#tunnels);
  }

  /** The tunnels of `agents`, with the pins in the directory or, by default, in the sessions' store. */
  #agentTunnels(ac: AgentsConfig): Tunnels {
    const onError = (err: Error) => this.log.warn({ err: err.message }, 'agent store connection error');
    const storeUrl = this.opts.config.sessions?.store.url;
    if (ac.stateDir !== undefined) this.#pins = new DirectoryPins(ac.stateDir);
    else if (storeUrl !== undefined) this.#pins = new RedisPins(storeUrl, onError);
    else throw new ConfigError('agents: set agents.stateDir, or configure sessions (the registered agents live in their store)');
    return new Tunnels({
      pins: this.#pins,
      registrationKeys: loadKeys(ac.registrationKeyFiles),
      limits: ac.limits,
      log: this.log,
      clock: this.#clock,
      accepts: (cluster) => this.#clusters.get(cluster)?.config.upstream === undefined && (this.#clusters.has(cluster) || ac.registeredClusters !== undefined),
      registered: (cluster) => {
        if (this.#addAgentCluster(cluster) && this.#started) void this.#startCluster(cluster);
      },
      lost: (auditId) => this.streams.close(auditId, 'tunnel-lost'),
    });
  }

  /**
   * Serves a cluster its agent registered (`agents.registeredClusters`), unless configured already:
   * its bundle from the defaults' source with `{cluster}` filled in. True when it is new.
   */
  #addAgentCluster(name: string): boolean {
    const d = this.opts.config.agents?.registeredClusters;
    if (this.#clusters.has(name) || !d || !this.#tunnels) return false;
    const cc: ClusterConfig = { name, hostnames: [], bundle: bundleFor(d.bundle, name), trustedKeyFiles: d.trustedKeyFiles };
    this.#clusters.set(name, { config: cc, store: new BundleStore(name, loadKeys(cc.trustedKeyFiles)), link: tunnelLink(name, this.#tunnels), reloading: undefined });
    this.log.info({ cluster: name }, 'serving a cluster registered by its agent');
    return true;
  }

  /** The bundle store of a cluster (tests and status). */
  store(cluster: string): BundleStore | undefined {
    return this.#clusters.get(cluster)?.store;
  }

  /** Fetches and offers a cluster's bundle now; reloads of one cluster never overlap. */
  async reload(cluster: string): Promise<OfferResult | undefined> {
    const cr = this.#clusters.get(cluster);
    if (!cr) return undefined;
    while (cr.reloading) await cr.reloading;
    const run = this.#reloadOnce(cr);
    cr.reloading = run;
    try {
      return await run;
    } finally {
      cr.reloading = undefined;
    }
  }

  async #reloadOnce(cr: ClusterRuntime): Promise<OfferResult | undefined> {
    const name = cr.config.name;
    // Fail closed: without the floors, an older bundle could pass for the newest.
    if (!(await this.#loadFloors())) return undefined;
    if (cr.unrecordedFloor !== undefined) await this.#recordFloor(cr);
    let fetched;
    try {
      fetched = await fetchBundle(cr.config.bundle, bundleEndpoint(cr));
    } catch (err) {
      this.metrics.reloads.inc({ cluster: name, result: 'fetch_failed' });
      this.log.error({ cluster: name, err: (err as Error).message, alert: true }, 'bundle fetch failed; keeping the last good bundle');
      return undefined;
    }
    const r = cr.store.offer(fetched.files, this.#clock(), fetched.commit);
    this.metrics.reloads.inc({ cluster: name, result: r.result });
    if (r.result === 'rejected') {
      this.log.error({ cluster: name, code: r.code, err: r.message, alert: true, activeRevision: cr.store.lastAccepted()?.revision }, 'bundle refused; keeping the last good bundle');
    } else if (r.result === 'accepted') {
      this.metrics.bundleRevision.set({ cluster: name }, r.bundle.revision);
      this.metrics.bundleExpiry.set({ cluster: name }, r.bundle.notAfter / 1000);
      this.log.info({ cluster: name, revision: r.bundle.revision, previous: r.previous?.revision, commit: r.bundle.commit, notAfter: new Date(r.bundle.notAfter).toISOString() }, 'bundle accepted');
      if (r.previous) this.#recheckStreams(name);
      this.#warnExpiry();
      await this.#recordFloor(cr);
    }
    return r;
  }

  /** Re-authorizes every live stream of a cluster against its current bundle; revoked ones close now. */
  #recheckStreams(cluster: string): void {
    const cr = this.#clusters.get(cluster);
    if (!cr) return;
    const now = this.#clock();
    const bundle = cr.store.current(now);
    const closed = this.streams.recheck(cluster, (s) => {
      if (!bundle) return { allowed: false };
      // Under `kubectl --as`, the caller must still be granted the impersonation; the impersonated user holds no break-glass.
      const imp = s.impersonation;
      if (imp && !stillImpersonates(imp, bundle.index, now, new Set(this.activations.active(cluster, imp.caller.user).keys()))) return { allowed: false };
      const acts = imp ? new Map<string, number>() : this.activations.active(cluster, s.attributes.user);
      const v = decide(s.attributes, bundle.index, { now, breakGlass: new Set(acts.keys()) });
      const d = v.decision;
      if (!d.allowed) return { allowed: false };
      const bg = d.grant.conditions.breakGlass !== undefined || d.grant.conditions.approval !== undefined ? acts.get(d.grant.id) : undefined;
      return { allowed: true, grantId: d.grant.id, deadline: deadlineOf(s.identity, d.grant, bundle, now, bg) };
    });
    if (closed > 0) this.log.warn({ cluster, closed }, 'closed long-running requests revoked by the new bundle');
  }

  /**
   * Graceful shutdown, within shutdownGraceMs: stop accepting; close the client connections
   * (GOAWAY on HTTP/2, idle HTTP/1.1 ones at once, busy ones after a last response that says
   * `Connection: close`), while requests in flight finish; end streams; then what is still open
   * is cut, its records written, and the audit sink closed last.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const deadline = this.#clock() + this.opts.config.limits.shutdownGraceMs;
    const until = (p: Promise<void>, ms: number): Promise<void> => Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)).unref())]);
    for (const cr of this.#clusters.values()) cr.stopWatch?.();
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    await this.console?.stop();
    this.activations.stop();
    await this.#sessions?.shared.stop();
    await this.#sessions?.locks.stop();
    await this.#requests?.stop();
    this.#metricsServer?.close();
    const listenerClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#connections.close();
    await until(this.#drain.idle(), deadline - this.#clock());
    this.#closing = true;
    this.streams.closeAll('shutdown');
    // Wait until every closed stream audited its end (bounded), and the connections closed.
    for (let i = 0; i < 200 && this.#drain.live > 0; i++) await new Promise((r) => setTimeout(r, 10));
    // A session's last record waits for its recording to be closed: within the grace, before the sink closes.
    await until(Promise.allSettled([...this.#pendingRecordings]).then(() => undefined), deadline - this.#clock());
    // The agents' tunnels carried the requests just drained: only now do they get GOAWAY.
    this.#tunnels?.close();
    await until(this.#connections.closed(), deadline - this.#clock());
    if (this.#connections.size > 0) {
      this.log.warn({ connections: this.#connections.size }, 'shutdown grace over: closing the connections still open');
      this.#connections.destroyAll();
      this.#tunnels?.destroyAll();
      await until(this.#connections.closed(), 1000);
    }
    await until(listenerClosed, 1000);
    // The exchanges of the connections just cut end on their close events: let them write their records.
    await new Promise((r) => setImmediate(r));
    for (const cr of this.#clusters.values()) cr.link.close();
    await this.#pins?.close();
    this.audit.close();
    // The webhook gets what is left of the grace to deliver the last batches (at least a second).
    await this.auditWebhook?.close(Math.max(deadline, this.#clock() + 1000));
  }

  // ---- request handling -------------------------------------------------

  /** Sessions from the configuration: the shared store, the key, and what the endpoints need. */
  #sessionService(sc: SessionsConfig): SharedState {
    const key = readFileSync(sc.keyFile);
    if (key.length < 32) throw new ConfigError(`sessions.keyFile ${sc.keyFile}: ${key.length} bytes; at least 32 random bytes, the same on every replica`);
    const shared = new RedisSessions(sc.store.url, {
      touchIntervalMs: sc.touchIntervalMs,
      graceMs: sc.storeGraceMs,
      clock: this.#clock,
      onError: (err) => this.log.warn({ err: err.message }, 'session store connection error'),
    });
    const issuers = ((this.opts.config.authn as { issuers?: { issuer: string; clusters?: string[] }[] }).issuers ?? []).filter((i) => i.clusters !== undefined);
    const service = new SessionService(shared, key, {
      idleTimeoutMs: sc.idleTimeoutMs,
      maxLifetimeMs: sc.maxLifetimeMs,
      issuerClusters: new Map(issuers.map((i) => [i.issuer, i.clusters ?? []])),
      limitsFor: (cluster) => this.#clusters.get(cluster)?.store.current(this.#clock())?.ruleSet.sessionLimits,
    });
    // A session that ends ends its live watches, execs and port-forwards too.
    service.onEnded((_id, identity) => {
      for (const s of this.streams.list()) if (s.identity === identity || s.impersonation?.caller === identity) this.streams.close(s.id, 'session-ended');
    });
    const context: SessionEndpointContext = {
      clock: this.#clock,
      sessions: service,
      idpAuthenticator: this.opts.authenticator,
      lockedOut: (identity) => this.#lockedOut(identity),
      login: sc.login,
      clusters: () => [...this.#clusters.values()].map((cr) => ({ name: cr.config.name, hostnames: cr.config.hostnames, ruleSet: cr.store.current(this.#clock())?.ruleSet })),
      proxyUrl: sc.proxyUrl,
      caPem: sc.caFile !== undefined ? readFileSync(sc.caFile, 'utf8') : undefined,
    };
    const locks = new RedisLocks(sc.store.url, (err) => this.log.warn({ err: err.message }, 'lock store connection error'));
    // A lock in force ends, on this replica, every live stream it covers (audited stream-end: locked).
    locks.onSet((l) => {
      const now = this.#clock();
      let closed = 0;
      for (const s of this.streams.list()) {
        const who = s.impersonation?.caller ?? s.identity;
        if (lockCovers(l, { cluster: s.cluster, user: s.identity.user, groups: s.identity.groups, grantId: s.grantId }, now) || lockCovers(l, { cluster: s.cluster, user: who.user, groups: who.groups }, now)) {
          this.streams.close(s.id, 'locked');
          closed++;
        }
      }
      this.log.warn({ lock: l.id, kind: l.kind, subject: l.subject, reason: l.reason, setBy: l.setBy, closed, alert: true }, 'LOCK IN FORCE');
    });
    const lockContext: LockEndpointContext = {
      clock: this.#clock,
      locks,
      authenticator: { authenticate: (r, now) => this.#authn.authenticate(r, now) },
      may: (identity, verb, cluster) => this.#mayLock(identity, verb, cluster),
      lockedOut: (identity) => this.#lockedOut(identity),
      unknown: (kind, subject) => this.#unknownSubject(kind, subject),
      // The sessions a user or group lock covers end everywhere (the other replicas hear it).
      afterSet: async (l) => {
        if (l.kind !== 'user' && l.kind !== 'group') return;
        for (const s of shared.all()) if (lockCovers(l, { cluster: '', user: s.user, groups: s.groups }, this.#clock())) await service.revoke(s.id);
      },
    };
    const requests = this.#requests;
    if (!requests) throw new Error('sessions without a request store');
    const requestContext: RequestEndpointContext = {
      clock: this.#clock,
      requests,
      activations: this.activations,
      authenticator: lockContext.authenticator,
      lockedOut: (identity) => this.#lockedOut(identity),
      ruleSet: (cluster) => this.#clusters.get(cluster)?.store.current(this.#clock())?.ruleSet,
      notify: async (event) => {
        const url = this.opts.config.breakGlass.webhookUrl;
        if (url !== undefined) await postJson(url, event, this.#webhookCa);
      },
      ended: (cluster) => {
        // The other replicas see the early end at their next refresh (≤ 0.5 s) and re-check then too.
        this.#recheckStreams(cluster);
      },
    };
    return { service, shared, context, locks, lockContext, requestContext };
  }

  /** The console, on this proxy's sessions, bundles, activations and audit path. */
  #makeConsole(c: ProxyConfig, sessions: SharedState): PortcullisConsole {
    const sc = c.sessions as SessionsConfig;
    const issuer = ((c.authn as { issuers?: { issuer: string; caFile?: string }[] }).issuers ?? []).find((i) => i.issuer === sc.login.issuer);
    const proxyCa = readFileSync(sc.caFile ?? c.tls.certFile, 'utf8');
    return new PortcullisConsole({
      clock: this.#clock,
      log: this.log,
      config: c.console ?? {},
      sessionKey: readFileSync(sc.keyFile),
      sessions: sessions.service,
      sessionContext: sessions.context,
      lockedOut: (identity) => this.#lockedOut(identity),
      clusters: () => [...this.#clusters.values()].map((cr) => ({ name: cr.config.name, index: cr.store.current(this.#clock())?.index })),
      activations: (cluster, user) => this.activations.active(cluster, user),
      audit: this.audit,
      idpCaPem: issuer?.caFile !== undefined ? readFileSync(issuer.caFile, 'utf8') : undefined,
      storeUrl: sc.store.url,
      self: () => ({ port: (this.#server.address() as AddressInfo).port, caPem: proxyCa, serverName: sc.proxyUrl !== undefined ? new URL(sc.proxyUrl).hostname : '127.0.0.1' }),
    });
  }

  /**
   * Whether the policy lets `identity` use `verb` on the locks path: on `cluster` for a cluster's
   * lock; on every cluster for a fleet-wide one (a person, a group, a grant reach them all).
   */
  #mayLock(identity: Identity, verb: 'get' | 'post' | 'delete', cluster?: string): boolean {
    const now = this.#clock();
    const attrs = { user: identity.user, groups: [...identity.groups, ALL_AUTHENTICATED], verb, isResourceRequest: false, path: LOCKS_PATH, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
    const asked = [...this.#clusters.values()].filter((cr) => cluster === undefined || cr.config.name === cluster);
    return asked.length > 0 && asked.every((cr) => {
      const b = cr.store.current(now);
      return b !== undefined && decide(attrs, b.index, { now, breakGlass: new Set() }).decision.allowed;
    });
  }

  /** The lock a person is under fleet-wide (user or group), if any: the front door's endpoints refuse them too. */
  #lockedOut(identity: Identity): ProxyError | undefined {
    const l = this.#sessions?.locks.covering({ cluster: '', user: identity.user, groups: identity.groups }, this.#clock());
    return l ? new ProxyError('LOCKED', `${identity.user} under ${l.id}: ${l.reason}`, `access is locked${l.reason ? `: ${l.reason}` : ''} (${l.id})`) : undefined;
  }

  /** Why a lock's subject is not one the policy knows (a configured identity prefix, a policy group, a cluster, a grant). */
  #unknownSubject(kind: LockKind, subject: string): string | undefined {
    const now = this.#clock();
    const bundles = [...this.#clusters.values()].flatMap((cr) => {
      const b = cr.store.current(now);
      return b ? [b.ruleSet] : [];
    });
    if (kind === 'cluster') return this.#clusters.has(subject) ? undefined : `no cluster ${subject} behind this proxy`;
    if (kind === 'grant') return bundles.some((rs) => rs.grants.some((g) => g.id === subject)) ? undefined : `no grant ${subject} in the policy`;
    if (kind === 'group') return bundles.some((rs) => rs.impersonable.groups.includes(subject)) ? undefined : `no grant or deny names group ${subject}`;
    const authn = this.opts.config.authn as { issuers?: { usernamePrefix?: string }[]; clientCertificates?: { usernamePrefix?: string } };
    const issuers = [...(authn.issuers ?? []).map((i) => i.usernamePrefix ?? ''), authn.clientCertificates?.usernamePrefix ?? ''].filter((p) => p !== '');
    return issuers.some((p) => subject.startsWith(p) && subject.length > p.length) ? undefined : `${subject} carries no identity provider's prefix (${issuers.join(', ')})`;
  }

  /** The context the proxy's break-glass endpoint runs in. */
  #breakGlassContext(): BreakGlassContext {
    return {
      clock: this.#clock,
      metrics: this.metrics,
      log: this.log,
      activations: this.activations,
      webhookUrl: this.opts.config.breakGlass.webhookUrl,
      webhookCa: this.#webhookCa,
    };
  }

  /** Checks that come before the pipeline: shutdown, the audit sink, request framing. */
  #preflight(req: Req): void {
    if (this.#closing) throw new ProxyError('SHUTTING_DOWN', 'shutting down');
    if (!this.audit.healthy && this.opts.config.audit.onFailure === 'deny') throw new ProxyError('AUDIT_UNAVAILABLE', 'audit sink failing');
    if (req.headers['content-length'] !== undefined && req.headers['transfer-encoding'] !== undefined) {
      throw new ProxyError('BAD_REQUEST', 'Content-Length together with Transfer-Encoding');
    }
    // Node keeps at most maxHeadersCount lines: at the limit some may be gone, so no check may look at the rest (SECURITY rule 20).
    if (req.rawHeaders.length >= 2 * MAX_HEADER_LINES) throw new ProxyError('TOO_MANY_HEADERS', `${req.rawHeaders.length / 2} header lines (at most ${MAX_HEADER_LINES - 1})`);
  }

  /**
   * The cluster whose host name the request is addressed to (Host, or :authority over HTTP/2;
   * port and case ignored), if per-cluster host names are configured. The host only picks the
   * cluster, as the /clusters/NAME prefix does; every decision stays bound to that cluster.
   */
  #hostCluster(req: Req): string | undefined {
    if (this.#hosts.size === 0) return undefined;
    const h = req.headers[':authority'] ?? req.headers.host;
    if (typeof h !== 'string') return undefined;
    return this.#hosts.get(h.replace(/:\d+$/, '').toLowerCase());
  }

  /**
   * The stages shared by ordinary requests and upgrades, in their fixed order: preflight, route,
   * authenticate, capture the bundle, parse, authorize. Throws the refusal; `byHost` is the cluster
   * the host name picked, if any.
   */
  async #admit(req: Req, ex: Exchange, isUpgrade: boolean, byHost: string | undefined): Promise<Admitted> {
    const st = ex.st;
    this.#preflight(req);
    const r = byHost !== undefined ? { cluster: byHost, target: req.url ?? '' } : route(req.url ?? '');
    if (!r) throw new ProxyError('NOT_FOUND', `no route for ${req.url ?? ''}`);
    const cr = this.#clusters.get(r.cluster);
    if (!cr) throw new ProxyError('NOT_FOUND', `unknown cluster ${r.cluster}`);
    st.cluster = r.cluster;
    const caller = await authenticateStage(this.#authn, { rawHeaders: req.rawHeaders, ...peerCert(req) }, this.#clock(), r.cluster);
    st.identity = caller;
    const now = this.#clock();
    // The request captures one bundle revision here and uses it throughout.
    const bundle = cr.store.current(now);
    if (!bundle) throw new ProxyError('NO_BUNDLE', `cluster ${r.cluster} has no valid bundle`);
    st.bundleRevision = bundle.revision;
    st.policyDigest = bundle.sourceDigest;
    if (bundle.commit !== undefined) st.policyCommit = bundle.commit;
    if (!isUpgrade && r.target.split('?')[0] === BREAK_GLASS_PATH) {
      const lock = this.#sessions?.locks.covering({ cluster: r.cluster, user: caller.user, groups: caller.groups }, now);
      if (lock) throw new ProxyError('LOCKED', `break-glass under ${lock.id}: ${lock.reason}`, `access is locked${lock.reason ? `: ${lock.reason}` : ''} (${lock.id})`);
      return { kind: 'break-glass', cr };
    }
    // `kubectl --as`: decided as kube does, never dropped and served as the caller (SECURITY rule 21).
    const asked = impersonationAsked(req.rawHeaders);
    const callerActs = this.activations.active(r.cluster, caller.user);
    const as = asked ? impersonate(asked, caller, bundle.index, now, new Set(callerActs.keys())) : undefined;
    const identity = as?.identity ?? caller;
    const parsed = parseRequestStage(req.method ?? '', r.target, isUpgrade);
    // An impersonated user holds only what it was asked to be: no break-glass activations.
    const admission = authorizeStage(parsed, identity, bundle, as ? new Map() : callerActs, now, st, as?.impersonation);
    // Locks (set through any replica) refuse what they cover, whatever the policy grants. Discovery
    // stays open (kube gives it to everyone authenticated, and it names no object), so kubectl can
    // show the lock's Status instead of failing on its API group list.
    if (this.#sessions && !this.#sessions.locks.loaded) throw new ProxyError('SESSION_STORE_UNAVAILABLE', 'locks not read from the store yet: no request is served until they are');
    const lock = !this.#sessions || isDiscovery(admission.attributes) ? undefined : this.#sessions.locks.covering({ cluster: r.cluster, user: identity.user, groups: identity.groups, grantId: admission.grant.id }, now) ?? (as ? this.#sessions?.locks.covering({ cluster: r.cluster, user: caller.user, groups: caller.groups }, now) : undefined);
    if (lock) throw new ProxyError('LOCKED', `locked by ${lock.id} (${lock.kind} ${lock.subject}, set by ${lock.setBy}): ${lock.reason}`, `access is locked${lock.reason ? `: ${lock.reason}` : ''} (${lock.id})`);
    ex.admitted(admission);
    // Decided for the caller as authenticated, before any impersonation, as kube's audit filter decides.
    if (this.#auditPolicy) st.auditDecision = auditDecision(this.#auditPolicy, as ? { ...admission.attributes, user: caller.user, groups: [...caller.groups, ALL_AUTHENTICATED] } : admission.attributes);
    return { kind: 'forward', cr, target: parsed.target, admission, longRunning: parsed.longRunning };
  }

  /** HTTP/2 requests reset by #limitH2Request: their audit record says so. */
  readonly #timedOut = new WeakSet<Req>();

  /**
   * SECURITY rule 15 for HTTP/2, which Node's requestTimeout does not cover: a request whose body
   * has not fully arrived within requestTimeoutMs is reset (audited as REQUEST_TIMEOUT). A request
   * without a body is complete with its headers and costs no timer.
   */
  #limitH2Request(req: Http2ServerRequest): void {
    const stream = req.stream;
    if (stream.endAfterHeaders) return;
    const timer = setTimeout(() => {
      if (req.complete || stream.closed) return;
      this.#timedOut.add(req);
      // debug, not warn: anyone can cause it, authenticated or not.
      this.log.debug({ path: req.url, timeoutMs: this.opts.config.limits.requestTimeoutMs }, 'HTTP/2 request body not received in time; stream reset');
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, this.opts.config.limits.requestTimeoutMs);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    stream.once('close', () => clearTimeout(timer));
  }

  /** The proxy's own unaudited endpoints (health, readiness, metrics); true when it answered. */
  #ops(path: string | undefined, res: Res): boolean {
    if (path === '/healthz' || path === '/livez') {
      res.end('ok');
      return true;
    }
    if (path === '/readyz') {
      const r = this.ready();
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain' });
      const lines = [...(r.ok ? ['ok'] : r.problems), ...r.warnings.map((w) => `warning: ${w}`)];
      res.end(`${lines.join('\n')}\n`);
      return true;
    }
    return false;
  }

  /** The metrics listener's requests: /metrics and the probes, nothing else. */
  async #onMetricsRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(await this.metrics.registry.metrics());
      return;
    }
    if (req.method === 'GET' && this.#ops(path, res)) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  /** An ordinary HTTP request (HTTP/1.1 or HTTP/2), from arrival to its audit record. */
  async #onRequest(req: Req, res: Res): Promise<void> {
    if (req.httpVersionMajor === 2) this.#limitH2Request(req as Http2ServerRequest);
    // On a cluster's own host name every path belongs to that cluster (its /healthz too).
    const byHost = this.#hostCluster(req);
    const path = byHost === undefined ? (req.url ?? '').split('?')[0] : undefined;
    // Synchronous: no await (and no microtask) before every request's own stages.
    if (this.#ops(path, res)) return;
    const ex = new Exchange(this.#host, req, req.httpVersionMajor === 2 ? 'http2' : 'http1', (e, auditId) => sendStatus(res, e, { 'audit-id': auditId }));
    const held = endAfterCommit(res, this.audit);
    if (this.console && (path === CONSOLE_PREFIX || path?.startsWith(`${CONSOLE_PREFIX}/`))) {
      try {
        this.#preflight(req);
      } catch (err) {
        return void ex.refuse(err);
      }
      return await this.console.serve(req, res, ex, path, () => held.release());
    }
    if (path?.startsWith(SESSIONS_PREFIX)) {
      try {
        if (!this.#sessions) throw new ProxyError('NOT_FOUND', 'sessions and locks are not configured on this proxy');
        this.#preflight(req);
      } catch (err) {
        return void ex.refuse(err);
      }
      if (path === LOCKS_ENDPOINT || path.startsWith(`${LOCKS_ENDPOINT}/`)) return await serveLockEndpoint(this.#sessions.lockContext, req, res, ex, path);
      if (path === REQUESTS_ENDPOINT || path.startsWith(`${REQUESTS_ENDPOINT}/`) || path.startsWith(ACTIVATIONS_ENDPOINT)) return await serveRequestEndpoint(this.#sessions.requestContext, req, res, ex, path);
      return await serveSessionEndpoint(this.#sessions.context, req, res, ex, path);
    }
    try {
      const admitted = await this.#admit(req, ex, false, byHost);
      if (admitted.kind === 'break-glass') return await serveBreakGlass(this.#breakGlassContext(), req, res, ex, admitted.cr.config.name, admitted.cr.store);
      const { cr, admission: a, target } = admitted;
      if (isSelfSubjectReview(a.attributes) && a.impersonate.extra[EXTRA_USER] !== undefined) {
        // `kubectl auth whoami` of a member the policy does not name shows who the caller is, not
        // MEMBER_USER, whom the proxy impersonates for it; a named user's review goes upstream, which
        // sees that very user (and shows what the proxy asserted).
        req.resume();
        res.writeHead(201, { 'content-type': 'application/json', 'audit-id': ex.auditId });
        res.end(JSON.stringify(selfSubjectReview(a.attributes.apiVersion, a.identity)));
        return ex.end(201, { reason: 'self-subject review answered by the proxy' });
      }
      if (isSelfAccessReview(a.attributes)) {
        const activations = this.activations;
        const ctx = {
          clock: this.#clock,
          activeBreakGlass: (user: string) => new Set(activations.active(cr.config.name, user).keys()),
          link: cr.link,
          authorization: cr.link.authorization(),
        };
        return await serveSelfReview(ctx, req, res, ex, a, target);
      }
      if (admitted.longRunning) {
        held.release();
        if (!ex.stream(a, () => fwd.cut())) throw new ProxyError('TOO_MANY_STREAMS', `limit ${this.opts.config.limits.maxLongRunningPerIdentity}`);
        // Long-running: no idle timeout on this HTTP/1.1 socket; it ends with access or the client.
        if (req.httpVersionMajor === 1) (req.socket as Socket).setTimeout(0);
      }
      const headers = buildUpstreamHeaders(req.rawHeaders, upstreamWho(cr, a, ex.auditId));
      const capture = admitted.longRunning ? undefined : bodyCapture(ex.st.auditDecision?.level);
      const hooks: ForwardHooks = {
        onResponse: (status) => ex.started(status),
        capture,
        onEnd: (o) => {
          if (capture) recordBodies(ex, capture, req);
          const timedOut = this.#timedOut.has(req);
          if (o.kind === 'upstream-error') ex.upstreamFailed(o.message, timedOut ? 'REQUEST_TIMEOUT' : 'UPSTREAM_FAILED');
          // A request reset for its timeout ends here too: the client's side is gone.
          else if (o.kind === 'aborted' && !ex.closeReason) ex.end(o.status, timedOut ? { streamEnd: 'client-closed', errorCode: 'REQUEST_TIMEOUT' } : { streamEnd: 'client-closed' });
          else ex.end(o.status);
        },
      };
      const fwd = admitted.longRunning ? cr.link.forwardLongRunning(req, res, target, headers, hooks) : cr.link.forward(req, res, target, headers, hooks);
    } catch (err) {
      // A refusal of a stage, or a bug of the proxy's own (INTERNAL): either way one Status, one record.
      ex.refuse(err);
    }
  }

  /**
   * Starts the recording of an exec or attach session. When it cannot be written: under
   * `audit.onFailure: deny` the session is refused (503, no recording, no session); under `serve`
   * it goes on unrecorded and its records say why.
   */
  #openRecording(ex: Exchange, a: Admission, target: string, transport: 'websocket' | 'spdy'): SessionRecorder | undefined {
    const cluster = a.bundle.cluster;
    const q = new URLSearchParams(target.split('?')[1] ?? '');
    const container = q.get('container') ?? '';
    try {
      const rc = this.opts.config.audit.recordings;
      if (rc === undefined) throw new Error('no recordings directory (set audit.recordings.dir, or audit.file)');
      const rec = SessionRecorder.open(
        rc.dir,
        {
          auditID: ex.auditId,
          cluster,
          user: (a.impersonation?.caller ?? a.identity).user,
          namespace: a.attributes.namespace,
          pod: a.attributes.name,
          ...(container ? { container } : {}),
          subresource: a.attributes.subresource,
          transport,
          tty: q.get('tty') === 'true' || q.get('tty') === '1',
          command: q.getAll('command'),
          recordInput: a.grant.recordInput === true,
        },
        this.#clock,
        rc.maxBytes,
      );
      ex.st.recording = rec.id;
      return rec;
    } catch (err) {
      const message = (err as Error).message;
      this.metrics.recordings.inc({ cluster, result: 'failed' });
      this.log.error({ auditID: ex.auditId, cluster, err: message, alert: true }, 'session recording cannot be written');
      if (this.opts.config.audit.onFailure === 'deny') throw new ProxyError('AUDIT_UNAVAILABLE', `session recording cannot be written: ${message}`);
      ex.st.recordingError = message;
      return undefined;
    }
  }

  /** Recordings being closed: their sessions' last records wait for them, and shutdown waits for those records. */
  readonly #pendingRecordings = new Set<Promise<void>>();

  #trackRecording(p: Promise<void>): void {
    this.#pendingRecordings.add(p);
    void p.finally(() => this.#pendingRecordings.delete(p));
  }

  /** The audit facts of a finished recording. */
  #recorded(cluster: string, r: RecordingResult): Partial<AuditFacts> {
    if (!r.ok) return { recordingError: r.error };
    this.metrics.recordings.inc({ cluster, result: 'written' });
    return { recordingSha256: r.sha256 };
  }

  /** A WebSocket or SPDY upgrade (exec, attach, port-forward), from arrival to its audit record. */
  async #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    // An agent opening its tunnel: authenticated by the tunnels, never a kubectl request.
    if (this.#tunnels && req.headers.upgrade?.toLowerCase() === TUNNEL_UPGRADE && (req.url ?? '').split('?')[0] === TUNNEL_PATH && this.#hostCluster(req) === undefined) {
      return this.#tunnels.accept(req, socket as TLSSocket, head);
    }
    const proto = upgradeProtocol(req.headers.upgrade);
    const ex = new Exchange(this.#host, req, proto ?? 'http1', (e, auditId) => {
      if (!socket.destroyed) sendStatusOnSocket(socket, e, { 'audit-id': auditId });
    });
    if (this.console && this.#hostCluster(req) === undefined && (req.url ?? '').startsWith(`${CONSOLE_PREFIX}/`)) {
      try {
        this.#preflight(req);
      } catch (err) {
        return void ex.refuse(err);
      }
      return await this.console.upgrade(req, socket, head, ex);
    }
    try {
      if (!proto) throw new ProxyError('BAD_REQUEST', `upgrade to ${req.headers.upgrade ?? ''} is not supported`);
      const admitted = await this.#admit(req, ex, true, this.#hostCluster(req));
      if (admitted.kind !== 'forward') throw new ProxyError('NOT_FOUND', 'no such upgrade');
      const { cr, admission: a, target } = admitted;
      if (!ex.stream(a, () => fwd.cut())) throw new ProxyError('TOO_MANY_STREAMS', 'limit');
      // Before anything goes upstream: a session that cannot be recorded is refused here (under onFailure: deny).
      const rec = isSession(a.attributes) ? this.#openRecording(ex, a, target, proto) : undefined;
      rec?.onFailure((err) => {
        this.metrics.recordings.inc({ cluster: cr.config.name, result: 'failed' });
        this.log.error({ auditID: ex.auditId, cluster: cr.config.name, err: err.message, alert: true }, 'session recording failed');
        if (this.opts.config.audit.onFailure === 'deny') this.streams.close(ex.auditId, 'recording-failed');
      });
      (socket as Socket).setTimeout?.(0);
      const headers = buildUpstreamHeaders(req.rawHeaders, upstreamWho(cr, a, ex.auditId), req.headers.upgrade);
      const ended = (o: UpgradeOutcome, recorded: Partial<AuditFacts>): void => {
        if (o.kind === 'upstream-error') ex.upstreamFailed(o.message, 'UPSTREAM_FAILED', recorded);
        else if (o.kind === 'early-bytes') ex.end(400, { errorCode: 'EARLY_BYTES', ...recorded });
        else if (o.kind === 'refused') ex.end(o.status, recorded);
        else ex.end(101, ex.closeReason ? recorded : { streamEnd: 'closed', ...recorded });
      };
      const fwd = cr.link.forwardUpgrade(req, socket, head, target, headers, req.headers.upgrade ?? proto, {
        onUpgraded: () => ex.started(101),
        // The session's last record names its recording's digest, so the record waits for the file.
        onEnd: (o) => {
          if (!rec) return ended(o, {});
          // The session is over: nothing may close it again (and relabel its stream-end) while its recording closes.
          this.streams.unregister(ex.auditId);
          this.#trackRecording(rec.close().then((r) => ended(o, this.#recorded(cr.config.name, r)), (err: unknown) => ended(o, { recordingError: String(err) })));
        },
        ...(rec ? { tap: rec } : {}),
      });
    } catch (err) {
      ex.refuse(err);
    }
  }
}

/** What sessions and locks share: one store, the services on it, and what their endpoints need. */
interface SharedState {
  readonly service: SessionService;
  readonly shared: SharedSessions;
  readonly context: SessionEndpointContext;
  readonly locks: RedisLocks;
  readonly lockContext: LockEndpointContext;
  readonly requestContext: RequestEndpointContext;
}

/** Reads the audit policy file; a bad one stops the proxy from starting, naming the file and every problem. */
function loadAuditPolicy(file: string): AuditPolicy {
  try {
    return parseAuditPolicy(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`audit.policyFile ${file}: ${(err as Error).message}`);
  }
}

/** What an ordinary request's level asks to collect: the request body from Request on, the response's at RequestResponse. */
function bodyCapture(level: AuditLevel | undefined): BodyCapture | undefined {
  if (level === 'Request') return { request: new BodyCollector() };
  if (level === 'RequestResponse') return { request: new BodyCollector(), response: new BodyCollector() };
  return undefined;
}

/** Puts the collected bodies (or why they are left out) on the request's state, for its ResponseComplete record. */
function recordBodies(ex: Exchange, capture: BodyCapture, req: Req): void {
  const omitted: string[] = [];
  const take = (kind: 'request' | 'response', c: BodyCollector | undefined, type: string | undefined, encoding: string | undefined): unknown => {
    if (!c) return undefined;
    const r = c.object(type, encoding);
    if ('object' in r) return r.object;
    if (r.omitted !== 'empty') omitted.push(`${kind}: ${r.omitted}`);
    return undefined;
  };
  const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);
  const request = take('request', capture.request, header(req.headers['content-type']), header(req.headers['content-encoding']));
  const response = take('response', capture.response, capture.responseType, capture.responseEncoding);
  const strip = ex.st.auditDecision?.omitManagedFields ? withoutManagedFields : (x: unknown) => x;
  if (request !== undefined) ex.st.requestObject = strip(request);
  if (response !== undefined) ex.st.responseObject = strip(response);
  if (omitted.length > 0) ex.st.bodyOmitted = omitted.join('; ');
}

/** Discovery (`/api`, `/apis`, `/version`, `/openapi`), as kube's system:discovery role allows it to everyone. */
function isDiscovery(a: Admission['attributes']): boolean {
  return !a.isResourceRequest && a.verb === 'get' && /^\/(api|apis|version|openapi)(\/|$)/.test(a.path);
}

/** exec and attach: the sessions that are recorded (port-forward carries no terminal). */
function isSession(a: Admission['attributes']): boolean {
  return a.isResourceRequest && a.apiGroup === '' && a.resource === 'pods' && (a.subresource === 'exec' || a.subresource === 'attach');
}

/** What admission led to: the break-glass endpoint, or a request to forward. */
type Admitted =
  | { readonly kind: 'break-glass'; readonly cr: ClusterRuntime }
  | { readonly kind: 'forward'; readonly cr: ClusterRuntime; readonly target: string; readonly admission: Admission; readonly longRunning: boolean };

/** Who the proxy asserts upstream for an admitted request, and its own credential (none through a tunnel). */
function upstreamWho(cr: ClusterRuntime, a: Admission, auditId: string): UpstreamIdentity {
  return { authorization: cr.link.authorization(), user: a.impersonate.user, groups: a.impersonate.groups, extra: a.impersonate.extra, auditId };
}

function peerCert(req: Req): { peerCertificate?: X509Certificate } {
  const sock = (req as Http2ServerRequest).stream?.session?.socket ?? req.socket;
  const tls = sock as TLSSocket | undefined;
  if (!tls?.authorized) return {};
  const c = tls.getPeerX509Certificate?.();
  return c ? { peerCertificate: c } : {};
}


/** The shared break-glass backend the configuration asks for, if any. */
function sharedActivations(c: ProxyConfig): SharedActivations | undefined {
  const bg = c.breakGlass;
  if (bg.stateDir !== undefined) return new DirectoryActivations(bg.stateDir);
  return bg.configMap && new ConfigMapActivations(configMapLocation(c, bg.configMap));
}

/** The shared revision floors the configuration asks for, if any. */
function revisionFloors(c: ProxyConfig): RevisionFloors | undefined {
  const rf = c.revisionFloor;
  if (rf.stateDir !== undefined) return new DirectoryFloors(rf.stateDir);
  return rf.configMap && new ConfigMapFloors(configMapLocation(c, rf.configMap));
}

/** A shared ConfigMap on one of the configured clusters, reached at its upstream URL with its own token. */
function configMapLocation(c: ProxyConfig, cm: { readonly cluster: string; readonly tokenFile: string; readonly namespace: string; readonly name: string }): ConfigMapLocation {
  const cluster = c.clusters.find((x) => x.name === cm.cluster);
  if (!cluster?.upstream) throw new Error(`cluster ${cm.cluster} of a shared ConfigMap is not configured with an upstream`);
  return { serverUrl: cluster.upstream.url, ca: readFileSync(cluster.upstream.caFile), tokenFile: cm.tokenFile, namespace: cm.namespace, name: cm.name };
}

/** Where a bundle ConfigMap is read: the cluster's upstream (config refuses a ConfigMap source for a cluster behind an agent). */
function bundleEndpoint(cr: ClusterRuntime): { serverUrl: string; ca: Buffer } {
  const u = cr.link.upstream;
  return u ? { serverUrl: u.base.href, ca: u.tls.ca } : { serverUrl: 'https://agent.invalid/', ca: Buffer.alloc(0) };
}

/** Reads trusted Ed25519 public keys (PEM) into a key-id map; the algorithm comes from here, never from an envelope. */
export function loadKeys(files: readonly string[]): ReadonlyMap<string, KeyObject> {
  return trustedKeysOf(files.map((f) => readFileSync(f)));
}
