import { extractCredential } from '../authn/credentials.ts';
import type { AuthnRequest, AuthnResult, Authenticator, Identity } from '../identity.ts';
import { mintCredential, SESSION_CREDENTIAL_PREFIX, verifyCredential } from './session-credential.ts';
import type { Session, SharedSessions } from './session-store.ts';
import type { SessionLimitsRule } from '../../core/rule-set.ts';

/** How sessions behave (`sessions` in the proxy configuration). */
export interface SessionPolicy {
  /** Unused for this long, a session ends. */
  readonly idleTimeoutMs: number;
  /** A session ends this long after login, however much it is used. */
  readonly maxLifetimeMs: number;
  /** Issuers bound to clusters (`authn.issuers[].clusters`): a session from one reaches only those (SECURITY rule 9). */
  readonly issuerClusters: ReadonlyMap<string, readonly string[]>;
  /** The policy's shorter limits for a cluster (`SessionLimits`), from its current bundle. @default none */
  readonly limitsFor?: (cluster: string) => SessionLimitsRule | undefined;
}

/**
 * The proxy's own sessions: a login (an identity provider's token, verified as any request's)
 * becomes a session credential that plain kubectl sends as a bearer token. Checking one costs a
 * map lookup (an HMAC the first time a replica sees it) and writes nothing; the shared store
 * (session-store.ts) carries new sessions, revocations and uses between replicas.
 */
export class SessionService {
  /** Credentials whose MAC this replica already checked, with their session id. */
  readonly #verified = new Map<string, string>();
  /** One Identity object per live session, so the pipeline's per-identity checks run once. */
  readonly #identities = new Map<string, Identity>();
  readonly #ended: ((id: string, identity: Identity) => void)[] = [];

