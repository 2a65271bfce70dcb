import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, customFetch, errors, jwtVerify, type JWTPayload } from 'jose';
import { httpsFetcher } from './private/https-fetch.ts';
import { checkName, checkPrefix } from './names.ts';
import type { AuthnResult, IssuerConfig } from './types.ts';

/** Algorithms an issuer may be configured with: asymmetric only, so a public JWKS can never double as an HMAC secret. */
export const ASYMMETRIC_ALGORITHMS: ReadonlySet<string> = new Set([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
]);

const DEFAULT_ALGORITHMS = ['RS256', 'ES256'] as const;
/** How long a failed discovery is remembered before the next request retries it. */
const DISCOVERY_RETRY_MS = 2_000;

/**
 * Verifies tokens of one OIDC issuer: discovery and JWKS fetched lazily from
 * the issuer over TLS trusting its CA; algorithms pinned; `iss`, `aud`, `exp`
 * (required) and `nbf` checked with the configured leeway; names prefixed and
 * `system:` refused. Mirrors the checks of k8s.io/apiserver's
 * plugin/pkg/authenticator/token/oidc (username/groups claims and prefixes).
 */
export class IssuerVerifier {
  readonly config: IssuerConfig;
  private readonly algorithms: string[];
  private readonly fetcher: ReturnType<typeof httpsFetcher>;
  private keySet: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  constructor(config: IssuerConfig) {
    validateIssuerConfig(config);
    this.config = config;
    this.algorithms = [...(config.algorithms ?? DEFAULT_ALGORITHMS)];
    this.fetcher = httpsFetcher(config.caFile !== undefined ? readFileSync(config.caFile, 'utf8') : undefined);
  }

  /** Verifies `token` (whose unverified `iss` chose this issuer) at time `now`. */
  async verify(token: string, now: number): Promise<AuthnResult> {
    const c = this.config;
    let jwks: ReturnType<typeof createRemoteJWKSet>;
    try {
      jwks = await this.jwks();
    } catch (err) {
      return { ok: false, code: 'INVALID_CREDENTIALS', message: `issuer ${c.issuer} unavailable: ${message(err)}` };
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: c.issuer,
        audience: [...c.audiences],
        algorithms: this.algorithms,
        clockTolerance: c.clockToleranceSeconds ?? 30,
        currentDate: new Date(now),
        requiredClaims: ['iss', 'aud', 'exp'],
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { ok: false, code: 'EXPIRED', message: 'token expired' };
      return { ok: false, code: 'INVALID_CREDENTIALS', message: `token rejected: ${message(err)}` };
    }
    return this.identity(payload);
  }

  private identity(payload: JWTPayload): AuthnResult {
    const c = this.config;
    const usernameClaim = c.usernameClaim ?? 'sub';
    const raw = payload[usernameClaim];
    if (typeof raw !== 'string' || raw === '') {
      return { ok: false, code: 'INVALID_CREDENTIALS', message: `claim ${usernameClaim} is missing, empty or not a string` };
    }
    // Mirrors kube's OIDC authenticator: an email username needs a verified email when the claim is present.
    if (usernameClaim === 'email' && payload.email_verified !== undefined && payload.email_verified !== true) {
      return { ok: false, code: 'INVALID_CREDENTIALS', message: 'email is not verified' };
    }
    const user = checkName(raw, c.usernamePrefix);
    if (!user.ok) return { ok: false, code: 'INVALID_CREDENTIALS', message: `username: ${user.why}` };
    const groups: string[] = [];
    if (c.groupsClaim !== undefined) {
      const g = payload[c.groupsClaim];
      // kube accepts a single string or an array of strings; anything else fails authentication.
      const list = g === undefined ? [] : typeof g === 'string' ? [g] : Array.isArray(g) ? g : null;
      if (list === null || !list.every((x): x is string => typeof x === 'string')) {
        return { ok: false, code: 'INVALID_CREDENTIALS', message: `claim ${c.groupsClaim} is not a string or an array of strings` };
      }
      for (const name of list) {
        const r = checkName(name, c.groupsPrefix ?? c.usernamePrefix);
        if (!r.ok) return { ok: false, code: 'INVALID_CREDENTIALS', message: `group: ${r.why}` };
        if (!groups.includes(r.name)) groups.push(r.name);
      }
    }
    const exp = payload.exp;
    // The credential is accepted until exp plus the clock tolerance jwtVerify allowed: every later check
    // (the pipeline's, stream deadlines, the credential cache) honours that same leeway (SECURITY rule 18).
    const expiresAt = typeof exp === 'number' ? (exp + (c.clockToleranceSeconds ?? 30)) * 1000 : undefined;
    return {
      ok: true,
      identity: { user: user.name, groups, issuer: c.issuer, method: 'oidc', ...(expiresAt !== undefined ? { expiresAt } : {}) },
    };
  }

