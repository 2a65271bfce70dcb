/** `portcullis kubeconfig`: a context for each reachable cluster, and only those. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { parse } from 'yaml';
import { ClientError } from '../../client/client-error.ts';
import { decodeRuleSet, type Grant, type RuleSet } from '../../core/index.ts';
import { registerClientCommands } from '../../client/cli.ts';
import { kubeconfigCommand } from '../../client/kubeconfig-command.ts';
import { buildKubeconfig, serverFromTemplate, reachableClusters, renderKubeconfig, type FleetFile, type Kubeconfig } from '../../client/kubeconfig.ts';
import { getTestFleet } from '../support/fleet.ts';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const fleet: FleetFile = {
  clusters: [
    { name: 'prod-eu', server: 'https://10.0.0.3:6443', proxyUrl: 'https://prod-eu.proxy.example:8443', labels: { env: 'prod' } },
    { name: 'dev', server: 'https://10.0.0.1:6443', proxyUrl: 'https://dev.proxy.example:8443/', labels: { env: 'dev' } },
    { name: 'staging', server: 'https://10.0.0.2:6443', proxyUrl: 'https://proxy.example:8443/clusters/staging', labels: { env: 'staging' } },
    { name: 'lab', server: 'https://10.0.0.4:6443', proxyUrl: 'https://lab.proxy.example:8443', labels: { env: 'lab' } },
  ],
};

const read = [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }];
const grant = (id: string, subjects: Grant['subjects'], conditions: Grant['conditions'] = {}): Grant => ({
  id,
  source: { file: 'policies/fleet.ts', line: 1 },
  subjects,
  rules: read,
  scope: { kind: 'namespaces', namespaces: ['app'] },
  conditions,
});
const ruleSet = (cluster: string, grants: Grant[], denies: RuleSet['denies'] = []): RuleSet => ({
  apiVersion: 'portcullis.dev/v1',
  kind: 'RuleSet',
  cluster,
  grants,
  denies,
  impersonable: { users: [], groups: [] },
});
const ruleSets = new Map<string, RuleSet>([
  ['dev', ruleSet('dev', [grant('devs-read', [{ kind: 'Group', name: 'oidc:devs' }])])],
  [
    'staging',
    ruleSet('staging', [
      grant('alice-ended', [{ kind: 'User', name: 'oidc:alice' }], { expires: '2026-01-01T00:00:00Z' }),
      grant('sre-window', [{ kind: 'Group', name: 'oidc:sre' }], { windows: [{ days: ['mon'], start: '09:00', end: '17:00', timeZone: 'UTC' }] }),
    ]),
  ],
  [
    'prod-eu',
    ruleSet(
      'prod-eu',
      [grant('devs-read', [{ kind: 'Group', name: 'oidc:devs' }]), grant('sre-breakglass', [{ kind: 'Group', name: 'oidc:sre' }], { breakGlass: { maxDurationSeconds: 3600, notify: [] } })],
      [
        {
          id: 'nobody-but-sre',
          source: { file: 'policies/fleet.ts', line: 9 },
          subjects: 'everyone',
          except: [{ kind: 'Group', name: 'oidc:sre' }],
          rules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }],
          scope: { kind: 'cluster' },
        },
      ],
    ),
  ],
  // lab grants to alice, but is mislabelled: a rule set for another cluster never counts.
  ['lab', ruleSet('dev', [grant('alice-lab', [{ kind: 'User', name: 'oidc:alice' }])])],
]);
const login = { issuerUrl: 'https://login.example', clientId: 'portcullis' };

describe('reachableClusters', () => {
  it('GIVEN alice in devs WHEN computing THEN only dev (staging grant ended, prod-eu denies everything to non-sre, lab rule set is for another cluster)', () => {
    assert.deepEqual(reachableClusters({ user: 'oidc:alice', groups: ['oidc:devs'] }, fleet, ruleSets, NOW), ['dev']);
  });

  it('GIVEN alice before her staging grant expires THEN staging too', () => {
    assert.deepEqual(reachableClusters({ user: 'oidc:alice', groups: ['oidc:devs'] }, fleet, ruleSets, Date.parse('2025-12-01T00:00:00Z')), ['dev', 'staging']);
  });

  it('GIVEN an sre THEN staging (window) and prod-eu (break-glass, excepted from the deny)', () => {
    assert.deepEqual(reachableClusters({ user: 'oidc:bob', groups: ['oidc:sre'] }, fleet, ruleSets, NOW), ['prod-eu', 'staging']);
  });

  it('GIVEN unprefixed names THEN nothing is reachable', () => {
    assert.deepEqual(reachableClusters({ user: 'alice', groups: ['devs'] }, fleet, ruleSets, NOW), []);
  });
});

describe('buildKubeconfig', () => {
  const build = (proxyUrl?: string) =>
    buildKubeconfig({
      identity: { user: 'oidc:bob', groups: ['oidc:sre', 'oidc:devs'] },
      fleet,
      ruleSets,
      login,
      now: NOW,
      proxyCaPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      ...(proxyUrl ? { proxyUrl } : {}),
    });

  it('GIVEN bob in sre and devs THEN one context per reachable cluster, each at its proxyUrl as fleet.json gives it (a host of its own, or the /clusters prefix), the proxy CA, one exec user', () => {
    const k = build();
    assert.deepEqual(k.contexts, [
      { name: 'dev', context: { cluster: 'dev', user: 'portcullis' } },
      { name: 'prod-eu', context: { cluster: 'prod-eu', user: 'portcullis' } },
      { name: 'staging', context: { cluster: 'staging', user: 'portcullis' } },
    ]);
    assert.deepEqual(
      k.clusters.map((c) => c.cluster.server),
      ['https://dev.proxy.example:8443', 'https://prod-eu.proxy.example:8443', 'https://proxy.example:8443/clusters/staging'],
    );
    assert.ok(k.clusters.every((c) => Buffer.from(String(c.cluster['certificate-authority-data']), 'base64').toString().includes('BEGIN CERTIFICATE')));
    assert.equal(k['current-context'], 'dev');
    const exec = k.users[0]?.user.exec as { command: string; args: string[]; apiVersion: string };
    assert.equal(exec.apiVersion, 'client.authentication.k8s.io/v1');
    assert.deepEqual([exec.command, ...exec.args], [
      'kubectl', 'oidc-login', 'get-token', '--oidc-issuer-url=https://login.example', '--oidc-client-id=portcullis', '--oidc-extra-scope=groups',
    ]);
    // The kube-apiserver address never appears: everything goes through the proxy.
    assert.ok(!JSON.stringify(k).includes('10.0.0.'));
  });

  it('GIVEN --proxy-url THEN it overrides fleet.json', () => {
    assert.deepEqual(build('https://p.internal/').clusters.map((c) => c.cluster.server), [
      'https://p.internal/clusters/dev', 'https://p.internal/clusters/prod-eu', 'https://p.internal/clusters/staging',
    ]);
  });

  it('GIVEN the same input twice THEN the same object', () => {
    assert.deepEqual(build(), build());
  });

  it('GIVEN --host-template THEN each cluster is its own host at the root; a template without {cluster} in the host is refused', () => {
    const k = buildKubeconfig({ identity: { user: 'oidc:bob', groups: ['oidc:sre', 'oidc:devs'] }, fleet, ruleSets, login, now: NOW, hostTemplate: 'https://{cluster}.k8s.example:8443' });
    assert.deepEqual(k.clusters.map((c) => c.cluster.server), ['https://dev.k8s.example:8443', 'https://prod-eu.k8s.example:8443', 'https://staging.k8s.example:8443']);
    for (const bad of ['https://k8s.example/{cluster}', 'http://{cluster}.k8s.example', 'https://k8s.example', 'not a url {cluster}']) {
      assert.throws(() => serverFromTemplate(bad, 'dev'), /--host-template/, bad);
    }
  });
});

describe('portcullis kubeconfig (CLI)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-kubeconfig-'));
    writeFileSync(join(dir, 'fleet.json'), JSON.stringify({ ...fleet, identityProviders: [{ issuer: 'https://login.example', usernamePrefix: 'oidc:' }, { issuer: 'https://token.actions.githubusercontent.com', usernamePrefix: 'github:' }] }));
    for (const [name, rs] of ruleSets) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'rules.json'), JSON.stringify(rs));
    }
    writeFileSync(join(dir, 'proxy-ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('GIVEN generated/ WHEN running the command with --out THEN it writes the kubeconfig (mode 600) for the reachable clusters', async () => {
    const program = new Command().exitOverride();
    registerClientCommands(program);
    const out = join(dir, 'kubeconfig.yaml');
    await program.parseAsync(['kubeconfig', '--user', 'oidc:alice', '--group', 'oidc:devs', '--generated', dir, '--proxy-ca', join(dir, 'proxy-ca.pem'), '--out', out], { from: 'user' });
    const k = parse(readFileSync(out, 'utf8')) as Kubeconfig;
    assert.deepEqual(k.contexts.map((c) => c.name), ['dev']);
    assert.equal(k.clusters[0]?.cluster.server, 'https://dev.proxy.example:8443');
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.ok(JSON.stringify(k.users).includes('--oidc-issuer-url=https://login.example'));
  });

  it('GIVEN nothing granted THEN exit 1 with a hint about prefixes', () => {
    assert.throws(
      () => kubeconfigCommand({ user: 'alice', group: [], generated: dir, clientId: 'portcullis', issuerUrl: 'https://login.example' }, NOW),
      (e: unknown) => e instanceof ClientError && e.code === 'NO_ACCESS' && /prefix/.test(e.message),
    );
  });

  it('GIVEN no fleet.json THEN exit 2 saying to compile', () => {
    assert.throws(
      () => kubeconfigCommand({ user: 'oidc:alice', group: [], generated: join(dir, 'nope'), clientId: 'portcullis' }, NOW),
      (e: unknown) => e instanceof ClientError && e.code === 'BAD_INPUT' && /compile/.test(e.message),
    );
  });

  it('GIVEN a github: workload THEN the issuer comes from the matching identity provider', () => {
    const rs = JSON.parse(readFileSync(join(dir, 'dev', 'rules.json'), 'utf8')) as RuleSet;
    const ci = 'github:repo:acme/app:ref:refs/heads/main';
    writeFileSync(join(dir, 'dev', 'rules.json'), JSON.stringify({ ...rs, grants: [...rs.grants, grant('ci', [{ kind: 'User', name: ci }])] }));
    const text = kubeconfigCommand({ user: ci, group: [], generated: dir, clientId: 'portcullis' }, NOW);
    assert.match(text, /--oidc-issuer-url=https:\/\/token\.actions\.githubusercontent\.com/);
    writeFileSync(join(dir, 'dev', 'rules.json'), JSON.stringify(rs));
  });
});

describe('portcullis kubeconfig over the committed generated/ (the compiler\'s real output format)', () => {
  const generated = fileURLToPath(new URL('../../generated/', import.meta.url));
  it('GIVEN a subject of a dev grant WHEN running the command on generated/ THEN dev is a context, served through fleet.json\'s proxyUrl', (t) => {
    if (!existsSync(join(generated, 'fleet.json'))) return t.skip('no generated/ yet');
    const rs = decodeRuleSet(readFileSync(join(generated, 'dev', 'rules.json'), 'utf8'));
    const subject = rs.grants.find((g) => !g.conditions.expires)?.subjects[0];
    assert.ok(subject, 'dev has a grant');
    const opts = subject.kind === 'User' ? { user: subject.name, group: [] } : { user: 'oidc:nobody', group: [subject.name] };
    const k = parse(kubeconfigCommand({ ...opts, generated, clientId: 'portcullis' }, Date.now())) as Kubeconfig;
    const fleetJson = JSON.parse(readFileSync(join(generated, 'fleet.json'), 'utf8')) as FleetFile;
    const dev = fleetJson.clusters.find((c) => c.name === 'dev');
    assert.ok(k.contexts.some((c) => c.name === 'dev'));
    assert.equal(k.clusters.find((c) => c.name === 'dev')?.cluster.server, dev?.proxyUrl);
    assert.equal(dev?.proxyUrl, 'https://dev.portcullis.acme.example', 'the example addresses each cluster by a host name of its own');
  });
});

describe('portcullis kubeconfig read by the real kubectl', () => {
  it('GIVEN the written kubeconfig WHEN kubectl lists contexts and resolves one THEN it sees exactly the reachable clusters behind the proxy, and runs the exec plugin for credentials', async () => {
    const sandbox = await getTestFleet();
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-kubeconfig-e2e-'));
    try {
      const file = join(dir, 'config');
      const k = buildKubeconfig({ identity: { user: 'oidc:bob', groups: ['oidc:sre', 'oidc:devs'] }, fleet, ruleSets, login, now: NOW, proxyCaPem: sandbox.cluster('dev').caPem });
      writeFileSync(file, renderKubeconfig(k), { mode: 0o600 });
      const contexts = await sandbox.kubectl(['config', 'get-contexts', '-o', 'name'], { kubeconfig: file });
      assert.equal(contexts.code, 0, contexts.stderr);
      assert.deepEqual(contexts.stdout.trim().split('\n'), ['dev', 'prod-eu', 'staging']);
      const server = await sandbox.kubectl(['config', 'view', '--minify', '--context', 'prod-eu', '-o', 'jsonpath={.clusters[0].cluster.server}'], { kubeconfig: file });
      assert.equal(server.stdout, 'https://prod-eu.proxy.example:8443');
      // kubectl asks the exec plugin for a token before it dials: with no `kubectl` on PATH it fails with our install hint.
      const call = await sandbox.kubectl(['get', '--raw', '/version', '--context', 'dev', '--request-timeout=5s'], { kubeconfig: file, env: { PATH: dir } });
      assert.notEqual(call.code, 0);
      assert.match(call.stderr, /kubelogin/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
