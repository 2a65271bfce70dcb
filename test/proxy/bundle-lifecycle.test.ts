// Bundles over time, against the real sandbox cluster: expiry is announced before it bites
// (metric, /readyz warning, log), fails closed when it does, and rollback protection holds
// across replica restarts through the floor the replicas share in a ConfigMap.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../core/bundle.ts';
import { DirectoryFloors } from '../../runtime-proxy/revision-floor.ts';
import type { ProxyConfig } from '../../runtime-proxy/config.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, writeBundle, type Harness } from './harness.ts';

const NS = 'bundle-lifecycle';
const READ = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }];
const RULES = ruleSet('dev', [grant('dev-read', [group('oidc:developers')], READ, ns(NS))], { users: ['oidc:alice'] });
const RBAC = manifestsYaml(upstreamRole(NS, 'dev-read', [group('oidc:developers')], READ));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DAY = 86_400_000;

describe('bundle expiry at the proxy', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN a bundle that expires in 3 days WHEN probed THEN ready with a /readyz warning, the expiry as a metric and a warning in the log; past notAfter THEN not ready and every request refused', async () => {
    const dir = join(h.dir, 'expiring');
    const notAfter = Date.now() + 3 * DAY;
    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: 1, notAfter: new Date(notAfter).toISOString() });
    const withDir = (d: string) => (c: ProxyConfig): ProxyConfig => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, metrics: { listen: { host: '127.0.0.1', port: 0 } }, clusters: [{ ...(c.clusters[0] as ProxyConfig['clusters'][0]), bundle: { kind: 'directory', path: d, pollIntervalMs: 200 } }] });
    const x = await h.extraProxy(withDir(dir));
    try {
      const ready = await h.request('GET', '/readyz', [], undefined, x.port);
      assert.equal(ready.status, 200);
      assert.match(ready.body, /^ok\nwarning: cluster dev: bundle revision 1 expires \S+ \(in 2d 23h\); renew it/);
      const metrics = (await h.scrape('/metrics', x.metricsPort)).body;
      assert.match(metrics, new RegExp(`portcullis_bundle_expiry_timestamp_seconds\\{cluster="dev"\\} ${notAfter / 1000}`));
      assert.equal(x.logs().filter((l) => l['msg'] === 'bundle expires soon: renew it (portcullis compile --renew-within, then apply)').length, 1);
    } finally {
      await x.proxy.stop();
    }

    // Past notAfter: the documented choice is to fail closed (503 for every request), never to serve on a stale policy.
    const soon = join(h.dir, 'expires-now');
    writeBundle(soon, RULES, h.signingKey, h.keyId, { revision: 1, notAfter: new Date(Date.now() + 1500).toISOString() });
    const y = await h.extraProxy(withDir(soon));
    try {
      const token = await h.token('alice', ['developers']);
      const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
      const first = await h.request('GET', path, [['Authorization', `Bearer ${token}`]], undefined, y.port);
      assert.equal(first.status, 200, first.body);
      await sleep(1600);
      const ready = await h.request('GET', '/readyz', [], undefined, y.port);
      assert.equal(ready.status, 503);
      assert.match(ready.body, /cluster dev: bundle revision 1 expired at \S+; every request is refused until a renewed bundle is applied/);
      const r = await h.request('GET', path, [['Authorization', `Bearer ${token}`]], undefined, y.port);
      assert.equal(r.status, 503);
      assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'ServiceUnavailable');
    } finally {
      await y.proxy.stop();
    }
  });
});

