// A cluster the proxy cannot reach itself (no upstream URL, no credential in its configuration),
// served through `portcullis agent` processes that connect out to the proxy: the kubectl matrix,
// agents killed mid-watch and mid-exec, a proxy replica restarted, the tunnel cut, and every way a
// tunnel must be refused.
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { ensureBinaries } from '../../sandbox/build.ts';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { echoThroughPortForward, SPDY, WS } from '../support/streams.ts';
import { keyThumbprint, signAssertion, signRegistration, TUNNEL_PATH, TUNNEL_UPGRADE, connectionBinding } from '../../agent/protocol.ts';
import { grant, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, type AgentProcess, type Harness } from '../proxy/harness.ts';

const NS = 'agent-tunnel';
const RULES = ruleSet('dev', [
  grant('ops', [user('oidc:olivia')], [
    { verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], apiGroups: [''], resources: ['configmaps', 'pods', 'secrets'] },
    { verbs: ['create'], apiGroups: [''], resources: ['pods/exec', 'pods/portforward', 'pods/attach'] },
    { verbs: ['get'], apiGroups: [''], resources: ['pods/log'] },
  ], ns(NS), { line: 7 }),
], { users: ['oidc:alice'] });
const RBAC = manifestsYaml(upstreamRole(NS, 'tunnel', [user('oidc:olivia')], [
  { verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], apiGroups: [''], resources: ['configmaps', 'pods', 'secrets'] },
  { verbs: ['get', 'create'], apiGroups: [''], resources: ['pods/exec', 'pods/portforward', 'pods/attach'] },
  { verbs: ['get'], apiGroups: [''], resources: ['pods/log'] },
]));

/** Opens a tunnel by hand as an agent would, returning the proxy's answer to the upgrade request. */
function dialTunnel(port: number, caPem: Buffer, headers: (binding: string) => Promise<Record<string, string>>): Promise<{ status: number; refusal: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: caPem, minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'] }, () => {
      void headers(connectionBinding(s)).then((h) => {
        const lines = [`GET ${TUNNEL_PATH} HTTP/1.1`, 'host: 127.0.0.1', 'connection: Upgrade', `upgrade: ${TUNNEL_UPGRADE}`, ...Object.entries(h).map(([k, v]) => `${k}: ${v}`)];
        s.write(`${lines.join('\r\n')}\r\n\r\n`);
      }, reject);
    });
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      const head = got.indexOf('\r\n\r\n');
      if (head < 0) return;
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0);
      const refusal = /portcullis-tunnel-refusal: ([\w-]+)/i.exec(got)?.[1] ?? '';
      s.destroy();
      resolve({ status, refusal, body: got.slice(head + 4) });
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error('no answer')), 10_000).unref();
  });
}

