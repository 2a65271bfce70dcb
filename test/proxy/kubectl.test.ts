// End to end: real kubectl → the proxy → a real kube-apiserver of the sandbox fleet,
// with real OIDC tokens, impersonation, and the bundle signed in the test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, type Harness } from './harness.ts';

const NS_A = 'proxy-kubectl-a';
const NS_B = 'proxy-kubectl-b';

const RULES = ruleSet('dev', [
  grant('dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps', 'pods'] }], ns(NS_A), { line: 12 }),
  grant('alice-write', [user('oidc:alice')], [{ verbs: ['create', 'update', 'patch', 'delete'], apiGroups: [''], resources: ['configmaps'] }], ns(NS_A), { line: 20 }),
  // conditional: bound upstream to its activation group only
  grant('alice-temp', [user('oidc:alice')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['secrets'] }], ns(NS_A), { line: 30, conditions: { expires: '2099-01-01T00:00:00Z' }, activationGroup: 'portcullis:grant:alice-temp' }),
], {
  users: ['oidc:alice', 'oidc:dave', 'oidc:jürgen'],
  denies: [{ id: 'keep-protected', source: { file: 'policies/test.ts', line: 40 }, subjects: [user('oidc:alice')], except: [], rules: [{ verbs: ['delete'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['protected'] }], scope: ns(NS_A) }],
});

// What the compiler's rbac.yaml would bind upstream for the same grants.
const RBAC = manifestsYaml([
  ...upstreamRole(NS_A, 'dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps', 'pods'] }]),
  ...upstreamRole(NS_A, 'alice-write', [user('oidc:alice')], [{ verbs: ['create', 'update', 'patch', 'delete'], apiGroups: [''], resources: ['configmaps'] }]),
  ...upstreamRole(NS_A, 'alice-temp', [group('portcullis:grant:alice-temp')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['secrets'] }]),
]);

