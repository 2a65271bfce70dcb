// The `console:` section of the proxy configuration.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../runtime-proxy/config.ts';

const BASE = `
tls: { certFile: tls.crt, keyFile: tls.key }
authn:
  issuers: [{ issuer: https://idp.example, audiences: [portcullis-cli], usernamePrefix: "oidc:" }]
clusters:
  - name: dev
    upstream: { url: https://10.0.0.1:6443, caFile: dev-ca.pem, tokenFile: dev.token }
    bundle: { directory: generated/dev }
    trustedKeyFiles: [keys/a.pub.pem]
`;
const SESSIONS = `sessions: { store: { url: "redis://r:6379" }, keyFile: s.key, login: { issuer: https://idp.example, clientId: portcullis-cli } }\n`;

describe('the console configuration', () => {
  it('GIVEN no console section THEN there is no console', () => {
    assert.equal(parseConfig(`${BASE}${SESSIONS}`, '/etc/p').console, undefined);
  });

  it('GIVEN a console with a terminal THEN the defaults apply and paths resolve against the config directory', () => {
    const c = parseConfig(`${BASE}${SESSIONS}console: { terminal: { kubectl: bin/kubectl } }\n`, '/etc/p');
    assert.deepEqual(c.console, { terminal: { kubectl: '/etc/p/bin/kubectl', bwrap: '/usr/bin/bwrap', dir: join(tmpdir(), 'portcullis-console-terminals'), uid: 65534, idleTimeoutMs: 900_000, maxPerUser: 4 } });
    assert.deepEqual(parseConfig(`${BASE}${SESSIONS}console: {}\n`, '/etc/p').console, {});
  });

  const invalid: [string, RegExp][] = [
    ['console: {}\n', /the console needs sessions/],
    [`${SESSIONS}console: { terminal: {} }\n`, /kubectl/],
    [`${SESSIONS}console: { terminal: { kubectl: k, uid: 0 } }\n`, /uid/],
    [`${SESSIONS}console: { shell: true }\n`, /shell|additional/],
  ];
  for (const [extra, re] of invalid) {
    it(`GIVEN ${JSON.stringify(extra.trim())} THEN the configuration is refused (${re.source})`, () => {
      assert.throws(() => parseConfig(`${BASE}${extra}`, '/x'), (e: unknown) => e instanceof ConfigError && re.test(e.message));
    });
  }
});
