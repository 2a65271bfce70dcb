// One end-to-end test (at least) per rule of ../shared/SECURITY.md, against the
// real sandbox cluster, real OIDC tokens and real kubectl where kubectl can
// express the attack; raw HTTPS/TLS where it cannot.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as http2Connect, constants as http2Constants } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { stringify } from 'yaml';
import { keyIdOf } from '../../core/bundle.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, writeBundle, type Harness } from './harness.ts';

const NS = 'proxy-security';
const GRANTS = [
  grant('dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps', 'pods'] }], ns(NS), { line: 3 }),
  // rule 1: list, and watch of one name only
  grant('sam-list', [user('oidc:sam')], [{ verbs: ['list'], apiGroups: [''], resources: ['configmaps'] }, { verbs: ['watch'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['cm-x'] }], ns(NS), { line: 11 }),
  // rule 3: every verb
  grant('sam-star', [user('oidc:sam')], [{ verbs: ['*'], apiGroups: [''], resources: ['secrets'] }], ns(NS), { line: 15 }),
  // rule 4: get on pods/exec is not create; pods covers no subresource
  grant('gina-pods', [user('oidc:gina')], [{ verbs: ['*'], apiGroups: [''], resources: ['pods'] }, { verbs: ['get'], apiGroups: [''], resources: ['pods/exec'] }], ns(NS), { line: 19 }),
  // rule 5: update and patch but not create
  grant('uma-update', [user('oidc:uma')], [{ verbs: ['get', 'update', 'patch'], apiGroups: [''], resources: ['configmaps'] }], ns(NS), { line: 23 }),
  // rules 10, 12: exec, and a grant that ends by itself
  grant('olivia-exec', [user('oidc:olivia')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods', 'configmaps'] }, { verbs: ['create'], apiGroups: [''], resources: ['pods/exec'] }], ns(NS), { line: 27 }),
  // rule 21: sam may act as vic in the viewers group, and nothing else; viewers may list configmaps
  grant('sam-as-viewer', [user('oidc:sam')], [{ verbs: ['impersonate'], apiGroups: [''], resources: ['users'], resourceNames: ['oidc:vic'] }, { verbs: ['impersonate'], apiGroups: [''], resources: ['groups'], resourceNames: ['oidc:viewers'] }], { kind: 'cluster' }, { line: 31 }),
  grant('viewers-list', [group('oidc:viewers')], [{ verbs: ['list'], apiGroups: [''], resources: ['configmaps'] }], ns(NS), { line: 35 }),
];
// portcullis:member: whom the proxy impersonates for vic, whom no grant names (the compiler lets the proxy impersonate it too).
const RULES = ruleSet('dev', GRANTS, { users: ['oidc:alice', 'oidc:tess', 'portcullis:member'], groups: ['oidc:developers'] });
const RBAC = manifestsYaml([
  ...upstreamRole(NS, 'dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps', 'pods'] }]),
  // Upstream is deliberately wider than the proxy's grants where a rule says the proxy must be the one that refuses.
  ...upstreamRole(NS, 'sam', [user('oidc:sam')], [{ verbs: ['list', 'watch'], apiGroups: [''], resources: ['configmaps'] }, { verbs: ['*'], apiGroups: [''], resources: ['secrets'] }]),
  ...upstreamRole(NS, 'gina', [user('oidc:gina')], [{ verbs: ['*'], apiGroups: [''], resources: ['pods', 'pods/exec', 'pods/proxy', 'pods/log'] }]),
  ...upstreamRole(NS, 'uma', [user('oidc:uma')], [{ verbs: ['get', 'update', 'patch'], apiGroups: [''], resources: ['configmaps'] }]),
  ...upstreamRole(NS, 'olivia', [user('oidc:olivia')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods', 'configmaps'] }, { verbs: ['get', 'create'], apiGroups: [''], resources: ['pods/exec'] }]),
  ...upstreamRole(NS, 'tess', [user('oidc:tess')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }]),
  ...upstreamRole(NS, 'viewers', [group('oidc:viewers')], [{ verbs: ['list'], apiGroups: [''], resources: ['configmaps'] }]),
]);

const STAGING_EMPTY = ruleSet('staging', [], { users: ['oidc:alice'], groups: ['oidc:developers'] });