  /**
   * Discovery then JWKS, memoised on success. A failed discovery is remembered
   * for DISCOVERY_RETRY_MS, so a flood of tokens naming a down issuer does not
   * turn into a flood of discovery requests; after that the next request retries.
   */
  private jwks(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (!this.keySet) {
      const attempt = this.discoverJwksUri().then((uri) =>
        createRemoteJWKSet(new URL(uri), { [customFetch]: this.fetcher, cooldownDuration: 30_000, cacheMaxAge: 600_000 }),
      );
      this.keySet = attempt;
      attempt.catch(() => {
        setTimeout(() => {
          if (this.keySet === attempt) this.keySet = undefined;
        }, DISCOVERY_RETRY_MS).unref();
      });
    }
    return this.keySet;
  }

  private async discoverJwksUri(): Promise<string> {
    const c = this.config;
    if (c.jwksUri !== undefined) return c.jwksUri;
    const url = `${c.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const res = await this.fetcher(url, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`discovery answered ${res.status}`);
    const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
    // OIDC Discovery 1.0 §4.3: the document's issuer must be exactly the one we asked.
    if (doc.issuer !== c.issuer) throw new Error(`discovery names issuer ${String(doc.issuer)}`);
    if (typeof doc.jwks_uri !== 'string' || !doc.jwks_uri.startsWith('https://')) throw new Error('discovery has no https jwks_uri');
    return doc.jwks_uri;
  }
}

/** Throws on a configuration that could weaken authentication. */
export function validateIssuerConfig(c: IssuerConfig): void {
  const where = `issuer ${c.issuer}`;
  let u: URL;
  try {
    u = new URL(c.issuer);
  } catch {
    throw new Error(`${where}: not a URL`);
  }
  if (u.protocol !== 'https:') throw new Error(`${where}: must be https`);
  if (c.audiences.length === 0 || c.audiences.some((a) => a === '')) throw new Error(`${where}: audiences must be non-empty`);
  for (const alg of c.algorithms ?? DEFAULT_ALGORITHMS) {
    if (!ASYMMETRIC_ALGORITHMS.has(alg)) throw new Error(`${where}: algorithm ${alg} is not allowed (asymmetric JWS algorithms only)`);
  }
  if ((c.algorithms ?? DEFAULT_ALGORITHMS).length === 0) throw new Error(`${where}: algorithms must not be empty`);
  checkPrefix(c.usernamePrefix, `${where}: usernamePrefix`);
  if (c.groupsPrefix !== undefined) checkPrefix(c.groupsPrefix, `${where}: groupsPrefix`);
  const tol = c.clockToleranceSeconds ?? 30;
  if (!(tol >= 0 && tol <= 300)) throw new Error(`${where}: clockToleranceSeconds must be within 0…300`);
  if (c.jwksUri !== undefined && !c.jwksUri.startsWith('https://')) throw new Error(`${where}: jwksUri must be https`);
  if (c.clusters !== undefined && c.clusters.length === 0) throw new Error(`${where}: clusters, when set, must name at least one cluster`);
}

function message(err: unknown): string {
  return err instanceof Error ? (err as Error & { code?: string }).code ?? err.message : String(err);
}
