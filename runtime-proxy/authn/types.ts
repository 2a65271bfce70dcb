import type { X509Certificate } from 'node:crypto';

/** Who a request comes from, after authentication. Names already carry their configured prefix. */
export interface Identity {
  /** Prefixed username, never empty, never `system:…`. */
  readonly user: string;
  /** Prefixed groups, de-duplicated, none `system:…`. */
  readonly groups: readonly string[];
  /** The token's issuer (`iss`), or `x509:<CA subject>` for client certificates. The proxy sends it upstream as `authenticated-by`. */
  readonly issuer: string;
  /**
   * When the credential stops being accepted, ms since the epoch: a token's `exp` plus the issuer's
   * clock tolerance (SECURITY rule 18), a certificate's `notAfter`. Long-running requests end then.
   */
  readonly expiresAt?: number;
  /** How the identity was proven: a token of the identity provider, a client certificate, or the proxy's own session (issued at login). */
  readonly method: 'oidc' | 'x509' | 'session';
}

/** Why authentication failed. Every failure is a 401 at the proxy; the message is safe to log, not to return. */
export type AuthnFailureCode = 'NO_CREDENTIALS' | 'INVALID_CREDENTIALS' | 'AMBIGUOUS_CREDENTIALS' | 'EXPIRED';

/** The outcome of authentication: positively an identity, or a coded failure. */
export type AuthnResult =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly code: AuthnFailureCode; readonly message: string };

/** What the authenticator looks at. */
export interface AuthnRequest {
  /** Node's `req.rawHeaders` (name, value, name, value …): doubled headers stay visible here, unlike in `req.headers`. */
  readonly rawHeaders: readonly string[];
  /** The client certificate, only when the TLS layer verified it against the configured client CA. */
  readonly peerCertificate?: X509Certificate;
}

/** Authenticates requests. Implementations never throw for bad input; they return a failure. */
export interface Authenticator {
  /**
   * Authenticates one request at time `now` (ms epoch).
   *
   * `cluster` is the target cluster (SECURITY rule 9). An issuer configured
   * with `clusters` only authenticates requests whose `cluster` is in that
   * list; if such an issuer's token arrives and `cluster` is not given, the
   * request is rejected (fail closed). The proxy must always pass the cluster
   * it routes to. `Identity.issuer` also names the issuer for auditing.
   */
  authenticate(req: AuthnRequest, now: number, cluster?: string): Promise<AuthnResult>;
}

/** The authenticator's configuration. */
export interface AuthnConfig {
  /** OIDC issuers whose tokens are accepted (people, CI workload identities…). Issuer URLs must be unique. */
  readonly issuers: readonly IssuerConfig[];
  /** Accept client certificates issued directly by this CA: CN → user, each O → a group, both prefixed. @default not accepted */
  readonly clientCertificates?: ClientCertificateConfig;
}

/** Client-certificate authentication. */
export interface ClientCertificateConfig {
  /** PEM file of the CA that issues client certificates. */
  readonly caFile: string;
  /** Prefix for the CN, e.g. `x509:`. Must not be empty or start with `system:`. */
  readonly usernamePrefix: string;
  /** Prefix for each O. Must not be empty or start with `system:`. */
  readonly groupsPrefix: string;
}

/** One trusted OIDC issuer. */
export interface IssuerConfig {
  /** The exact `iss` value; discovery is fetched from `<issuer>/.well-known/openid-configuration`. Must be https. */
  readonly issuer: string;
  /** Accepted `aud` values; the token must name at least one. Must not be empty. */
  readonly audiences: readonly string[];
  /** Accepted JWS algorithms, pinned here and never taken from the token. @default ['RS256', 'ES256'] */
  readonly algorithms?: readonly string[];
  /** Claim holding the username. @default 'sub' */
  readonly usernameClaim?: string;
  /** Prefix for the username, e.g. `oidc:` or `github:`. Required; must not be empty or start with `system:`. */
  readonly usernamePrefix: string;
  /** Claim holding the groups (a string or an array of strings). @default no groups are read */
  readonly groupsClaim?: string;
  /** Prefix for each group. @default usernamePrefix */
  readonly groupsPrefix?: string;
  /** Leeway for `exp`, `nbf` and `iat`. @default 30 */
  readonly clockToleranceSeconds?: number;
  /** PEM file of the CA(s) trusted for discovery and JWKS over TLS. @default the system trust store */
  readonly caFile?: string;
  /** JWKS URL. @default `jwks_uri` from discovery */
  readonly jwksUri?: string;
  /** If set, tokens of this issuer authenticate only requests to these clusters. @default every cluster */
  readonly clusters?: readonly string[];
}