interface Status {
  kind: string;
  code: number;
  message: string;
  reason: string;
}
const status = (body: string): Status => JSON.parse(body) as Status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SECURITY.md rules, end to end', () => {
  let h: Harness;
  let revision = 1;
  const tok: Record<string, string> = {};
  const bearer = (who: string): [string, string] => ['Authorization', `Bearer ${tok[who]}`];
  before(async () => {
    h = await startHarness({
      namespaces: [NS],
      rbac: RBAC,
      impersonable: { users: [...RULES.impersonable.users], groups: [...RULES.impersonable.groups] },
      ruleSet: RULES,
      second: { name: 'staging' },
      configExtra: { limits: { maxLongRunningPerIdentity: 2, headersTimeoutMs: 1000, requestTimeoutMs: 5000, maxHeaderBytes: 16384 } },
    });
    tok['alice'] = await h.token('alice', ['developers']);
    for (const u of ['sam', 'gina', 'uma', 'olivia', 'mallory']) tok[u] = await h.token(u, []);
    h.admin(['create', 'configmap', 'cm-x', '-n', NS]);
    await h.fleet.createPod(h.cluster, NS, { name: 'secpod' });
  });
  after(async () => {
    await h?.stop();
  });

  it('SECURITY rule 14: with no valid bundle a cluster is not ready and every request to it gets 503; the first good bundle makes it ready', async () => {
    let r = await h.request('GET', '/readyz');
    assert.equal(r.status, 503);
    assert.match(r.body, /cluster staging: no valid bundle/);
    r = await h.request('GET', `/clusters/staging/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')]);
    assert.equal(r.status, 503);
    assert.equal(status(r.body).kind, 'Status');
    assert.match(status(r.body).message, /no valid policy bundle/);
    // dev still serves, on its own bundle
    r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')]);
    assert.equal(r.status, 200);
    await h.publish(STAGING_EMPTY, 1);
    r = await h.request('GET', '/readyz');
    assert.equal(r.status, 200, r.body);
    const id = (await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')])).headers['audit-id'];
    const ev = h.auditEvents().find((e) => e.auditID === id);
    assert.equal(ev?.annotations['portcullis.dev/bundle-revision'], '1');
  });

  it('SECURITY rule 9: a grant on dev authorizes nothing on staging, and a bundle signed for staging is refused for dev', async () => {
    let r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')]);
    assert.equal(r.status, 200);
    r = await h.request('GET', `/clusters/staging/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')]);
    assert.equal(r.status, 403);
    // A validly signed staging bundle dropped into dev's directory: BUNDLE_CLUSTER, dev keeps its bundle.
    const before = h.proxy.store('dev')?.lastAccepted()?.revision;
    writeBundle(h.bundleDirOf('dev'), { ...STAGING_EMPTY }, h.signingKey, h.keyId, { revision: 50, cluster: 'staging' });
    const res = await h.proxy.reload('dev');
    assert.equal(res?.result, 'rejected');
    assert.equal(res?.result === 'rejected' && res.code, 'BUNDLE_CLUSTER');
    assert.equal(h.proxy.store('dev')?.lastAccepted()?.revision, before);
    await h.publish(RULES, ++revision);
    // A token from an issuer bound to staging does not authenticate on dev (the proxy passes the routed cluster).
    const x = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      audit: { ...c.audit, file: { path: join(h.dir, 'audit-bound.log'), maxBytes: 1e6, maxFiles: 1 } },
      authn: { ...c.authn, issuers: (c.authn['issuers'] as object[]).map((i) => ({ ...i, clusters: ['staging'] })) },
    }));
    const onDev = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')], undefined, x.port);
    assert.equal(onDev.status, 401);
    const onStaging = await h.request('GET', `/clusters/staging/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')], undefined, x.port);
    assert.equal(onStaging.status, 403, 'authenticated on staging, where no grant names alice');
    await x.proxy.stop();
  });

  it('SECURITY rule 1: an empty ?watch= is a watch, ?watch=0 a list, and a metadata.name field selector names the object', async () => {
    const base = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    assert.equal((await h.request('GET', `${base}?watch=0`, [bearer('sam')])).status, 200);
    assert.equal((await h.request('GET', `${base}?watch=`, [bearer('sam')])).status, 403, 'empty watch= is a watch');
    assert.equal((await h.request('GET', `${base}?watch=1`, [bearer('sam')])).status, 403);
    const named = await h.request('GET', `${base}?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dcm-x`, [bearer('sam')]);
    assert.equal(named.status, 200, named.body);
    assert.match(named.body, /"name":"cm-x"/);
    // an option that fails to parse drops the name: a watch of everything, denied
    assert.equal((await h.request('GET', `${base}?watch=1&fieldSelector=metadata.name%3Dcm-x&limit=abc`, [bearer('sam')])).status, 403);
  });

  it('SECURITY rule 2: non-canonical targets are refused with 400 before authorization, not normalised', async () => {
    for (const path of [
      `/clusters/dev/api/v1/namespaces//configmaps`,
      `/clusters/dev/api/v1/namespaces/${NS}/configmaps/%2e%2e/x`,
      `/clusters/dev/api/v1/namespaces/${NS}/configmaps/a%2Fb`,
      `/clusters/dev/../staging/api/v1/namespaces/${NS}/configmaps`,
      `/clusters/dev/api/v1/namespaces/${NS}/configmaps?watch=1&watch=0`,
      `/clusters/dev/api/v1/namespaces/${NS}/configmaps?a=1;b=2`,
      `/clusters/dev/api/v1/namespaces/${NS}/configmaps/%zz`,
    ]) {
      const r = await h.request('GET', path, [bearer('alice')]);
      assert.equal(r.status, 400, path);
      assert.equal(status(r.body).code, 400);
    }
  });

  it('SECURITY rule 3: OPTIONS and TRACE deny even against a grant of every verb', async () => {
    const path = `/clusters/dev/api/v1/namespaces/${NS}/secrets`;
    assert.equal((await h.request('GET', path, [bearer('sam')])).status, 200);
    for (const m of ['OPTIONS', 'TRACE', 'PROPFIND']) {
      const r = await h.request(m, path, [bearer('sam')]);
      assert.ok(r.status === 403 || r.status === 400, `${m} → ${r.status}`);
      assert.notEqual(r.status, 200);
    }
  });

  it('SECURITY rule 4: exec over WebSocket (a GET) needs create; a grant of pods covers neither pods/exec, pods/proxy nor pods/log', async () => {
    const pod = 'secpod';
    const gina = h.kubeconfig(tok['gina'] ?? '');
    let r = await h.kubectl(gina, ['get', 'pod', pod, '-n', NS]);
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(gina, ['exec', pod, '-n', NS, '--', 'echo', 'x'], { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot create resource "pods\/exec"/);
    for (const sub of ['proxy/healthz', 'log']) {
      const x = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/pods/${pod}/${sub}`, [bearer('gina')]);
      assert.equal(x.status, 403, sub);
    }
  });

  it('SECURITY rule 5: PUT/apply that would create needs create upstream — the proxy forwards it as update/patch and upstream RBAC refuses', async () => {
    const uma = h.kubeconfig(tok['uma'] ?? '');
    const file = join(h.dir, 'uma.yaml');
    writeFileSync(file, stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'uma-new', namespace: NS }, data: { a: '1' } }));
    const r = await h.kubectl(uma, ['apply', '--server-side', '-f', file]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot patch|cannot create|forbidden/i);
    await sleep(100);
    const ev = h.auditEvents().find((e) => e.user.username === 'oidc:uma' && e.objectRef?.name === 'uma-new' && e.verb === 'patch');
    assert.equal(ev?.annotations['portcullis.dev/decision'], 'allow', 'the proxy allowed the patch; upstream refused the create');
    assert.equal(ev?.responseStatus.code, 403);
    assert.equal(h.admin(['get', 'configmap', 'uma-new', '-n', NS]).status, 1);
  });

  it('SECURITY rule 6: client X-Remote-*, X-Forwarded-*, Audit-ID and Connection-named headers never reach upstream (client Impersonate-* is refused first, rule 21; headers.test.ts strips it too)', async () => {
    const r = await h.request(
      'POST',
      '/clusters/dev/apis/authentication.k8s.io/v1/selfsubjectreviews',
      [
        bearer('alice'),
        ['Content-Type', 'application/json'],
        ['X-Remote-User', 'root'],
        ['X-Remote-Group', 'system:masters'],
        ['X-Forwarded-For', '10.0.0.1'],
        ['Audit-ID', 'evil-audit-id'],
        ['Connection', 'keep-alive, Accept-Language'],
        ['Accept-Language', 'xx'],
      ],
      JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
    );
    assert.equal(r.status, 201, r.body);
    const ui = (JSON.parse(r.body) as { status: { userInfo: { username: string; groups: string[]; extra?: Record<string, string[]>; uid?: string } } }).status.userInfo;
    assert.equal(ui.username, 'oidc:alice');
    assert.deepEqual([...ui.groups].sort(), ['oidc:developers', 'system:authenticated']);
    assert.deepEqual(Object.keys(ui.extra ?? {}).sort(), ['portcullis.dev/authenticated-by', 'portcullis.dev/grant']);
    assert.equal(ui.uid, undefined);
    // upstream's Audit-Id echo is the proxy's id, not the client's
    assert.notEqual(r.headers['audit-id'], 'evil-audit-id');
    assert.ok(h.auditEvents().some((e) => e.auditID === r.headers['audit-id']));
  });

  it('SECURITY rule 7: the proxy ServiceAccount can do nothing but impersonate the named identities; without impersonation it is refused', async () => {
    const sa = h.kubeconfig(h.proxyToken);
    const direct = (args: string[]) => {
      const kc = join(h.dir, 'sa-direct.yaml');
      writeFileSync(kc, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: h.cluster.server, 'certificate-authority': h.cluster.caFile } }], users: [{ name: 'u', user: { token: h.proxyToken } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }], 'current-context': 'c' }));
      return h.kubectl(kc, args);
    };
    void sa;
    let r = await direct(['get', 'configmaps', '-n', NS]);
    assert.notEqual(r.status, 0, 'a dropped impersonation header fails closed');
    assert.match(r.stderr, /Forbidden/);
    r = await direct(['get', 'configmaps', '-n', NS, '--as', 'oidc:mallory']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot impersonate/);
    r = await direct(['get', 'configmaps', '-n', NS, '--as', 'oidc:alice', '--as-group', 'system:masters']);
    assert.notEqual(r.status, 0);
    r = await direct(['get', 'configmaps', '-n', NS, '--as', 'oidc:alice', '--as-group', 'oidc:developers']);
    assert.equal(r.status, 0, r.stderr);
    r = await direct(['auth', 'can-i', '--list']);
    assert.doesNotMatch(r.stdout, /secrets|configmaps|\*\.\*/);
  });

  it('SECURITY rule 8: missing, garbage, doubled, mixed, expired and foreign-key credentials are 401 Status without detail', async () => {
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    const cases: [string, [string, string][]][] = [
      ['none', []],
      ['garbage', [['Authorization', 'Bearer not-a-jwt']]],
      ['empty', [['Authorization', 'Bearer ']]],
      ['doubled', [bearer('alice'), bearer('alice')]],
      ['mixed', [bearer('alice'), ['Sec-WebSocket-Protocol', `base64url.bearer.authorization.k8s.io.${Buffer.from(tok['alice'] ?? '').toString('base64url')}`]]],
      ['expired', [['Authorization', `Bearer ${await h.oidc.expiredToken('alice')}`]]],
      ['foreign key', [['Authorization', `Bearer ${await h.oidc.foreignKeyToken('alice')}`]]],
      ['system user', [['Authorization', `Bearer ${await h.oidc.systemUserToken()}`]]],
    ];
    for (const [name, headers] of cases) {
      const r = await h.request('GET', path, headers);
      assert.equal(r.status, 401, name);
      assert.deepEqual(status(r.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    }
  });

  it('SECURITY rule 10: bytes sent ahead of the 101 are never forwarded; other upgrades are refused; a non-101 answer is relayed and both sockets close', async () => {
    const pod = 'secpod';
    const target = `/clusters/dev/api/v1/namespaces/${NS}/pods/${pod}/exec?command=cat&stdin=true&stdout=true`;
    const rawUpgrade = (upgrade: string, early: string, path = target, viaSubprotocol = false): Promise<string> =>
      new Promise((resolve) => {
        const auth = viaSubprotocol ? '' : `Authorization: Bearer ${tok['olivia']}\r\n`;
        const protos = viaSubprotocol ? `base64url.bearer.authorization.k8s.io.${Buffer.from(tok['olivia'] ?? '').toString('base64url').replace(/=+$/, '')}, v5.channel.k8s.io` : 'v5.channel.k8s.io';
        const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: h.proxyCa.caPem, ALPNProtocols: ['http/1.1'] }, () => {
          s.write(
            `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Connection: Upgrade\r\nUpgrade: ${upgrade}\r\n` +
              `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${protos}\r\n\r\n${early}`,
          );
        });
        s.on('data', (c) => {
          if (c.toString('latin1').startsWith('HTTP/1.1 101')) setTimeout(() => s.destroy(), 100);
        });
        let got = '';
        s.on('data', (c) => (got += c.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
        setTimeout(() => s.destroy(), 5000).unref();
      });
    // early bytes: cut, nothing upgraded
    const early = await rawUpgrade('websocket', '\x82\x05hello');
    assert.doesNotMatch(early, /101 Switching/);
    await sleep(100);
    assert.ok(h.auditEvents().some((e) => e.annotations['portcullis.dev/error'] === 'EARLY_BYTES'));
    // a clean websocket upgrade works on the same target
    const ok = await rawUpgrade('websocket', '');
    assert.match(ok, /^HTTP\/1\.1 101 /);
    // the token in the bearer subprotocol (browsers' way) authenticates, and that entry never reaches upstream
    const sub = await rawUpgrade('websocket', '', target, true);
    assert.match(sub, /^HTTP\/1\.1 101 /);
    assert.match(sub, /Sec-Websocket-Protocol: v5\.channel\.k8s\.io\r\n/i);
    assert.doesNotMatch(sub, /bearer/i);
    // h2c and others: 400
    const h2c = await rawUpgrade('h2c', '');
    assert.match(h2c, /^HTTP\/1\.1 400 /);
    // upstream answers 404 (no such pod): relayed, then closed
    const missing = await rawUpgrade('websocket', '', target.replace(pod, 'no-such-pod'));
    assert.match(missing, /^HTTP\/1\.1 404 /);
    assert.match(missing, /"reason":"NotFound"/);
  });

  it('SECURITY rule 11: an upstream redirect is relayed as is, never followed', async () => {
    let followed = 0;
    const ca = h.proxyCa.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1'] });
    const up = createServer({ key: ca.keyPem, cert: ca.certPem }, (req, res) => {
      if (req.url?.includes('elsewhere')) {
        followed++;
        res.end('followed');
        return;
      }
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (up.address() as AddressInfo).port;
      const x = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, audit: { ...c.audit, file: { path: join(h.dir, 'audit-redirect.log'), maxBytes: 1e6, maxFiles: 1 } }, clusters: [{ ...(c.clusters[0] as (typeof c.clusters)[0]), upstream: { url: `https://127.0.0.1:${port}`, caFile: h.proxyCa.caFile, tokenFile: join(h.dir, 'upstream.token') } }] }));
      const r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')], undefined, x.port);
      assert.equal(r.status, 302);
      assert.equal(r.headers['location'], '/elsewhere');
      assert.equal(followed, 0);
      await x.proxy.stop();
      // SECURITY rule 16 on the way: an unreachable upstream is a 502 Status without the error detail
      const y = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, audit: { ...c.audit, file: { path: join(h.dir, 'audit-502.log'), maxBytes: 1e6, maxFiles: 1 } }, clusters: [{ ...(c.clusters[0] as (typeof c.clusters)[0]), upstream: { url: 'https://127.0.0.1:1', caFile: h.proxyCa.caFile, tokenFile: join(h.dir, 'upstream.token') } }] }));
      const b = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [bearer('alice')], undefined, y.port);
      assert.equal(b.status, 502);
      assert.equal(status(b.body).message, 'the cluster could not be reached through portcullis');
      assert.doesNotMatch(b.body, /ECONNREFUSED|127\.0\.0\.1:1/);
      assert.ok(y.logs().some((l) => String(l['err'] ?? '').includes('ECONNREFUSED')), 'the detail is in the log');
      await y.proxy.stop();
    } finally {
      up.close();
    }
  });

  it('SECURITY rule 12 (and 18): a watch ends when the token expires, the clock tolerance honoured, and when the grant expires, and the audit says why', async () => {
    // token expiry: exp is 2–3 s after minting (whole seconds), the issuer's leeway 2 s more (SECURITY rule 18)
    const minted = Date.now();
    const short = await h.token('alice', ['developers'], 3);
    const w1 = h.spawnKubectl(h.kubeconfig(short), ['get', 'configmaps', '-n', NS, '-w', '-o', 'name']);
    await w1.waitFor(/configmap\//);
    await w1.exited;
    const lasted = Date.now() - minted;
    assert.ok(lasted >= 4000 && lasted < 6500, `watch ended ${lasted} ms after its token was minted: exp + leeway is 4–5 s`);
    // grant expiry (conditions.expires)
    const soon = new Date(Date.now() + 2500).toISOString();
    await h.publish(ruleSet('dev', [...GRANTS, grant('tess-temp', [user('oidc:tess')], [{ verbs: ['list', 'watch'], apiGroups: [''], resources: ['configmaps'] }], ns(NS), { conditions: { expires: soon } })], { users: ['oidc:alice', 'oidc:tess'], groups: ['oidc:developers'] }), ++revision);
    const w2 = h.spawnKubectl(h.kubeconfig(await h.token('tess', [])), ['get', 'configmaps', '-n', NS, '-w', '-o', 'name']);
    await w2.waitFor(/configmap\//);
    await w2.exited;
    assert.ok(Date.now() < Date.parse(soon) + 1000, 'closed within 1 s of the grant end');
    await sleep(100);
    const ends = (u: string) => h.auditEvents().filter((e) => e.user.username === u && e.stage === 'ResponseComplete' && e.verb === 'watch').map((e) => e.annotations['portcullis.dev/stream-end']);
    assert.ok(ends('oidc:alice').includes('token-expired'), ends('oidc:alice').join());
    assert.deepEqual(ends('oidc:tess'), ['window-ended']);
    await h.publish(RULES, ++revision);
  });

  it('SECURITY rule 18: the clock tolerance is honoured after the JWT library too: a token 1 s past exp (leeway 2 s) is served, 5 s past is 401', async () => {
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    const late = await h.token('alice', ['developers'], -1);
    assert.equal((await h.request('GET', path, [['Authorization', `Bearer ${late}`]])).status, 200);
    const stale = await h.token('alice', ['developers'], -5);
    assert.equal((await h.request('GET', path, [['Authorization', `Bearer ${stale}`]])).status, 401);
  });

  it('SECURITY rule 19: a bearer-token WebSocket subprotocol with no other subprotocol is refused, as kube refuses it; more than one is refused too', async () => {
    const target = `/clusters/dev/api/v1/namespaces/${NS}/pods/secpod/exec?command=cat&stdin=true&stdout=true`;
    const entry = `base64url.bearer.authorization.k8s.io.${Buffer.from(tok['olivia'] ?? '').toString('base64url')}`;
    const upgrade = (protocols: string): Promise<string> =>
      new Promise((resolve) => {
        let got = '';
        const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: h.proxyCa.caPem, ALPNProtocols: ['http/1.1'] }, () =>
          s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${protocols}\r\n\r\n`),
        );
        s.on('data', (c) => {
          got += c.toString('latin1');
          if (got.includes('\r\n\r\n')) s.destroy();
        });
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
        setTimeout(() => s.destroy(), 5000).unref();
      });
    assert.match(await upgrade(entry), /^HTTP\/1\.1 401 /);
    assert.match(await upgrade(`${entry}, ${entry}, v5.channel.k8s.io`), /^HTTP\/1\.1 401 /);
    assert.match(await upgrade(`${entry}, v5.channel.k8s.io`), /^HTTP\/1\.1 101 /);
    await sleep(100);
    assert.ok(h.logs().some((l) => l['msg'] === 'request refused' && String(l['detail']).includes('missing additional subprotocol')), 'the log says why');
  });

  it('SECURITY rule 20: a request with as many header lines as Node keeps (2,000; it drops the rest) gets 431; 1,000 are fine', async () => {
    // Short lines (under 20 KB in all), so that the count is what is refused, not the 32 KiB of header bytes.
    const lines = (n: number): [string, string][] => Array.from({ length: n }, (_, i): [string, string] => [`h${i}`, '']);
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    const many = await h.request('GET', path, [bearer('alice'), ...lines(2100)]);
    assert.equal(many.status, 431, many.body);
    assert.equal(status(many.body).kind, 'Status', 'the proxy refused it, not Node');
    assert.equal((await h.request('GET', path, [bearer('alice'), ...lines(1000)])).status, 200);
  });

  it('SECURITY rule 21: kubectl --as / --as-group is decided as kube decides it: refused with a 403 that says why unless the policy grants that impersonation, then served as the one named, never as the caller', async () => {
    // sam may delete secrets: `--as readonly`, meant to be safe, must not delete as sam.
    h.admin(['delete', 'secret', 'keep-me', '-n', NS, '--ignore-not-found']);
    assert.equal(h.admin(['create', 'secret', 'generic', 'keep-me', '-n', NS]).status, 0);
    const kc = h.kubeconfig(tok['sam'] ?? '');
    const del = await h.kubectl(kc, ['--as', 'readonly', 'delete', 'secret', 'keep-me', '-n', NS]);
    assert.notEqual(del.status, 0);
    assert.match(del.stderr, /users "readonly" is forbidden: User "oidc:sam" cannot impersonate resource "users" in API group "" at the cluster scope: impersonation \(kubectl --as, --as-group\) is allowed through portcullis only where the policy grants it/);
    assert.equal(h.admin(['get', 'secret', 'keep-me', '-n', NS]).status, 0, 'nothing was deleted as the caller');
    // Granted: sam acts as vic in viewers, who may list configmaps (vic is not named: served as a member of viewers).
    const list = await h.kubectl(kc, ['--as', 'oidc:vic', '--as-group', 'oidc:viewers', 'get', 'configmaps', '-n', NS, '-o', 'name']);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /configmap\/kube-root-ca\.crt/);
    // ... and as vic, sam's own secrets rights are gone.
    const asVic = await h.kubectl(kc, ['--as', 'oidc:vic', '--as-group', 'oidc:viewers', 'delete', 'secret', 'keep-me', '-n', NS]);
    assert.notEqual(asVic.status, 0);
    assert.match(asVic.stderr, /secrets "keep-me" is forbidden: User "oidc:vic" cannot delete resource "secrets"/);
    assert.equal(h.admin(['get', 'secret', 'keep-me', '-n', NS]).status, 0, 'nothing was deleted as sam');
    // A group the grant does not name, the proxy's own names, and system: names are refused.
    const other = await h.kubectl(kc, ['--as', 'oidc:vic', '--as-group', 'oidc:developers', 'get', 'configmaps', '-n', NS]);
    assert.match(other.stderr, /groups "oidc:developers" is forbidden: User "oidc:sam" cannot impersonate resource "groups"/);
    const reserved = await h.kubectl(kc, ['--as', 'oidc:vic', '--as-group', 'portcullis:grant:sam-star:undenied', 'get', 'secrets', '-n', NS]);
    assert.match(reserved.stderr, /impersonating portcullis:grant:sam-star:undenied is not allowed through portcullis/);
    const masters = await h.kubectl(kc, ['--as', 'oidc:vic', '--as-group', 'system:masters', 'get', 'secrets', '-n', NS]);
    assert.match(masters.stderr, /impersonating system:masters is not allowed through portcullis/);
    const grp = await h.kubectl(kc, ['--as-group', 'oidc:developers', 'get', 'secrets', '-n', NS]);
    assert.notEqual(grp.status, 0);
    const events = await h.auditEventsWhen((es) => es.some((e) => e.impersonatedUser?.groups?.includes('oidc:viewers') === true && e.verb === 'list'));
    assert.ok(events.some((e) => e.annotations['portcullis.dev/error'] === 'IMPERSONATION_REFUSED' && e.responseStatus.code === 403));
    // The record names the caller as the user, and whom the proxy asserted upstream for vic.
    const served = events.find((e) => e.verb === 'list' && e.impersonatedUser?.groups?.includes('oidc:viewers') === true);
    assert.equal(served?.user.username, 'oidc:sam');
    assert.equal(served?.impersonatedUser?.username, 'portcullis:member');
    assert.equal(served?.annotations['portcullis.dev/grant'], 'viewers-list');
  });

  it('SECURITY rule 13: tampered, rolled-back, unlisted-file and unknown-key bundles are refused while the last good one keeps serving', async () => {
    const alice = h.kubeconfig(tok['alice'] ?? '');
    const good = h.proxy.store('dev')?.lastAccepted()?.revision ?? 0;
    const dir = h.bundleDirOf('dev');
    const expectRefused = async (code: string) => {
      const r = await h.proxy.reload('dev');
      assert.equal(r?.result === 'rejected' ? r.code : r?.result, code);
      assert.equal(h.proxy.store('dev')?.lastAccepted()?.revision, good);
      const k = await h.kubectl(alice, ['get', 'configmaps', '-n', NS, '-o', 'name']);
      assert.equal(k.status, 0, k.stderr);
    };
    // tampered: a grant added to rules.json after signing
    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: good + 1 });
    const rules = JSON.parse(readFileSync(join(dir, 'rules.json'), 'utf8')) as { grants: unknown[] };
    rules.grants.push(grant('evil', [user('oidc:mallory')], [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], { kind: 'cluster' }));
    writeFileSync(join(dir, 'rules.json'), JSON.stringify(rules));
    await expectRefused('BUNDLE_DIGEST');
    // rollback: validly signed, older revision
    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: good - 1 });
    await expectRefused('BUNDLE_ROLLBACK');
    // same revision again is a rollback too (≥ last + 1)
    writeBundle(dir, { ...RULES, denies: [] }, h.signingKey, h.keyId, { revision: good, rbac: '# different bytes\n' });
    await expectRefused('BUNDLE_ROLLBACK');
    // unknown key
    const other = generateKeyPairSync('ed25519').privateKey;
    writeBundle(dir, RULES, other, keyIdOf(generateKeyPairSync('ed25519').publicKey), { revision: good + 1 });
    await expectRefused('BUNDLE_UNKNOWN_KEY');
    // an unlisted file
    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: good + 1 });
    writeFileSync(join(dir, 'extra.json'), '{}');
    await expectRefused('BUNDLE_FILE_UNLISTED');
    (await import('node:fs')).rmSync(join(dir, 'extra.json'));
    // alert: logged and counted
    assert.ok(h.logs().some((l) => l['alert'] === true && l['code'] === 'BUNDLE_DIGEST'));
    assert.match(await h.proxy.metrics.registry.getSingleMetricAsString('portcullis_bundle_reloads_total'), /result="rejected"/);
    const r = await h.proxy.reload('dev');
    assert.equal(r?.result, 'accepted');
    revision = good + 1;
  });

  it('SECURITY rule 15: CL+TE, oversized headers, slow headers and (HTTP/2) a stalled request body are refused; long-running requests are limited per identity (429)', async () => {
    const raw = (text: string, waitMs = 3000): Promise<string> =>
      new Promise((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: h.proxyCa.caPem, ALPNProtocols: ['http/1.1'] }, () => s.write(text));
        let got = '';
        s.on('data', (c) => (got += c.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
        setTimeout(() => {
          s.destroy();
          resolve(`${got}[still open]`);
        }, waitMs).unref();
      });
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    const clte = await raw(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok['alice']}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    assert.match(clte, /^HTTP\/1\.1 400 /);
    const big = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431 /);
    // headersTimeoutMs is 1000 here: cut within a second or so of it, not Node's default 30 s check.
    const t0 = Date.now();
    const slow = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n`, 6000);
    assert.doesNotMatch(slow, /\[still open\]/, 'headersTimeout closed the connection');
    assert.ok(Date.now() - t0 < 4000, `slow headers cut after ${Date.now() - t0} ms`);
    // HTTP/2, where Node's requestTimeout does not apply: an allowed POST whose body stalls is reset
    // after requestTimeoutMs (5000 here), and the upstream request with it.
    const session = http2Connect(`https://127.0.0.1:${h.port}`, { ca: h.proxyCa.caPem });
    try {
      const stream = session.request({ ':method': 'POST', ':path': `/clusters/dev/api/v1/namespaces/${NS}/secrets`, authorization: `Bearer ${tok['sam']}`, 'content-type': 'application/json', 'content-length': '100' });
      stream.write('{"apiVersion":');
      let answered: unknown;
      stream.on('response', (hs) => (answered = hs[':status']));
      const s0 = Date.now();
      const rst = await new Promise<number>((resolve) => {
        stream.on('close', () => resolve(stream.rstCode ?? -1));
        stream.on('error', () => undefined);
        stream.resume();
        setTimeout(() => resolve(-2), 12_000).unref();
      });
      assert.equal(rst, http2Constants.NGHTTP2_CANCEL, 'the stalled stream was reset');
      assert.ok(Date.now() - s0 >= 4500 && Date.now() - s0 < 9000, `reset after ${Date.now() - s0} ms`);
      assert.equal(answered, undefined, 'admitted and forwarded, not refused: no response came before the reset');
      let ev;
      for (let i = 0; i < 50 && !ev; i++, await sleep(100)) {
        ev = h.auditEvents().find((e) => e.user.username === 'oidc:sam' && e.verb === 'create' && e.objectRef?.resource === 'secrets' && e.annotations['portcullis.dev/error'] === 'REQUEST_TIMEOUT');
      }
      assert.ok(ev, 'the audit record says the request timed out');
      assert.equal(ev.annotations['portcullis.dev/decision'], 'allow');
      assert.equal(ev.annotations['portcullis.dev/stream-end'], 'client-closed', 'the reset client, not an upstream failure');
      assert.notEqual(ev.responseStatus?.code, 502);
      // The session itself stays usable.
      const ok = session.request({ ':path': path, authorization: `Bearer ${tok['alice']}` });
      const code = await new Promise<number>((resolve) => ok.on('response', (hs) => resolve(Number(hs[':status']))).on('error', () => resolve(-1)));
      ok.resume();
      assert.equal(code, 200);
    } finally {
      session.destroy();
    }
    // per-identity limit of 2 long-running requests
    const watches = [1, 2].map(() => h.spawnKubectl(h.kubeconfig(tok['alice'] ?? ''), ['get', 'configmaps', '-n', NS, '-w', '-o', 'name']));
    try {
      for (const w of watches) await w.waitFor(/configmap\//);
      // kubectl prints the LIST before it opens the watch: wait until the proxy holds both watches.
      const aliceStreams = () => h.proxy.streams.list('dev').filter((x) => x.attributes.user === 'oidc:alice').length;
      for (let i = 0; i < 250 && aliceStreams() < 2; i++) await sleep(20);
      assert.equal(aliceStreams(), 2, 'both kubectl watches are open through the proxy');
      const third = await h.request('GET', `${path}?watch=1`, [bearer('alice')]);
      assert.equal(third.status, 429);
      assert.equal(status(third.body).reason, 'TooManyRequests');
      // ordinary requests are not limited
      assert.equal((await h.request('GET', path, [bearer('alice')])).status, 200);
    } finally {
      for (const w of watches) w.kill();
      for (const w of watches) await w.exited;
      // the proxy notices the closed connections and frees the slots
      for (let i = 0; i < 200 && h.proxy.streams.list('dev').some((x) => x.attributes.user === 'oidc:alice'); i++) await sleep(20);
    }
  });

  it('SECURITY rule 16: errors are Status objects with safe messages; the detail is only in the log and the audit', async () => {
    const r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/secrets`, [bearer('alice')]);
    assert.equal(r.status, 403);
    const s = status(r.body);
    assert.equal(s.kind, 'Status');
    assert.equal(s.reason, 'Forbidden');
    assert.doesNotMatch(r.body, /dev-read|policies\/test\.ts|inactive/);
    const nf = await h.request('GET', '/clusters/nowhere/api', [bearer('alice')]);
    assert.equal(nf.status, 404);
    assert.equal(status(nf.body).kind, 'Status');
    const ev = h.auditEvents().find((e) => e.auditID === r.headers['audit-id']);
    assert.equal(ev?.annotations['portcullis.dev/decision'], 'deny');
    assert.match(ev?.annotations['portcullis.dev/detail'] ?? '', /no active grant/, 'the detail is in the audit record');
  });

  it('SECURITY rule 17: exactly one audit record per request and stage, joined to upstream by Audit-ID; long-running requests get ResponseStarted and ResponseComplete', async () => {
    const ua = `rule17-${Date.now()}`;
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    const ids: string[] = [];
    const send = async (m: string, p: string, hs: [string, string][]) => {
      const r = await h.request(m, p, [['User-Agent', ua], ...hs]);
      ids.push(String(r.headers['audit-id']));
      return r;
    };
    await send('GET', path, [bearer('alice')]); // allowed
    await send('GET', `${path}/cm-x`, [bearer('alice')]); // allowed, named
    await send('DELETE', `${path}/cm-x`, [bearer('alice')]); // denied
    await send('GET', path, []); // 401
    await send('GET', `/clusters/dev/api/v1/namespaces//configmaps`, [bearer('alice')]); // 400
    await send('GET', `${path}?watch=1&timeoutSeconds=1`, [bearer('alice')]); // long-running
    assert.equal(new Set(ids).size, ids.length);
    await sleep(100);
    const mine = h.auditEvents().filter((e) => e.userAgent === ua);
    for (const id of ids) {
      const evs = mine.filter((e) => e.auditID === id);
      assert.equal(evs.filter((e) => e.stage === 'ResponseComplete').length, 1, id);
    }
    assert.equal(mine.length, ids.length + 1, 'one ResponseStarted more, for the watch');
    const watch = mine.filter((e) => e.verb === 'watch');
    assert.deepEqual(watch.map((e) => e.stage), ['ResponseStarted', 'ResponseComplete']);
    for (const e of mine) {
      assert.equal(e.apiVersion, 'audit.k8s.io/v1');
      assert.equal(e.kind, 'Event');
      assert.ok(e.requestReceivedTimestamp && e.stageTimestamp && e.sourceIPs.length === 1);
    }
    const allowed = mine.find((e) => e.auditID === ids[0]);
    assert.equal(allowed?.annotations['portcullis.dev/grant'], 'dev-read');
    assert.equal(allowed?.annotations['portcullis.dev/source'], 'policies/test.ts:3');
    assert.equal(allowed?.impersonatedUser?.username, 'oidc:alice');
  });

  it('SECURITY rule 17: when the audit sink fails, new requests are refused (503) by default and served with onFailure: serve', async () => {
    const mk = (onFailure: 'deny' | 'serve') => h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, clusters: [c.clusters[0] as (typeof c.clusters)[0]], audit: { stdout: false, flushIntervalMs: 20, mode: 'blocking', checkpointEvery: 1000, onFailure, file: { path: '/dev/full', maxBytes: 1e12, maxFiles: 1 } } }));
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    const deny = await mk('deny');
    assert.equal((await h.request('GET', path, [bearer('alice')], undefined, deny.port)).status, 200);
    await sleep(100); // the flush fails
    const r = await h.request('GET', path, [bearer('alice')], undefined, deny.port);
    assert.equal(r.status, 503);
    assert.match(status(r.body).message, /audit/);
    assert.equal((await h.request('GET', '/readyz', [], undefined, deny.port)).status, 503);
    const serve = await mk('serve');
    await h.request('GET', path, [bearer('alice')], undefined, serve.port);
    await sleep(100);
    assert.equal((await h.request('GET', path, [bearer('alice')], undefined, serve.port)).status, 200);
    await deny.proxy.stop();
    await serve.proxy.stop();
  });

  it('SECURITY rule 17: graceful shutdown ends live streams (audited as shutdown) and flushes every record', async () => {
    const w = h.spawnKubectl(h.kubeconfig(tok['alice'] ?? ''), ['get', 'configmaps', '-n', NS, '-w', '-o', 'name']);
    await w.waitFor(/configmap\//);
    for (let i = 0; i < 300 && !h.proxy.streams.list('dev').some((x) => x.attributes.verb === 'watch'); i++) await sleep(20);
    const before = h.auditEvents().length;
    await h.proxy.stop();
    await w.exited;
    const lines = readFileSync(h.auditFile, 'utf8').trim().split('\n');
    assert.equal(lines.length, before + 2, 'the watch ResponseComplete and the closing checkpoint are on disk');
    const last = lines.slice(before).map((l) => JSON.parse(l) as { annotations: Record<string, string>; stage: string; verb: string });
    assert.deepEqual(last.map((e) => [e.verb, e.stage, e.annotations['portcullis.dev/stream-end']]), [['watch', 'ResponseComplete', 'shutdown'], ['checkpoint', 'ResponseComplete', undefined]]);
  });
});
