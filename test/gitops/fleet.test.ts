import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCredentials, selectClusters, tokenKubeconfig } from '../../gitops/fleet.ts';
import type { FleetCluster } from '../../gitops/generated.ts';
import { GitopsError } from '../../gitops/gitops-error.ts';

const fleet: FleetCluster[] = [
  { name: 'dev', server: '', proxyUrl: '', labels: { env: 'dev', region: 'eu-west' } },
  { name: 'staging', server: '', proxyUrl: '', labels: { env: 'staging', region: 'eu-west' } },
  { name: 'prod-eu', server: '', proxyUrl: '', labels: { env: 'prod', region: 'eu-west' } },
  { name: 'prod-us', server: '', proxyUrl: '', labels: { env: 'prod', region: 'us-east' } },
];
const names = (sel: string | undefined) => selectClusters(fleet, sel).map((c) => c.name);
const code = (sel: string) => {
  try {
    selectClusters(fleet, sel);
    return 'none';
  } catch (e) {
    return e instanceof GitopsError ? e.code : 'other';
  }
};

test('selectors: names OR, labels AND, != and no selector', () => {
  const valid: [string | undefined, string[]][] = [
    [undefined, ['dev', 'staging', 'prod-eu', 'prod-us']],
    ['', ['dev', 'staging', 'prod-eu', 'prod-us']],
    ['dev', ['dev']],
    ['dev, staging', ['dev', 'staging']],
    ['env=prod', ['prod-eu', 'prod-us']],
    ['env==prod,region=eu-west', ['prod-eu']],
    ['env!=prod', ['dev', 'staging']],
    ['dev,env=prod,region=us-east', ['dev', 'prod-us']],
  ];
  for (const [sel, want] of valid) assert.deepEqual(names(sel), want, String(sel));
});

test('selectors: unknown names, unreadable terms and empty selections are errors with codes', () => {
  const invalid: [string, string][] = [
    ['prod', 'SELECTOR_UNKNOWN_CLUSTER'],
    ['env=qa', 'SELECTOR_EMPTY'],
    ['env in (prod)', 'SELECTOR_INVALID'],
  ];
  for (const [sel, want] of invalid) assert.equal(code(sel), want, sel);
  assert.throws(() => selectClusters(fleet, 'prod'), /did you mean prod-eu or prod-us\?/);
});

test('credentials: a plain map, objects, and the sandbox fleet file; relative paths are relative to the file', () => {
  assert.deepEqual([...parseCredentials({ dev: 'dev.kubeconfig', staging: '/abs/staging' }, '/etc/fleet')], [
    ['dev', { kubeconfig: '/etc/fleet/dev.kubeconfig' }],
    ['staging', { kubeconfig: '/abs/staging' }],
  ]);
  assert.deepEqual([...parseCredentials({ dev: { kubeconfig: 'k' } }, '/x')], [['dev', { kubeconfig: '/x/k' }]]);
  const sandbox = { version: 1, bin: { kubectl: '/bin/kubectl' }, clusters: [{ name: 'dev', server: 'https://127.0.0.1:1', adminKubeconfig: '/s/dev/admin.kubeconfig' }] };
  assert.deepEqual([...parseCredentials(sandbox, '/s')], [['dev', { kubeconfig: '/s/dev/admin.kubeconfig' }]]);
  assert.deepEqual([...parseCredentials({ clusters: { prod: { adminKubeconfig: 'p' } } }, '/y')], [['prod', { kubeconfig: '/y/p' }]]);
});

test('token kubeconfig: the proxy URL, the token, the CA only when one was given', () => {
  assert.deepEqual(tokenKubeconfig('dev', 'https://p.example/clusters/dev', 'tok', '-----BEGIN CERTIFICATE-----\nx\n'), {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'dev', cluster: { server: 'https://p.example/clusters/dev', 'certificate-authority-data': Buffer.from('-----BEGIN CERTIFICATE-----\nx\n').toString('base64') } }],
    users: [{ name: 'fleet-token', user: { token: 'tok' } }],
    contexts: [{ name: 'dev', context: { cluster: 'dev', user: 'fleet-token' } }],
    'current-context': 'dev',
  });
  // An empty CA variable in a workflow must not become an unreadable CA.
  assert.deepEqual((tokenKubeconfig('dev', 'https://p', 't', '\n') as { clusters: { cluster: object }[] }).clusters[0]?.cluster, { server: 'https://p' });
});
