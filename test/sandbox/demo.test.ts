import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { getTestFleet } from '../support/fleet.ts';

// The README's main job, end to end on the shared fleet: compile check, apply,
// a real OIDC issuer, the proxy reading bundles from the applied ConfigMaps,
// and scripted kubectl sessions (allowed, denied, break-glass) through it.
test('GIVEN the sandbox WHEN portcullis demo --check runs THEN every scripted kubectl session ends as the example policy says', async () => {
  const fleet = await getTestFleet();
  const r = spawnSync(process.execPath, ['bin/portcullis.js', 'demo', '--check', '--reuse', '--dir', dirname(fleet.file)], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => /^(ok|FAIL) /.test(l));
  assert.equal(lines.length, 16, r.stdout);
  assert.deepEqual(lines.filter((l) => l.startsWith('FAIL')), []);
});
