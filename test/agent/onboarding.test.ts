// From `portcullis cluster add` to the first `kubectl get pods` through the proxy, with one
// `kubectl apply` of the bootstrap manifest on a cluster the proxy has never heard of. The cluster
// is a sandbox cluster of its own (started here): its bootstrap applies cluster-wide RBAC, which
// must not land on the shared fleet the other tests compare against their compiled RBAC.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { downFleet, upFleet } from '../../sandbox/fleet.ts';
import type { ClusterInfo } from '../../sandbox/cluster.ts';
import { makeWorkspace, type Workspace } from '../gitops/workspace.ts';
import { startHarness, type Harness } from '../proxy/harness.ts';
import { runAgentDeployment, type AgentPods } from '../support/agent-deployment.ts';

describe('onboarding a cluster behind its agent', () => {
  let h: Harness;
  let ws: Workspace;
  let edge: ClusterInfo;
  let fleetDir: string;
  let pods: AgentPods | undefined;
  let regKeyFile: string;
  before(async () => {
    fleetDir = mkdtempSync(join(tmpdir(), 'portcullis-edge-'));
    const fleet = await upFleet({ dir: fleetDir, names: ['edge'], log: () => undefined });
    edge = fleet.clusters[0] as ClusterInfo;
    h = await startHarness({ impersonable: { users: [], groups: [] } });
    ws = makeWorkspace();
    const reg = generateKeyPairSync('ed25519');
    regKeyFile = join(h.dir, 'registration.key');
    writeFileSync(regKeyFile, reg.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(h.dir, 'registration.pub.pem'), reg.publicKey.export({ type: 'spki', format: 'pem' }));
  });
  after(async () => {
    pods?.stop();
    await h?.stop();
    ws?.remove();
    if (fleetDir) {
      await downFleet(fleetDir);
      rmSync(fleetDir, { recursive: true, force: true });
    }
  });

  it('GIVEN a proxy that knows no such cluster WHEN cluster add writes the policy and the manifest, CI compiles, and the manifest is applied once THEN the agents register and alice (sre) gets pods through the proxy by the grants the labels select', async () => {
    const keys = readdirSync(join(ws.dir, 'generated', 'keys')).map((f) => join(ws.dir, 'generated', 'keys', f));
    // A proxy serving only clusters that register, their bundles from the workspace's generated/.
    const x = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      clusters: [],
      agents: {
        registrationKeyFiles: [join(h.dir, 'registration.pub.pem')],
        stateDir: join(h.dir, 'agents'),
        registeredClusters: { bundle: { kind: 'directory', path: join(ws.dir, 'generated', '{cluster}'), pollIntervalMs: 500 }, trustedKeyFiles: keys },
        limits: { maxStreams: 4096, streamWindowBytes: 1 << 20, connectionWindowBytes: 32 << 20 },
      },
    }));
    const add = await ws.cli(['cluster', 'add', 'edge', '--labels', 'env=dev,region=eu-west,tier=sandbox', '--proxy', `https://127.0.0.1:${x.port}`, '--registration-key', regKeyFile, '--proxy-ca', h.proxyCa.caFile, '--out', 'edge-bootstrap.yaml', '--ttl', '10m']);
    assert.equal(add.code, 0, add.stderr);
    assert.match(ws.read('policies/clusters.ts'), /new Cluster\(fleet, 'edge', \{\n {4}agent: true,\n {4}labels: \{ env: 'dev', region: 'eu-west', tier: 'sandbox' \},\n {2}\}\);/);
    assert.ok(existsSync(join(ws.dir, 'generated', 'catalog', 'edge.json')));
    const manifest = ws.read('edge-bootstrap.yaml');
    for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Secret', 'Deployment']) assert.match(manifest, new RegExp(`kind: ${kind}\\n`), kind);
    assert.doesNotMatch(manifest, /kind: (ClusterRole|Role)\n[\s\S]*?verbs:\n(\s+- .*\n)*\s+- "\*"/, 'no wildcard verbs for the agent');
    // CI: compile the pull request (the demo signing key), merge; the bundle is where the proxy reads it.
    const compiled = await ws.cli(['compile', '--no-typecheck']);
    assert.equal(compiled.code, 0, compiled.stderr);
    assert.ok(existsSync(join(ws.dir, 'generated', 'edge', 'bundle.sig.json')));
    // The one kubectl apply, on the new cluster.
    const applied = await runKubectl(h, edge, ['apply', '-f', join(ws.dir, 'edge-bootstrap.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    pods = runAgentDeployment({ kubectl: h.kubectlBin, adminKubeconfig: edge.adminKubeconfig, server: edge.server, caFile: edge.caFile, namespace: 'portcullis-system', name: 'portcullis-agent' });
    await pods.opened(2);
    const kc = h.kubeconfig(await h.token('alice', ['sre']), 'edge');
    writeFileSync(kc, readFileSync(kc, 'utf8').replace(`127.0.0.1:${h.port}/`, `127.0.0.1:${x.port}/`));
    let r = { status: 1 as number | null, stdout: '', stderr: '' };
    for (let i = 0; i < 40 && r.status !== 0; i++) {
      r = await h.kubectl(kc, ['get', 'pods', '-n', 'checkout']);
      if (r.status !== 0) await new Promise((res) => setTimeout(res, 250));
    }
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr + r.stdout, /No resources found in checkout namespace/);
    // What the labels do not select stays forbidden.
    r = await h.kubectl(kc, ['get', 'secrets', '-n', 'payments']);
    assert.match(r.stderr, /forbidden/i);
    // The catalog it was compiled with was another cluster's: discover reads its own through the tunnel.
    const copied = ws.read('generated/catalog/edge.json');
    const d = await ws.cli(['discover', '--kubeconfig', kc, '--cluster', 'edge', '--kubectl', h.kubectlBin]);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /wrote generated\/catalog\/edge\.json: \d+ resources \(v1\.34/);
    assert.notEqual(ws.read('generated/catalog/edge.json'), '', 'written');
    assert.ok(copied.length > 0);
    const registered = x.logs().filter((l) => l['msg'] === 'agent registered');
    assert.equal(registered.length, 1, 'one registration for two replicas');
    await x.proxy.stop();
  });

  it('GIVEN cluster add WHEN the cluster exists, a label is malformed or the policy would not compile THEN it says why and policies/ is left as it was', async () => {
    const before = ws.read('policies/clusters.ts');
    let r = await ws.cli(['cluster', 'add', 'edge', '--proxy', 'https://127.0.0.1:1', '--registration-key', regKeyFile]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /already has cluster edge/);
    r = await ws.cli(['cluster', 'add', 'edge2', '--labels', 'env', '--proxy', 'https://127.0.0.1:1', '--registration-key', regKeyFile]);
    assert.match(r.stderr, /'env' is not KEY=VALUE/);
    r = await ws.cli(['cluster', 'add', 'Edge_3', '--proxy', 'https://127.0.0.1:1', '--registration-key', regKeyFile]);
    assert.match(r.stderr, /not a DNS-1123 label/);
    assert.equal(ws.read('policies/clusters.ts'), before);
    assert.ok(!existsSync(join(ws.dir, 'generated', 'catalog', 'edge2.json')));
  });
});

function runKubectl(h: Harness, c: ClusterInfo, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return h.kubectl(c.adminKubeconfig, args).then((r) => ({ code: r.status, stderr: r.stderr }));
}