describe('kubectl through the proxy', () => {
  let h: Harness;
  let alice: string;
  let mallory: string;
  before(async () => {
    h = await startHarness({ namespaces: [NS_A, NS_B], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
    alice = h.kubeconfig(await h.token('alice', ['developers']));
    mallory = h.kubeconfig(await h.token('mallory', []));
  });
  after(async () => {
    await h?.stop();
  });
  // Another proxy on the same setup where the host name localhost reaches dev at the root.
  const devAtLocalhost = (audit: string) =>
    h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      audit: { ...c.audit, file: { path: `${h.auditFile}.${audit}`, maxBytes: 1e6, maxFiles: 1 } },
      clusters: c.clusters.map((cc) => (cc.name === 'dev' ? { ...cc, hostnames: ['localhost'] } : cc)),
    }));

  it('GIVEN per-cluster host names WHEN kubectl talks to https://HOST/ without the /clusters prefix THEN the host picks the cluster and every path there (its /readyz too) goes to it; other hosts keep the prefix and the proxy\'s own endpoints', async () => {
    const x = await devAtLocalhost('hosts');
    try {
      const byHost = ['--server', `https://localhost:${x.port}`];
      let r = await h.kubectl(alice, [...byHost, 'get', 'configmaps', '-n', NS_A, '-o', 'name']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /configmap\/kube-root-ca\.crt/);
      r = await h.kubectl(alice, [...byHost, 'get', 'configmaps', '-n', NS_B]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /forbidden/i);
      r = await h.kubectl(alice, [...byHost, 'get', '--raw', '/readyz?verbose']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /\[\+\]ping ok/, "the cluster's /readyz, not the proxy's");
      // 127.0.0.1 is no cluster's host name: the prefix routes, and /readyz is the proxy's own.
      r = await h.kubectl(alice, ['--server', `https://127.0.0.1:${x.port}/clusters/dev`, 'get', 'configmaps', '-n', NS_A, '-o', 'name']);
      assert.equal(r.status, 0, r.stderr);
      const own = await h.request('GET', '/readyz', [], undefined, x.port);
      assert.equal(own.body, 'ok\n');
    } finally {
      await x.proxy.stop();
    }
  });

  it('GIVEN a host name per cluster WHEN kubectl proxy runs without --append-server-path, and get --raw asks for /openapi/v3 THEN both reach the cluster; GIVEN the /clusters prefix THEN kubectl proxy needs --append-server-path (docs/addressing.md)', async () => {
    const x = await devAtLocalhost('proxy');
    // kubectl proxy on a port of its own; the configmaps of NS_A through it, as a browser or curl would ask.
    const throughKubectlProxy = async (server: string, extra: readonly string[]): Promise<number> => {
      const p = h.spawnKubectl(alice, ['--server', server, 'proxy', '--port=0', '--address=127.0.0.1', ...extra]);
      try {
        const m = await p.waitFor(/Starting to serve on 127\.0\.0\.1:(\d+)/);
        const r = await fetch(`http://127.0.0.1:${m[1] ?? ''}/api/v1/namespaces/${NS_A}/configmaps`);
        if (r.status === 200) assert.match(await r.text(), /kube-root-ca\.crt/);
        return r.status;
      } finally {
        p.kill();
        await p.exited;
      }
    };
    try {
      const byHost = `https://localhost:${x.port}`;
      const byPrefix = `https://127.0.0.1:${x.port}/clusters/dev`;
      assert.equal(await throughKubectlProxy(byHost, []), 200, 'a host of its own: kubectl proxy as it is');
      assert.equal(await throughKubectlProxy(byPrefix, []), 404, 'the prefix: kubectl proxy drops the server path');
      assert.equal(await throughKubectlProxy(byPrefix, ['--append-server-path']), 200, 'the prefix: --append-server-path keeps it');
      for (const server of [byHost, byPrefix]) {
        // kubectl 1.33 and later keep the server path for get --raw (1.32 and older do not: docs/addressing.md).
        const r = await h.kubectl(alice, ['--server', server, 'get', '--raw', '/openapi/v3']);
        assert.equal(r.status, 0, `${server}: ${r.stderr}`);
        assert.match(r.stdout, /"api\/v1"/);
      }
    } finally {
      await x.proxy.stop();
    }
  });

  it('GIVEN a grant of list WHEN alice lists configmaps in its namespace THEN kubectl succeeds', async () => {
    const r = await h.kubectl(alice, ['get', 'configmaps', '-n', NS_A, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /configmap\/kube-root-ca.crt/);
    // kubectl negotiates HTTP/2 with the proxy (ALPN h2); the proxy speaks HTTP/1.1 upstream
    const ev = h.auditEvents().filter((e) => e.user.username === 'oidc:alice' && e.verb === 'list').at(-1);
    assert.equal(ev?.annotations['portcullis.dev/transport'], 'http2');
  });

  it('GIVEN no grant in another namespace WHEN alice lists there THEN the proxy answers 403 as kubectl prints it', async () => {
    const r = await h.kubectl(alice, ['get', 'configmaps', '-n', NS_B]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Error from server \(Forbidden\): configmaps is forbidden: User "oidc:alice" cannot list resource "configmaps".*\(portcullis\)/);
  });

  it('GIVEN create/patch/delete grants WHEN alice applies, reads and deletes a configmap THEN each step succeeds', async () => {
    const cm = stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: NS_A }, data: { a: '1' } });
    const file = `${h.dir}/cm.yaml`;
    (await import('node:fs')).writeFileSync(file, cm);
    let r = await h.kubectl(alice, ['apply', '-f', file]);
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(alice, ['get', 'configmap', 'applied', '-n', NS_A, '-o', 'jsonpath={.data.a}']);
    assert.equal(r.stdout, '1', r.stderr);
    r = await h.kubectl(alice, ['delete', 'configmap', 'applied', '-n', NS_A]);
    assert.equal(r.status, 0, r.stderr);
  });

  it('GIVEN only a read grant for the group WHEN a developer who is not alice deletes THEN it is forbidden', async () => {
    const dave = h.kubeconfig(await h.token('dave', ['developers']));
    assert.equal((await h.kubectl(dave, ['get', 'configmaps', '-n', NS_A])).status, 0);
    const r = await h.kubectl(dave, ['delete', 'configmap', 'kube-root-ca.crt', '-n', NS_A]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Forbidden/);
    const file = `${h.dir}/dave.yaml`;
    (await import('node:fs')).writeFileSync(file, stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dave', namespace: NS_A }, data: { a: '1' } }));
    const apply = await h.kubectl(dave, ['apply', '-f', file]);
    assert.notEqual(apply.status, 0);
    assert.match(apply.stderr, /forbidden: User "oidc:dave" cannot create resource "configmaps"/);
  });

  it('GIVEN a user outside impersonable.users WHEN mallory lists THEN the proxy denies', async () => {
    const r = await h.kubectl(mallory, ['get', 'configmaps', '-n', NS_A]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Forbidden/);
  });

  it('GIVEN an authenticated user WHEN kubectl runs discovery and OpenAPI (api-resources, explain) THEN the built-in discovery grant allows them', async () => {
    let r = await h.kubectl(alice, ['api-resources', '--api-group=apps', '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /deployments\.apps/);
    r = await h.kubectl(alice, ['explain', 'configmap.data']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /FIELD: +data/);
    r = await h.kubectl(alice, ['version', '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /serverVersion/);
  });

  it('GIVEN grants WHEN kubectl auth can-i asks THEN it answers yes for granted and no for the rest', async () => {
    let r = await h.kubectl(alice, ['auth', 'can-i', 'create', 'configmaps', '-n', NS_A]);
    assert.equal(r.stdout.trim(), 'yes', r.stderr);
    r = await h.kubectl(alice, ['auth', 'can-i', 'delete', 'pods', '-n', NS_A]);
    assert.equal(r.stdout.trim(), 'no - no portcullis grant allows this', r.stderr);
  });

  it('GIVEN a policy deny that upstream RBAC does not know WHEN kubectl auth can-i asks THEN the proxy answers no, as it would refuse the request', async () => {
    let r = await h.kubectl(alice, ['auth', 'can-i', 'delete', 'configmaps/protected', '-n', NS_A]);
    assert.equal(r.stdout.trim(), 'no - denied by portcullis policy', r.stderr);
    r = await h.kubectl(alice, ['auth', 'can-i', 'delete', 'configmaps/other', '-n', NS_A]);
    assert.equal(r.stdout.trim(), 'yes', r.stderr);
    h.admin(['create', 'configmap', 'protected', '-n', NS_A]);
    const del = await h.kubectl(alice, ['delete', 'configmap', 'protected', '-n', NS_A]);
    assert.notEqual(del.status, 0);
  });

  it('GIVEN a conditional grant bound upstream to its activation group WHEN kubectl auth can-i asks THEN the answer is yes, like the real request', async () => {
    const r = await h.kubectl(alice, ['auth', 'can-i', 'list', 'secrets', '-n', NS_A]);
    assert.equal(r.stdout.trim(), 'yes', r.stderr);
    const l = await h.kubectl(alice, ['get', 'secrets', '-n', NS_A]);
    assert.equal(l.status, 0, l.stderr);
    const dave = h.kubeconfig(await h.token('dave', ['developers']));
    assert.match((await h.kubectl(dave, ['auth', 'can-i', 'list', 'secrets', '-n', NS_A])).stdout.trim(), /^no\b/);
  });

  it('GIVEN impersonation WHEN alice asks kubectl auth whoami through the proxy THEN upstream sees the proxy-asserted identity with grant and issuer extras', async () => {
    const r = await h.kubectl(alice, ['auth', 'whoami', '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    const ui = (JSON.parse(r.stdout) as { status: { userInfo: { username: string; groups: string[]; extra: Record<string, string[]> } } }).status.userInfo;
    assert.equal(ui.username, 'oidc:alice');
    assert.deepEqual(ui.groups.sort(), ['oidc:developers', 'system:authenticated']);
    assert.deepEqual(ui.extra['portcullis.dev/grant'], ['builtin:discovery']);
    assert.deepEqual(ui.extra['portcullis.dev/authenticated-by'], [h.oidc.issuer]);
  });

  it('GIVEN a non-ASCII username the policy names WHEN it goes through the proxy THEN upstream sees exactly that name', async () => {
    const kc = h.kubeconfig(await h.token('jürgen', ['developers']));
    const r = await h.kubectl(kc, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'oidc:jürgen');
    assert.equal((await h.kubectl(kc, ['get', 'configmaps', '-n', NS_A, '-o', 'name'])).status, 0);
  });
});
