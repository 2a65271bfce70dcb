// Long-running requests through the proxy with real kubectl: watch, exec and
// port-forward over WebSocket and SPDY against the sandbox's fake kubelet, and
// revocation by a new bundle closing a live watch and a live exec within 1 s.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { echoThroughPortForward, SPDY, WS } from '../support/streams.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, writeBundle, type Harness } from './harness.ts';

const NS = 'proxy-streams';
const READ = grant('dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps', 'pods'] }], ns(NS), { line: 5 });
const EXEC = grant('ops-exec', [user('oidc:olivia')], [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods', 'configmaps'] },
  { verbs: ['create'], apiGroups: [''], resources: ['pods/exec', 'pods/portforward', 'pods/attach'] },
  { verbs: ['get'], apiGroups: [''], resources: ['pods/log'] },
], ns(NS), { line: 9 });
const RULES = ruleSet('dev', [READ, EXEC], { users: ['oidc:alice'] });

const RBAC = manifestsYaml(upstreamRole(NS, 'streams', [group('oidc:developers'), user('oidc:olivia')], [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps', 'pods'] },
  { verbs: ['get', 'create'], apiGroups: [''], resources: ['pods/exec', 'pods/portforward', 'pods/attach'] },
  { verbs: ['get'], apiGroups: [''], resources: ['pods/log'] },
]));