describe('rollback protection across restarts', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN replicas sharing their revision floor in a ConfigMap WHEN a restarted replica is offered an older signed bundle, or revision 5 with other bytes THEN it refuses them and stays not ready; revision 6 is accepted and raises the floor', async () => {
    const name = `portcullis-bundle-revisions-${Date.now().toString(36)}`;
    assert.equal(h.admin(['create', 'configmap', name, '-n', 'portcullis-system']).status, 0);
    const tokenFile = h.configMapAccount(name, 'floor', ['get', 'update']);
    const dir = join(h.dir, 'floor-bundle');
    const replica = (log: string) =>
      h.extraProxy((c) => ({
        ...c,
        listen: { host: '127.0.0.1', port: 0 },
        audit: { ...c.audit, file: { path: join(h.dir, log), maxBytes: 1e6, maxFiles: 1 } },
        clusters: [{ ...(c.clusters[0] as ProxyConfig['clusters'][0]), bundle: { kind: 'directory', path: dir, pollIntervalMs: 100 } }],
        revisionFloor: { configMap: { cluster: 'dev', tokenFile, namespace: 'portcullis-system', name } },
      }));
    const floorOf = () => {
      const r = h.admin(['get', 'configmap', name, '-n', 'portcullis-system', '-o', 'json']);
      return JSON.parse((JSON.parse(r.stdout) as { data?: Record<string, string> }).data?.['dev'] ?? 'null') as { revision: number; envelopeSha256: string } | null;
    };

    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: 5 });
    const five = readFileSync(join(dir, 'bundle.sig.json'));
    const a = await replica('audit-a.log');
    assert.equal(a.proxy.store('dev')?.current(Date.now())?.revision, 5);
    assert.deepEqual(floorOf(), { revision: 5, envelopeSha256: sha256(five) });
    await a.proxy.stop();

    // An older bundle, validly signed and unexpired: what a replay of the ConfigMap would deliver.
    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: 4 });
    const b = await replica('audit-b.log');
    try {
      assert.equal(b.proxy.store('dev')?.current(Date.now()), undefined);
      const refused = b.logs().find((l) => l['msg'] === 'bundle refused; keeping the last good bundle');
      assert.equal(refused?.['code'], 'BUNDLE_ROLLBACK');
      assert.equal((await h.request('GET', '/readyz', [], undefined, b.port)).status, 503);
      const token = await h.token('alice', ['developers']);
      assert.equal((await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${token}`]], undefined, b.port)).status, 503);

      // Revision 5 again, but other bytes (another expiry, another source): not the bundle that was accepted.
      writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: 5, notAfter: new Date(Date.now() + 2 * DAY).toISOString() });
      const r5 = await b.proxy.reload('dev');
      assert.deepEqual(r5 && r5.result === 'rejected' ? [r5.code, r5.message] : r5, ['BUNDLE_ROLLBACK', 'BUNDLE_ROLLBACK: revision 5 was accepted before with other content']);

      writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: 6 });
      for (let i = 0; i < 100 && b.proxy.store('dev')?.current(Date.now())?.revision !== 6; i++) await sleep(20);
      assert.equal(b.proxy.store('dev')?.current(Date.now())?.revision, 6);
      // Recorded right after the swap (the write to the ConfigMap follows it).
      for (let i = 0; i < 100 && floorOf()?.revision !== 6; i++) await sleep(20);
      assert.equal(floorOf()?.revision, 6);
      assert.equal((await h.request('GET', '/readyz', [], undefined, b.port)).status, 200);
    } finally {
      await b.proxy.stop();
    }
  });

  it('GIVEN a floor store that cannot be read WHEN a replica starts THEN it accepts no bundle (fail closed) and says why', async () => {
    const x = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      revisionFloor: { configMap: { cluster: 'dev', tokenFile: join(h.dir, 'no-such.token'), namespace: 'portcullis-system', name: 'portcullis-no-such-floor' } },
    }));
    try {
      assert.equal(x.proxy.store('dev')?.current(Date.now()), undefined);
      const ready = await h.request('GET', '/readyz', [], undefined, x.port);
      assert.equal(ready.status, 503);
      assert.match(ready.body, /revision floors not read yet/);
      assert.ok(x.logs().some((l) => l['msg'] === 'cannot read the shared revision floors; accepting no bundle until they can be read'));
    } finally {
      await x.proxy.stop();
    }
  });
});

describe('DirectoryFloors', () => {
  it('GIVEN two replicas raising the same directory out of order THEN the highest revision stays, and older files are tidied', async () => {
    const dir = mkdtempSync(join(process.cwd(), '.tmp-test-floors-'));
    try {
      const a = new DirectoryFloors(dir);
      const b = new DirectoryFloors(dir);
      const f = (revision: number) => ({ revision, envelopeSha256: sha256(`r${revision}`) });
      await a.raise('dev', f(3));
      await b.raise('dev', f(7));
      await a.raise('dev', f(5)); // a slower replica, late: never lowers the floor
      await b.raise('staging', f(2));
      assert.deepEqual([...(await new DirectoryFloors(dir).load())].sort(), [['dev', f(7)], ['staging', f(2)]]);
      assert.deepEqual(readdirSync(dir).sort(), ['dev.7.json', 'staging.2.json']);
      await assert.rejects(a.raise('../x', f(1)), /not a cluster name/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

