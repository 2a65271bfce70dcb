// The demo and the tests never depend on the wall clock against the committed signatures:
// run them under a clock 40 and 400 days ahead. libfaketime (Debian's `faketime`) shifts the
// clock of Node processes only (FAKETIME_ONLY_CMDS): kube-apiserver, kubectl and openssl keep
// the real time, as a sandbox started today does, and the sandbox's and the local CA's
// certificates are valid long enough for both.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { getTestFleet } from '../support/fleet.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const DAY = 86_400_000;

/** Runs node ARGS in the repository with every Node process's clock `days` ahead. */
function nodeAhead(days: number, args: readonly string[], timeoutMs: number) {
  const { NODE_TEST_CONTEXT: _child, ...parent } = process.env; // a nested test run reports on its own
  const env = { ...parent, LD_PRELOAD: LIBFAKETIME, FAKETIME: `+${days}d`, FAKETIME_ONLY_CMDS: 'node', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  const r = spawnSync(process.execPath, [...args], { cwd: ROOT, env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('under a clock days ahead', () => {
  it('GIVEN libfaketime (.ci/run installs it) THEN a Node process sees the shifted clock and a Go one does not', async () => {
    assert.ok(existsSync(LIBFAKETIME), `${LIBFAKETIME} is missing: apt-get install faketime`);
    const r = nodeAhead(400, ['-e', 'process.stdout.write(String(Date.now()))'], 10_000);
    assert.ok(Math.abs(Number(r.out) - (Date.now() + 400 * DAY)) < 60_000, `node saw ${new Date(Number(r.out)).toISOString()}`);
    const fleet = await getTestFleet();
    const kubectl = spawnSync(fleet.bin.kubectl, ['version', '--client'], { env: { ...process.env, LD_PRELOAD: LIBFAKETIME, FAKETIME: '+400d', FAKETIME_ONLY_CMDS: 'node' }, encoding: 'utf8' });
    assert.equal(kubectl.status, 0, kubectl.stderr);
  });

  it('GIVEN the clock 40 days ahead WHEN compile --check runs THEN generated/ matches the policy and its bundles are told expired (exit 3), not stale', () => {
    const r = nodeAhead(40, ['bin/portcullis.js', 'compile', '--check'], 60_000);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /matches policies\/, but bundles have expired/);
    assert.doesNotMatch(r.err, /stale|verify:/);
  });

  it('GIVEN the clock 400 days ahead WHEN compile --check runs THEN it is stale, because the example\'s contractor grant (expires 2027-03-31) is left out now', () => {
    const r = nodeAhead(400, ['bin/portcullis.js', 'compile', '--check'], 60_000);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /warning GRANT_EXPIRED: grant contractor-search-staging expired at 2027-03-31/);
    assert.match(r.err, /stale: staging\/rules.json/);
  });

  for (const days of [40, 400]) {
    it(`GIVEN the clock ${days} days ahead WHEN the tests that load the example's compiled bundles run THEN they pass`, () => {
      const files = ['test/proxy/bundle-store.test.ts', 'test/proxy/compiled-policy.test.ts', 'test/client/kubeconfig.test.ts', 'test/compiler/questions.test.ts'];
      const r = nodeAhead(days, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], 300_000);
      assert.equal(r.code, 0, `${r.out}\n${r.err}`);
      assert.match(r.out, /ℹ fail 0/);
      assert.ok(Number(/ℹ pass (\d+)/.exec(r.out)?.[1] ?? 0) >= 10, r.out);
    });

    it(`GIVEN the clock ${days} days ahead WHEN portcullis demo --check runs THEN every scripted kubectl session ends as the example policy says`, async () => {
      const fleet = await getTestFleet();
      const r = nodeAhead(days, ['bin/portcullis.js', 'demo', '--check', '--reuse', '--dir', dirname(fleet.file)], 300_000);
      assert.equal(r.code, 0, `${r.out}\n${r.err}`);
      const lines = r.out.split('\n').filter((l) => /^(ok|FAIL) /.test(l));
      assert.equal(lines.length, 16, r.out);
      assert.deepEqual(lines.filter((l) => l.startsWith('FAIL')), []);
    });
  }
});