describe('long-running requests through the proxy', () => {
  let h: Harness;
  let pod: string;
  let olivia: string;
  let alice: string;
  let revision = 1;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
    pod = await h.fleet.createPod(h.cluster, NS, { name: 'streamer' });
    olivia = h.kubeconfig(await h.token('olivia', []));
    alice = h.kubeconfig(await h.token('alice', ['developers']));
  });
  after(async () => {
    await h?.stop();
  });

  for (const [name, env] of [['WebSocket', WS], ['SPDY', SPDY]] as const) {
    it(`GIVEN an exec grant WHEN kubectl exec runs over ${name} THEN stdout and stdin flow through the proxy`, async () => {
      let r = await h.kubectl(olivia, ['exec', pod, '-n', NS, '--', 'echo', 'hello', name], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `hello ${name}\n`);
      r = await h.kubectl(olivia, ['exec', '-i', pod, '-n', NS, '--', 'cat'], env, 'piped through\n');
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'piped through\n');
      const transports = h.auditEvents().filter((e) => e.objectRef?.subresource === 'exec' && e.stage === 'ResponseStarted').map((e) => e.annotations['portcullis.dev/transport']);
      assert.ok(transports.includes(name === 'SPDY' ? 'spdy' : 'websocket'), transports.join());
    });

    it(`GIVEN a port-forward grant WHEN kubectl port-forward runs over ${name} THEN bytes echo through the fake kubelet's port 7`, async () => {
      assert.equal(await echoThroughPortForward(h, olivia, NS, pod, env, `ping over ${name}`), `ping over ${name}`);
    });

    it(`GIVEN only a read grant WHEN alice execs over ${name} THEN the proxy refuses with 403 before any upgrade`, async () => {
      const r = await h.kubectl(alice, ['exec', pod, '-n', NS, '--', 'echo', 'no'], env);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /forbidden|Forbidden/);
      assert.doesNotMatch(r.stdout, /no/);
    });
  }

  it('GIVEN 4 kubectl exec -it sessions in parallel over WebSocket, 200 in all, each on a real pty WHEN each command ends THEN every session exits 0 with its output and none closes abnormally (1006)', async () => {
    const failures: string[] = [];
    let done = 0;
    const worker = async (w: number): Promise<void> => {
      for (let i = w; i < 200; i += 4) {
        const r = await h.kubectlOnTty(olivia, ['exec', '-it', pod, '-n', NS, '--', 'echo', `tty-${i}`], WS);
        done++;
        const out = r.stdout + r.stderr;
        if (r.status !== 0 || !out.includes(`tty-${i}`) || /1006|abnormal|unexpected EOF/.test(out)) failures.push(`#${i} exit ${r.status}: ${out.trim()}`);
      }
    };
    await Promise.all([0, 1, 2, 3].map(worker));
    assert.equal(done, 200);
    assert.deepEqual(failures, []);
    const ttys = h.auditEvents().filter((e) => e.objectRef?.subresource === 'exec' && e.stage === 'ResponseStarted' && /tty=true/.test(e.requestURI));
    assert.ok(ttys.length >= 200, `audited tty execs: ${ttys.length}`);
  });

  it('GIVEN an attach grant WHEN kubectl attach -i runs THEN the container greets and echoes stdin', async () => {
    const r = await h.kubectl(olivia, ['attach', '-i', pod, '-n', NS], {}, 'hello attach\n');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /attached to .*streamer/);
    assert.match(r.stdout, /hello attach/);
  });

  it('GIVEN a logs grant WHEN kubectl logs -f follows THEN lines stream and the request is long-running (ResponseStarted, then ResponseComplete)', async () => {
    const l = h.spawnKubectl(olivia, ['logs', '-f', pod, '-n', NS]);
    try {
      await l.waitFor(/\S/);
      const first = l.out().length;
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(l.out().length > first, 'more lines arrived while following');
      assert.equal(h.proxy.streams.list('dev').filter((s) => s.attributes.subresource === 'log').length, 1);
    } finally {
      l.kill();
    }
    await l.exited;
    await new Promise((r) => setTimeout(r, 200));
    const stages = h.auditEvents().filter((e) => e.objectRef?.subresource === 'log').map((e) => e.stage);
    assert.deepEqual(stages, ['ResponseStarted', 'ResponseComplete']);
  });

  it('GIVEN a live watch WHEN a configmap is created THEN the event streams through', async () => {
    const w = h.spawnKubectl(alice, ['get', 'configmaps', '-n', NS, '-w', '-o', 'name']);
    try {
      await w.waitFor(/configmap\/kube-root-ca\.crt/);
      const name = `watched-${Date.now()}`;
      assert.equal(h.admin(['create', 'configmap', name, '-n', NS]).status, 0);
      await w.waitFor(new RegExp(`configmap/${name}`));
    } finally {
      w.kill();
    }
  });

  it('GIVEN a live watch and a live exec WHEN a new bundle revoking their grants lands in the bundle directory THEN both close within 1 s and the audit says revoked', async () => {
    const w = h.spawnKubectl(alice, ['get', 'configmaps', '-n', NS, '-w', '-o', 'name']);
    const x = h.spawnKubectl(olivia, ['exec', pod, '-n', NS, '--', 'sleep', '60']);
    await w.waitFor(/configmap\//);
    // exec has no output; wait until the proxy registered it as a live stream
    const deadline = Date.now() + 15_000;
    while (h.proxy.streams.list('dev').filter((s) => s.attributes.subresource === 'exec').length === 0) {
      assert.ok(Date.now() < deadline, `exec never went live: ${x.err()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const t0 = Date.now();
    // Only the files change: the proxy's directory watch must notice by itself.
    writeBundle(h.bundleDirOf('dev'), ruleSet('dev', [], { users: ['oidc:alice', 'oidc:olivia'], groups: ['oidc:developers'] }), h.signingKey, h.keyId, { revision: ++revision });
    const [wc, xc] = await Promise.all([w.exited, x.exited]);
    const took = Date.now() - t0;
    assert.ok(took < 1000, `streams closed after ${took} ms`);
    assert.notEqual(xc, 0);
    void wc;
    // A session's last record follows its recording's close, just after the connection ends.
    const revoked = (es: ReturnType<Harness['auditEvents']>) => es.filter((e) => e.stage === 'ResponseComplete' && e.annotations['portcullis.dev/stream-end'] === 'revoked');
    const ends = revoked(await h.auditEventsWhen((es) => revoked(es).some((e) => e.objectRef?.subresource === 'exec') && revoked(es).some((e) => e.verb === 'watch')));
    assert.ok(ends.some((e) => e.objectRef?.subresource === 'exec'), 'exec end audited');
    assert.ok(ends.some((e) => e.verb === 'watch'), 'watch end audited');
    // and new requests are denied under the new revision
    const r = await h.kubectl(alice, ['get', 'configmaps', '-n', NS]);
    assert.notEqual(r.status, 0);
    await h.publish(RULES, ++revision);
  });
});
