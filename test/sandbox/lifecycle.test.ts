// sandbox up / status / down on a fleet of its own: down leaves no process and
// no state behind; up refuses to start over a running sandbox.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { downFleet, downFleetSync, fleetStatus, readFleet, SandboxError, upFleet } from '../../sandbox/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-lifecycle-'));
after(() => downFleetSync(dir));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie awaiting its (detached) parent's reaping counts as gone.
  return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

function kubeletGet(port: number, ca: string, cert?: string, key?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/containerLogs/default/x/main', ca, ...(cert && key ? { cert, key } : {}), timeout: 5000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('sandbox lifecycle', () => {
  it('GIVEN a one-cluster sandbox WHEN status, a second up, then down THEN ready, refused, and nothing left behind', async () => {
    const fleet = await upFleet({ dir, names: ['solo'], log: () => {} });
    assert.equal(readFleet(dir).clusters[0]?.name, 'solo');
    const pids = fleet.clusters.flatMap((c) => c.processes.map((p) => p.pid));
    assert.deepEqual(fleet.clusters[0]?.processes.map((p) => p.role), ['etcd', 'kube-apiserver', 'controllers', 'fake-kubelet']);
    assert.ok(pids.every(alive));

    const merged = spawnSync(fleet.bin.kubectl, ['--kubeconfig', fleet.kubeconfig, '--context', 'solo', 'get', 'node', 'solo-node', '-o', 'name'], { encoding: 'utf8' });
    assert.equal(merged.stdout, 'node/solo-node\n', merged.stderr);

    const [health] = await fleetStatus(dir);
    assert.equal(health?.ready, true);
    assert.ok(health?.processes.every((p) => p.alive));

    // The fake kubelet serves only the apiserver: even the cluster admin's certificate is refused.
    const c = fleet.clusters[0];
    assert.ok(c);
    const direct = await kubeletGet(c.ports.kubelet, c.caPem, readFileSync(c.adminCertFile, 'utf8'), readFileSync(c.adminKeyFile, 'utf8'));
    assert.equal(direct, 403);
    await assert.rejects(kubeletGet(c.ports.kubelet, c.caPem), 'no client certificate, no TLS session');

    await assert.rejects(upFleet({ dir, names: ['solo'], log: () => {} }), (e: unknown) => e instanceof SandboxError && e.code === 'SANDBOX_BAD_STATE');
    assert.ok(pids.every(alive), 'the refused up left the running sandbox alone');

    const stopped = await downFleet(dir);
    assert.equal(stopped, 4);
    assert.deepEqual(pids.filter(alive), [], 'down stops every process');
    assert.equal(existsSync(dir), false, 'down removes the state');
    assert.throws(() => readFleet(dir), (e: unknown) => e instanceof SandboxError && e.code === 'SANDBOX_NOT_RUNNING');
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));