describe('a cluster behind its agent', () => {
  let h: Harness;
  let pod: string;
  let olivia: string;
  const agents: AgentProcess[] = [];
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES, agent: {} });
    pod = await h.fleet.createPod(h.cluster, NS, { name: 'tunnelled' });
    olivia = h.kubeconfig(await h.token('olivia', []));
  });
  after(async () => {
    for (const a of agents) a.kill();
    await h?.stop();
  });

  it('GIVEN no agent connected WHEN kubectl asks THEN a 503 Status comes at once, never a hang; the proxy configuration names no upstream for the cluster', async () => {
    assert.equal(h.config.clusters[0]?.upstream, undefined);
    assert.doesNotMatch(readFileSync(join(h.dir, 'proxy.yaml'), 'utf8'), new RegExp(h.cluster.server.replace(/[.:/]/g, '\\$&')));
    const t0 = Date.now();
    const r = await h.kubectl(olivia, ['get', 'configmaps', '-n', NS, '--request-timeout=5s']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /agent is not connected|ServiceUnavailable|503/);
    assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
    const refused = h.auditEvents().filter((e) => e.annotations['portcullis.dev/error'] === 'AGENT_UNAVAILABLE');
    assert.ok(refused.length >= 1, 'the refusal is audited');
  });

  it('GIVEN the agent registers with its one-time credential WHEN kubectl runs get/list/watch/apply/delete, logs -f, exec and port-forward over WebSocket and SPDY THEN every one works through the tunnel', async () => {
    const a = h.startAgent();
    agents.push(a);
    await a.opened(1);
    let r = await h.kubectl(olivia, ['get', 'pods', '-n', NS, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`pod/${pod}`));
    r = await h.kubectl(olivia, ['create', 'configmap', 'through-tunnel', '-n', NS, '--from-literal=k=v']);
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(olivia, ['apply', '-n', NS, '-f', '-'], {}, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: NS }, data: { big: 'x'.repeat(200_000) } }));
    assert.equal(r.status, 0, r.stderr);
    r = await h.kubectl(olivia, ['get', 'configmap', 'applied', '-n', NS, '-o', 'jsonpath={.data.big}']);
    assert.equal(r.stdout.length, 200_000, 'a 200 kB body both ways');
    const w = h.spawnKubectl(olivia, ['get', 'configmaps', '-n', NS, '--watch', '-o', 'name']);
    try {
      await w.waitFor(/configmap\/through-tunnel/);
      r = await h.kubectl(olivia, ['create', 'configmap', 'watched', '-n', NS]);
      assert.equal(r.status, 0, r.stderr);
      await w.waitFor(/configmap\/watched/);
    } finally {
      w.kill();
    }
    r = await h.kubectl(olivia, ['delete', 'configmap', 'through-tunnel', 'watched', 'applied', '-n', NS]);
    assert.equal(r.status, 0, r.stderr);
    const logs = h.spawnKubectl(olivia, ['logs', '-f', pod, '-n', NS]);
    try {
      await logs.waitFor(/\S+\n\S+/);
    } finally {
      logs.kill();
    }
    for (const [name, env] of (process.env['ONLY_SPDY'] ? [['SPDY', SPDY]] : [['WebSocket', WS], ['SPDY', SPDY]]) as [string, Record<string, string>][]) {
      r = await h.kubectl(olivia, ['exec', pod, '-n', NS, '--', 'echo', 'hello', name], env);
      assert.equal(r.status, 0, `${r.stderr}\n${JSON.stringify(h.auditEvents().filter((e) => e.objectRef?.subresource === 'exec'))}\n${a.raw().split('\n').filter((l) => !l.startsWith('{')).slice(-80).join('\n')}`);
      assert.equal(r.stdout, `hello ${name}\n`);
      r = await h.kubectl(olivia, ['exec', '-i', pod, '-n', NS, '--', 'cat'], env, 'piped through the tunnel\n');
      assert.equal(r.stdout, 'piped through the tunnel\n', r.stderr);
      assert.equal(await echoThroughPortForward(h, olivia, NS, pod, env, `ping over ${name}`), `ping over ${name}`);
    }
    r = await h.kubectlOnTty(olivia, ['exec', '-it', pod, '-n', NS, '--', 'echo', 'on a tty'], WS);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /on a tty/);
    // Forbidden stays forbidden: decided at the proxy, before the tunnel.
    r = await h.kubectl(olivia, ['get', 'nodes']);
    assert.match(r.stderr, /forbidden/i);
    const registered = h.logs().filter((l) => l['msg'] === 'agent registered');
    assert.equal(registered.length, 1);
  });

  it('GIVEN the tunnel WHEN helm installs, upgrades and uninstalls a chart THEN it works as it does directly', async () => {
    const { helm } = await ensureBinaries({ log: () => undefined });
    const home = mkdtempSync(join(tmpdir(), 'portcullis-helm-'));
    const chart = join(home, 'chart');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: tunnelled\nversion: 0.1.0\n');
    writeFileSync(join(chart, 'templates', 'config.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  colour: {{ .Values.colour | default "teal" | quote }}\n');
    // Asynchronously: the proxy under test runs in this very process.
    const run = (args: readonly string[]) =>
      new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const p = spawn(helm, ['--kubeconfig', olivia, '-n', NS, ...args], { env: { ...process.env, HOME: home, HELM_CACHE_HOME: join(home, 'c'), HELM_CONFIG_HOME: join(home, 'f'), HELM_DATA_HOME: join(home, 'd') } });
        let stderr = '';
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        p.stdout.resume();
        p.on('close', (status) => resolve({ status, stderr }));
      });
    let r = await run(['install', 'through', chart]);
    assert.equal(r.status, 0, r.stderr);
    r = await run(['upgrade', 'through', chart, '--set', 'colour=red']);
    assert.equal(r.status, 0, r.stderr);
    assert.match((await h.kubectl(olivia, ['get', 'configmap', 'through-config', '-n', NS, '-o', 'jsonpath={.data.colour}'])).stdout, /red/);
    r = await run(['uninstall', 'through']);
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual((await h.kubectl(olivia, ['get', 'configmap', 'through-config', '-n', NS])).status, 0, 'gone');
    rmSync(home, { recursive: true, force: true });
  });

  it('GIVEN two agent replicas WHEN one is killed mid-watch and mid-exec THEN those streams end audited tunnel-lost and new requests are carried by the other within 2 s', async () => {
    const second = h.startAgent();
    agents.push(second);
    await second.opened(1);
    const first = agents[0] as AgentProcess;
    // Streams on both tunnels: the proxy spreads them by open streams, so some ride on the first.
    const watches = [0, 1, 2, 3].map(() => h.spawnKubectl(olivia, ['get', 'configmaps', '-n', NS, '--watch', '-o', 'name']));
    const execs = [0, 1].map(() => h.spawnKubectl(olivia, ['exec', '-i', pod, '-n', NS, '--', 'cat'], WS));
    try {
      for (const w of watches) await w.waitFor(/kube-root-ca/);
      for (const e of execs) e.write('x\n');
      for (const e of execs) await e.waitFor(/x/);
      first.kill('SIGKILL');
      const t0 = Date.now();
      let served = false;
      while (Date.now() - t0 < 2000 && !served) {
        const r = await h.kubectl(olivia, ['get', 'pods', '-n', NS, '-o', 'name', '--request-timeout=2s']);
        served = r.status === 0;
      }
      assert.ok(served, 'a new request was served by the other agent within 2 s');
      const lost = await h.auditEventsWhen((ev) => ev.some((e) => e.annotations['portcullis.dev/stream-end'] === 'tunnel-lost'), 5000);
      const ends = lost.filter((e) => e.annotations['portcullis.dev/stream-end'] === 'tunnel-lost');
      assert.ok(ends.length >= 1, 'the streams on the killed agent ended tunnel-lost');
      // The other agent goes too (a cut of the cluster's network): 503 at once, never a hang.
      second.kill('SIGKILL');
      await second.exited;
      const t1 = Date.now();
      let r = await h.kubectl(olivia, ['get', 'pods', '-n', NS, '--request-timeout=5s']);
      for (let i = 0; i < 20 && !/503|ServiceUnavailable|agent is not connected/.test(r.stderr); i++) r = await h.kubectl(olivia, ['get', 'pods', '-n', NS, '--request-timeout=5s']);
      assert.match(r.stderr, /agent is not connected|ServiceUnavailable/);
      assert.ok(Date.now() - t1 < 5000, `503 within ${Date.now() - t1} ms`);
    } finally {
      for (const w of watches) w.kill();
      for (const e of execs) e.kill();
    }
  });

  it('GIVEN a second proxy replica WHEN it is stopped and started again on its port THEN the agent reconnects to it, and it serves the cluster', async () => {
    const x = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, audit: { ...c.audit, file: { path: `${h.auditFile}.x`, maxBytes: 1e6, maxFiles: 1 } } }));
    const a = h.startAgent({ ports: [h.port, x.port] });
    agents.push(a);
    await a.opened(2);
    const viaX = h.kubeconfig(await h.token('olivia', []));
    const kc = readFileSync(viaX, 'utf8').replace(`127.0.0.1:${h.port}/`, `127.0.0.1:${x.port}/`);
    writeFileSync(viaX, kc);
    let r = await h.kubectl(viaX, ['get', 'pods', '-n', NS, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    await x.proxy.stop();
    const y = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: x.port }, audit: { ...c.audit, file: { path: `${h.auditFile}.y`, maxBytes: 1e6, maxFiles: 1 } } }));
    await a.opened(3, 30_000);
    r = await h.kubectl(viaX, ['get', 'pods', '-n', NS, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    await y.proxy.stop();
  });

  it('GIVEN a replayed or expired credential, another key claiming the cluster, an agent of another cluster, a forged or foreign assertion THEN each tunnel is refused with its reason, and logged', async () => {
    const ca = readFileSync(h.proxyCa.caFile);
    const agentKey = { privateKey: (await import('node:crypto')).createPrivateKey(readFileSync(h.agentFiles.key)) };
    const pub = (await import('node:crypto')).createPublicKey(agentKey.privateKey);
    const regKey = (await import('node:crypto')).createPrivateKey(readFileSync(h.agentFiles.registrationKey));
    const other = generateKeyPairSync('ed25519');
    // The registered key works without the credential.
    let r = await dialTunnel(h.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(agentKey.privateKey, pub, 'dev', b)}` }));
    assert.equal(r.status, 101);
    // Another key claiming dev: with no credential, with the used one, with a fresh one for it.
    r = await dialTunnel(h.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(other.privateKey, other.publicKey, 'dev', b)}` }));
    assert.deepEqual([r.status, r.refusal], [403, 'other-agent']);
    const fresh = await signRegistration(regKey, h.agentFiles.registrationKeyId, 'dev', await keyThumbprint(other.publicKey), 60_000);
    r = await dialTunnel(h.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(other.privateKey, other.publicKey, 'dev', b)}`, 'portcullis-registration': fresh }));
    assert.deepEqual([r.status, r.refusal], [403, 'other-agent']);
    // An agent of dev presenting itself as staging: unknown here, and never dev's tunnel.
    r = await dialTunnel(h.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(agentKey.privateKey, pub, 'staging', b)}` }));
    assert.deepEqual([r.status, r.refusal], [403, 'unknown-cluster']);
    // An assertion made for another connection (replayed) is refused.
    const elsewhere = await signAssertion(agentKey.privateKey, pub, 'dev', Buffer.alloc(32).toString('base64url'));
    r = await dialTunnel(h.port, ca, async () => ({ authorization: `Bearer ${elsewhere}` }));
    assert.deepEqual([r.status, r.refusal], [401, 'bad-assertion']);
    // A credential replayed, and an expired one, on a proxy where dev is not registered yet (fresh store).
    const x = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, agents: { ...c.agents!, stateDir: join(h.dir, 'agents-x') }, audit: { ...c.audit, file: { path: `${h.auditFile}.z`, maxBytes: 1e6, maxFiles: 1 } } }));
    try {
      const expired = await signRegistration(regKey, h.agentFiles.registrationKeyId, 'dev', await keyThumbprint(pub), 1000, Date.now() - 120_000);
      r = await dialTunnel(x.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(agentKey.privateKey, pub, 'dev', b)}`, 'portcullis-registration': expired }));
      assert.deepEqual([r.status, r.refusal], [401, 'bad-registration']);
      const once = await signRegistration(regKey, h.agentFiles.registrationKeyId, 'dev', await keyThumbprint(pub), 60_000);
      r = await dialTunnel(x.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(agentKey.privateKey, pub, 'dev', b)}`, 'portcullis-registration': once }));
      assert.equal(r.status, 101);
      // The same credential again, for another cluster's name or the same: used.
      const y = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, agents: { ...c.agents!, stateDir: join(h.dir, 'agents-x') }, audit: { ...c.audit, file: { path: `${h.auditFile}.w`, maxBytes: 1e6, maxFiles: 1 } } }));
      try {
        rmPin(join(h.dir, 'agents-x'));
        r = await dialTunnel(y.port, ca, async (b) => ({ authorization: `Bearer ${await signAssertion(agentKey.privateKey, pub, 'dev', b)}`, 'portcullis-registration': once }));
        assert.deepEqual([r.status, r.refusal], [403, 'registration-used']);
      } finally {
        await y.proxy.stop();
      }
      const why = x.logs().filter((l) => l['msg'] === 'agent tunnel refused').map((l) => l['reason']);
      assert.ok(why.includes('bad-registration'), why.join());
    } finally {
      await x.proxy.stop();
    }
    const why = h.logs().filter((l) => l['msg'] === 'agent tunnel refused').map((l) => l['reason']);
    for (const reason of ['other-agent', 'unknown-cluster', 'bad-assertion']) assert.ok(why.includes(reason), `${reason} logged: ${why.join()}`);
  });

  it('GIVEN a tunnel limited to 2 streams WHEN 2 watches hold it THEN a third request is refused at once with 503, and served again once a watch ends', async () => {
    const x = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, agents: { ...c.agents!, limits: { ...c.agents!.limits, maxStreams: 2 } }, audit: { ...c.audit, file: { path: `${h.auditFile}.lim`, maxBytes: 1e6, maxFiles: 1 } } }));
    const a = h.startAgent({ ports: [x.port] });
    try {
      await a.opened(1);
      const kc = h.kubeconfig(await h.token('olivia', []));
      writeFileSync(kc, readFileSync(kc, 'utf8').replace(`127.0.0.1:${h.port}/`, `127.0.0.1:${x.port}/`));
      // The agent says the tunnel is open a moment before this replica has registered it: wait until it serves.
      for (let i = 0; i < 50; i++) {
        if ((await h.kubectl(kc, ['get', '--raw', `/api/v1/namespaces/${NS}/configmaps`])).status === 0) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      // --raw: no discovery requests of its own.
      const watches = [0, 1].map(() => h.spawnKubectl(kc, ['get', '--raw', `/api/v1/namespaces/${NS}/configmaps?watch=true`]));
      for (const w of watches) await w.waitFor(/ADDED/);
      let r = await h.kubectl(kc, ['get', '--raw', `/api/v1/namespaces/${NS}/configmaps`]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /ServiceUnavailable|agent is not connected|503/);
      watches[0]?.kill();
      await watches[0]?.exited;
      for (let i = 0; i < 20; i++) {
        r = await h.kubectl(kc, ['get', '--raw', `/api/v1/namespaces/${NS}/configmaps`]);
        if (r.status === 0) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(r.status, 0, r.stderr);
      watches[1]?.kill();
    } finally {
      a.kill();
      await x.proxy.stop();
    }
  });

  it('GIVEN an open tunnel WHEN the agent side sends bytes that are not HTTP/2 THEN the proxy ends that tunnel, logs it, and keeps serving through the others', async () => {
    const ca = readFileSync(h.proxyCa.caFile);
    const key = (await import('node:crypto')).createPrivateKey(readFileSync(h.agentFiles.key));
    const pub = (await import('node:crypto')).createPublicKey(key);
    await new Promise<void>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca, minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'] }, () => {
        void signAssertion(key, pub, 'dev', connectionBinding(s)).then((a) => s.write(`GET ${TUNNEL_PATH} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: ${TUNNEL_UPGRADE}\r\nauthorization: Bearer ${a}\r\n\r\n`));
      });
      let opened = false;
      s.on('data', (c: Buffer) => {
        if (!opened && c.toString('latin1').startsWith('HTTP/1.1 101')) {
          opened = true;
          // A frame header announcing 16 MiB of DATA on stream 1: oversized and out of order.
          s.write(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]), Buffer.alloc(1024, 0x41)]));
        }
      });
      s.on('close', () => (opened ? resolve() : reject(new Error('no tunnel'))));
      s.on('error', () => undefined);
      setTimeout(() => reject(new Error('the proxy kept a broken tunnel open')), 10_000).unref();
    });
    const r = await h.kubectl(olivia, ['get', 'pods', '-n', NS, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(h.logs().some((l) => l['msg'] === 'agent tunnel failed' || l['msg'] === 'agent tunnel frame error'), 'logged');
  });
});

