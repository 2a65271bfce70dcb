// The proxy configuration: table-driven valid / invalid cases.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../runtime-proxy/config.ts';

const BASE = `
tls: { certFile: tls.crt, keyFile: tls.key }
authn:
  issuers: [{ issuer: https://idp.example, audiences: [portcullis], usernamePrefix: "oidc:", caFile: idp-ca.pem }]
clusters:
  - name: dev
    upstream: { url: https://10.0.0.1:6443, caFile: dev-ca.pem, tokenFile: dev.token }
    bundle: { directory: generated/dev }
    trustedKeyFiles: [keys/a.pub.pem]
`;

describe('parseConfig', () => {
  it('GIVEN a minimal config WHEN parsed THEN defaults apply and paths resolve against the config directory', () => {
    const c = parseConfig(BASE, '/etc/portcullis');
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8443 });
    assert.equal(c.tls.certFile, '/etc/portcullis/tls.crt');
    assert.deepEqual(c.clusters[0]?.bundle, { kind: 'directory', path: '/etc/portcullis/generated/dev', pollIntervalMs: 5000 });
    assert.equal(c.clusters[0]?.upstream?.tokenFile, '/etc/portcullis/dev.token');
    assert.equal(c.audit.onFailure, 'deny');
    assert.equal((c.authn['issuers'] as { caFile: string }[])[0]?.caFile, '/etc/portcullis/idp-ca.pem');
    assert.equal(c.limits.maxLongRunningPerIdentity, 64);
  });

  it('GIVEN per-cluster host names WHEN parsed THEN they are kept lowercase; none by default', () => {
    assert.deepEqual(parseConfig(BASE, '/x').clusters[0]?.hostnames, []);
    const c = parseConfig(BASE.replace('name: dev', 'name: dev\n    hostnames: [Dev.K8s.Example, localhost]'), '/x');
    assert.deepEqual(c.clusters[0]?.hostnames, ['dev.k8s.example', 'localhost']);
  });

  it('GIVEN a break-glass ConfigMap WHEN parsed THEN it defaults to portcullis-system/portcullis-break-glass', () => {
    const c = parseConfig(`${BASE}breakGlass: { configMap: { cluster: dev, tokenFile: bg.token } }\n`, '/x');
    assert.deepEqual(c.breakGlass.configMap, { cluster: 'dev', tokenFile: '/x/bg.token', namespace: 'portcullis-system', name: 'portcullis-break-glass' });
  });

  it('GIVEN URL and ConfigMap bundle sources WHEN parsed THEN each becomes its kind', () => {
    const url = parseConfig(BASE.replace('{ directory: generated/dev }', '{ url: "https://bundles.example/dev", pollIntervalMs: 2000 }'), '/x');
    assert.deepEqual(url.clusters[0]?.bundle, { kind: 'url', url: 'https://bundles.example/dev', pollIntervalMs: 2000 });
    const cm = parseConfig(BASE.replace('{ directory: generated/dev }', '{ configMap: { tokenFile: ro.token } }'), '/x');
    assert.deepEqual(cm.clusters[0]?.bundle, { kind: 'configMap', tokenFile: '/x/ro.token', namespace: 'portcullis-system', name: 'portcullis-bundle', pollIntervalMs: 5000 });
  });

  const invalid: [string, string, RegExp][] = [
    ['a misspelt field', BASE.replace('tls:', 'tsl:'), /unknown field tsl|missing field tls/],
    ['an http upstream', BASE.replace('https://10.0.0.1:6443', 'http://10.0.0.1:6443'), /upstream\/url/],
    ['two upstream credentials', BASE.replace('tokenFile: dev.token', 'tokenFile: dev.token, clientCertFile: c.pem, clientKeyFile: c.key'), /exactly one of tokenFile/],
    ['no upstream credential', BASE.replace(', tokenFile: dev.token', ''), /exactly one of tokenFile/],
    ['two bundle sources', BASE.replace('{ directory: generated/dev }', '{ directory: a, url: "https://b" }'), /exactly one of directory, url or configMap/],
    ['no trusted key', BASE.replace('[keys/a.pub.pem]', '[]'), /trustedKeyFiles/],
    ['a bad cluster name', BASE.replace('name: dev', 'name: Dev_1'), /name/],
    ['a duplicate cluster', `${BASE}  - name: dev\n    upstream: { url: https://x, caFile: a, tokenFile: b }\n    bundle: { directory: d }\n    trustedKeyFiles: [k]\n`, /duplicate cluster dev/],
    ['a host name with a port', BASE.replace('name: dev', 'name: dev\n    hostnames: ["dev.k8s.example:443"]'), /hostnames/],
    ['an IP address as a host name', BASE.replace('name: dev', 'name: dev\n    hostnames: ["10.0.0.1"]'), /hostnames/],
    ['one host name for two clusters', `${BASE.replace('name: dev', 'name: dev\n    hostnames: [k8s.example]')}  - name: prod\n    hostnames: [K8S.example]\n    upstream: { url: https://x, caFile: a, tokenFile: b }\n    bundle: { directory: d }\n    trustedKeyFiles: [k]\n`, /k8s\.example already reaches cluster dev/],
    ['an unknown audit failure mode', `${BASE}audit: { onFailure: ignore }\n`, /onFailure/],
    ['not YAML', 'tls: [', /not valid YAML/],
    ['two break-glass stores', `${BASE}breakGlass: { stateDir: s, configMap: { cluster: dev, tokenFile: t } }\n`, /at most one of stateDir and configMap/],
    ['a break-glass ConfigMap on an unknown cluster', `${BASE}breakGlass: { configMap: { cluster: prod, tokenFile: t } }\n`, /prod is not a configured cluster/],
  ];
  for (const [name, text, re] of invalid) {
    it(`GIVEN ${name} WHEN parsed THEN a ConfigError says where`, () => {
      assert.throws(() => parseConfig(text, '/x'), (e: unknown) => e instanceof ConfigError && re.test(e.message));
    });
  }

  it('GIVEN several problems WHEN parsed THEN all are reported at once', () => {
    const text = BASE.replace(', tokenFile: dev.token', '').replace('{ directory: generated/dev }', '{ directory: a, url: "https://b" }');
    assert.throws(() => parseConfig(text, '/x'), (e: unknown) => e instanceof ConfigError && /tokenFile/.test(e.message) && /bundle/.test(e.message));
  });
});
