/**
 * A real OIDC issuer for the sandbox and the demo (the `oidc-provider`
 * package on loopback). Lives with the test support for now.
 */
export { createTestCa, startOidcProvider, type TestCa, type TestOidcProvider } from '../test/support/oidc.ts';