/** Removes the pins of a directory store (keeps the used credentials): a cluster to register again. */
function rmPin(dir: string): void {
  rmSync(join(dir, 'clusters', 'dev.json'), { force: true });
}

describe('what crosses a tunnel', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES, agent: {} });
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN an agent that answers every stream itself WHEN kubectl asks through it THEN the proxy sent the exact target and the impersonation, and no credential (the agent adds its own)', async () => {
    const key = (await import('node:crypto')).createPrivateKey(readFileSync(h.agentFiles.key));
    const pub = (await import('node:crypto')).createPublicKey(key);
    const reg = readFileSync(h.agentFiles.registration, 'utf8');
    const seen: Record<string, unknown>[] = [];
    const server = (await import('node:http2')).createServer({ settings: { enableConnectProtocol: true } });
    server.on('stream', (stream, headers) => {
      seen.push({ ...headers });
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ kind: 'ConfigMapList', apiVersion: 'v1', metadata: {}, items: [] }));
    });
    const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: readFileSync(h.proxyCa.caFile), minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'] }, () => {
      void signAssertion(key, pub, 'dev', connectionBinding(s)).then((a) =>
        s.write(`GET ${TUNNEL_PATH} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: ${TUNNEL_UPGRADE}\r\nauthorization: Bearer ${a}\r\nportcullis-registration: ${reg}\r\n\r\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      s.once('data', (c: Buffer) => {
        const text = c.toString('latin1');
        if (!text.startsWith('HTTP/1.1 101')) return reject(new Error(text));
        const rest = c.subarray(text.indexOf('\r\n\r\n') + 4);
        if (rest.length > 0) s.unshift(rest);
        (s as { alpnProtocol: string | false | null }).alpnProtocol = 'h2';
        server.emit('connection', s);
        resolve();
      });
    });
    const kc = h.kubeconfig(await h.token('olivia', []));
    // --raw: no discovery first (this agent answers everything with the same list).
    const r = await h.kubectl(kc, ['get', '--raw', `/api/v1/namespaces/${NS}/configmaps`]);
    assert.equal(r.status, 0, r.stderr);
    const list = seen.find((x) => String(x[':path']).startsWith(`/api/v1/namespaces/${NS}/configmaps`));
    assert.ok(list, JSON.stringify(seen));
    assert.equal(list['authorization'], undefined, 'no credential leaves the proxy for a tunnelled cluster');
    assert.equal(list['impersonate-user'], 'oidc:olivia');
    s.destroy();
  });
});
