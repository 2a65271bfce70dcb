import { decodeJwt } from 'jose';
import { ClientCertVerifier } from './client-cert.ts';
import { extractCredential } from './credentials.ts';
import { IssuerVerifier } from './oidc-issuer.ts';
import type { AuthnConfig, AuthnRequest, AuthnResult, Authenticator } from './types.ts';

/**
 * Builds the proxy's authenticator. Exactly one credential must be presented:
 * a bearer token (header or WebSocket subprotocol) from a configured issuer, or
 * a verified client certificate when those are enabled. Authentication only
 * succeeds positively; every other path is a coded failure.
 */
export function createAuthenticator(config: AuthnConfig): Authenticator {
  const byIssuer = new Map<string, IssuerVerifier>();
  for (const ic of config.issuers) {
    if (byIssuer.has(ic.issuer)) throw new Error(`issuer ${ic.issuer} is configured twice`);
    byIssuer.set(ic.issuer, new IssuerVerifier(ic));
  }
  const certs = config.clientCertificates ? new ClientCertVerifier(config.clientCertificates) : undefined;

  return {
    async authenticate(req: AuthnRequest, now: number, cluster?: string): Promise<AuthnResult> {
      const cred = extractCredential(req.rawHeaders);
      if (cred.kind === 'error') return { ok: false, code: cred.code, message: cred.message };
      const cert = certs !== undefined ? req.peerCertificate : undefined;
      if (cred.kind === 'none') {
        if (cert !== undefined && certs !== undefined) return certs.verify(cert, now);
        return { ok: false, code: 'NO_CREDENTIALS', message: 'no bearer token or client certificate' };
      }
      if (cert !== undefined) return { ok: false, code: 'AMBIGUOUS_CREDENTIALS', message: 'both a client certificate and a bearer token' };
      // Unverified peek, only to choose which issuer's keys and rules verify it.
      let iss: unknown;
      try {
        iss = decodeJwt(cred.token).iss;
      } catch {
        return { ok: false, code: 'INVALID_CREDENTIALS', message: 'bearer token is not a JWT' };
      }
      const verifier = typeof iss === 'string' ? byIssuer.get(iss) : undefined;
      if (verifier === undefined) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'token issuer is not trusted' };
      const allowed = verifier.config.clusters;
      if (allowed !== undefined && (cluster === undefined || !allowed.includes(cluster))) {
        return { ok: false, code: 'INVALID_CREDENTIALS', message: `issuer ${verifier.config.issuer} is not accepted for cluster ${cluster ?? '(none given)'}` };
      }
      return verifier.verify(cred.token, now);
    },
  };
}
