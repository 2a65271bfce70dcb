/** Authentication for the runtime proxy: OIDC bearer tokens (people and CI workloads) and client certificates. */
export { createAuthenticator } from './authenticator.ts';
export { BEARER_PROTOCOL_PREFIX, extractCredential, type ExtractedCredential } from './credentials.ts';
export { ASYMMETRIC_ALGORITHMS, validateIssuerConfig } from './oidc-issuer.ts';
export type {
  AuthnConfig,
  AuthnFailureCode,
  AuthnRequest,
  AuthnResult,
  Authenticator,
  ClientCertificateConfig,
  Identity,
  IssuerConfig,
} from './types.ts';
