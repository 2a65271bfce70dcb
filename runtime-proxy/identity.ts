/** The authentication contract the pipeline codes against; implemented by `runtime-proxy/authn`. */
export type { AuthnRequest, AuthnResult, Authenticator, Identity } from './authn/index.ts';
