// What gitops hands kubectl survives kubectl's YAML 1.1 reading: label values such as `y`, `no`
// and `on` (booleans to YAML 1.1), `0x1F` and `1e3` (numbers) reach the cluster as the strings
// they are, against a real kube-apiserver.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { KubectlClient } from '../../gitops/kubectl.ts';
import type { KubeObject } from '../../gitops/objects.ts';
import { getTestFleet } from '../support/fleet.ts';

test('GIVEN a namespace whose labels YAML 1.1 would read as booleans or numbers WHEN gitops applies it THEN the cluster has exactly those strings', async () => {
  const fleet = await getTestFleet();
  const dev = fleet.cluster('dev');
  const client = new KubectlClient('dev', dev.adminKubeconfig, fleet.bin.kubectl);
  const labels = { a: 'y', b: 'no', c: 'on', d: 'off', e: '0x1F', f: '1e3', g: 'null' };
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'gitops-yaml11', labels } } as unknown as KubeObject;
  await client.apply([ns], { dryRun: false });
  const r = spawnSync(fleet.bin.kubectl, ['--kubeconfig', dev.adminKubeconfig, 'get', 'namespace', 'gitops-yaml11', '-o', 'json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = (JSON.parse(r.stdout) as { metadata: { labels: Record<string, string> } }).metadata.labels;
  for (const [k, v] of Object.entries(labels)) assert.equal(got[k], v, k);
  spawnSync(fleet.bin.kubectl, ['--kubeconfig', dev.adminKubeconfig, 'delete', 'namespace', 'gitops-yaml11', '--wait=false']);
});