  constructor(
    private readonly shared: SharedSessions,
    private readonly key: Buffer,
    private readonly policy: SessionPolicy,
  ) {
    shared.onRevoked((id) => this.#drop(id));
  }

  /** Called when a session ends here (logout, idle, revocation heard from another replica): live streams close. */
  onEnded(fn: (id: string, identity: Identity) => void): void {
    this.#ended.push(fn);
  }

  /** A new session for an identity the identity provider just vouched for; throws SessionStoreError. */
  async create(identity: Identity, now: number): Promise<{ readonly credential: string; readonly session: Session }> {
    const { id, credential } = mintCredential(this.key);
    const session: Session = { id, user: identity.user, groups: [...identity.groups], issuer: identity.issuer, createdAt: now, expiresAt: now + this.policy.maxLifetimeMs, idleTimeoutMs: this.policy.idleTimeoutMs };
    await this.shared.create(session);
    this.shared.touch(id, now);
    return { credential, session };
  }

  /** Ends a session everywhere; throws SessionStoreError. */
  async revoke(id: string): Promise<void> {
    this.#drop(id);
    await this.shared.revoke(id);
  }

  /** The session an identity object stands for, when it is a session's. */
  sessionOf(identity: Identity): string | undefined {
    for (const [key, i] of this.#identities) if (i === identity) return key.split('\0')[0];
    return undefined;
  }

  /**
   * Session credentials are checked here; every other credential goes to `inner` (the identity
   * provider's tokens, client certificates). The same extraction as inner's, so a doubled or
   * mixed credential is refused alike.
   */
  authenticator(inner: Authenticator): Authenticator {
    return {
      authenticate: async (req: AuthnRequest, now: number, cluster?: string): Promise<AuthnResult> => {
        // Every other request pays one substring scan, not a second credential parse.
        if (!mentionsSession(req.rawHeaders)) return inner.authenticate(req, now, cluster);
        const cred = extractCredential(req.rawHeaders);
        if (cred.kind !== 'bearer' || !cred.token.startsWith(SESSION_CREDENTIAL_PREFIX)) return inner.authenticate(req, now, cluster);
        if (req.peerCertificate !== undefined) return { ok: false, code: 'AMBIGUOUS_CREDENTIALS', message: 'both a client certificate and a session credential' };
        return this.check(cred.token, now, cluster);
      },
    };
  }

  /** Checks a session credential at `now` for `cluster`. */
  async check(credential: string, now: number, cluster?: string): Promise<AuthnResult> {
    let id = this.#verified.get(credential);
    if (id === undefined) {
      id = verifyCredential(this.key, credential);
      if (id === undefined) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'session credential is forged or altered' };
      if (this.#verified.size >= 100_000) this.#verified.clear();
      this.#verified.set(credential, id);
    }
    if (!this.shared.healthy(now)) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'the session store has been unreachable for longer than the grace' };
    const s = this.shared.get(id) ?? (await this.shared.fetch(id).catch(() => undefined));
    if (!s) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'session ended (logged out, revoked or expired)' };
    if (now >= s.expiresAt) return { ok: false, code: 'EXPIRED', message: 'session reached its maximum lifetime' };
    const last = this.shared.lastSeen(id) ?? s.createdAt;
    if (now - last > s.idleTimeoutMs) {
      void this.revoke(id).catch(() => undefined);
      return { ok: false, code: 'EXPIRED', message: 'session ended after being idle' };
    }
    const bound = this.policy.issuerClusters.get(s.issuer);
    if (bound !== undefined && (cluster === undefined || !bound.includes(cluster))) {
      return { ok: false, code: 'INVALID_CREDENTIALS', message: `sessions of issuer ${s.issuer} are not accepted for cluster ${cluster ?? '(none given)'}` };
    }
    // The policy may shorten sessions on this cluster (SessionLimits): the session stays good elsewhere.
    const limits = cluster !== undefined ? this.policy.limitsFor?.(cluster) : undefined;
    let expiresAt = s.expiresAt;
    if (limits?.maxLifetimeSeconds !== undefined) {
      expiresAt = Math.min(expiresAt, s.createdAt + limits.maxLifetimeSeconds * 1000);
      if (now >= expiresAt) return { ok: false, code: 'EXPIRED', message: `session is older than cluster ${cluster ?? ''} allows (${limits.maxLifetimeSeconds}s); log in again` };
    }
    if (limits?.idleTimeoutSeconds !== undefined && now - last > limits.idleTimeoutSeconds * 1000) {
      return { ok: false, code: 'EXPIRED', message: `session was idle longer than cluster ${cluster ?? ''} allows (${limits.idleTimeoutSeconds}s); log in again` };
    }
    this.shared.touch(id, now);
    // One Identity per session (and per shorter lifetime), so a stream's deadline is the right one.
    const key = expiresAt === s.expiresAt ? id : `${id}\0${expiresAt}`;
    let identity = this.#identities.get(key);
    if (!identity) {
      identity = Object.freeze({ user: s.user, groups: Object.freeze([...s.groups]), issuer: s.issuer, expiresAt, method: 'session' as const });
      this.#identities.set(key, identity);
    }
    return { ok: true, identity };
  }

  #drop(id: string): void {
    for (const [c, v] of this.#verified) if (v === id) this.#verified.delete(c);
    for (const [key, identity] of this.#identities) {
      if (key !== id && !key.startsWith(`${id}\0`)) continue;
      this.#identities.delete(key);
      for (const fn of this.#ended) fn(id, identity);
    }
  }
}

/** `pcs1.` as it appears in a header: plain (Authorization), or base64url in the WebSocket bearer subprotocol. */
const PLAIN = SESSION_CREDENTIAL_PREFIX;
const ENCODED = Buffer.from(SESSION_CREDENTIAL_PREFIX).toString('base64url').slice(0, 6);

/** Whether any header value could carry a session credential (a cheap pre-check; extractCredential decides). */
function mentionsSession(rawHeaders: readonly string[]): boolean {
  for (let i = 1; i < rawHeaders.length; i += 2) {
    const v = rawHeaders[i] ?? '';
    if (v.includes(PLAIN) || v.includes(ENCODED)) return true;
  }
  return false;
}
