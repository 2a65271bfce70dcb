// ensureBinaries: a warm cache is a pure hit; cold builds are locked, atomic and
// checked (orchestration proven with a stand-in `go` on PATH, so this test does
// not spend minutes compiling; the real build is what every e2e test runs on).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { binaryCacheKeys, checkGo, ensureBinaries, SandboxError } from '../../sandbox/index.ts';

const scratch = mkdtempSync(join(tmpdir(), 'portcullis-build-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('ensureBinaries with the real cache', () => {
  it('GIVEN the binaries were built once WHEN ensureBinaries runs again THEN it is a cache hit: no build, same paths, real versions', async () => {
    const first = await ensureBinaries();
    const messages: string[] = [];
    const t0 = Date.now();
    const second = await ensureBinaries({ log: (m) => messages.push(m) });
    const ms = Date.now() - t0;
    assert.deepEqual(second, first);
    assert.deepEqual(messages, [], 'a cache hit builds nothing');
    assert.ok(ms < 2000, `cache hit took ${ms}ms`);
    for (const p of Object.values(second)) assert.ok(existsSync(p), p);
    for (const key of binaryCacheKeys()) assert.ok(Object.values(second).some((p) => p.includes(`/${key}/`)), key);
    const v = spawnSync(second.kubectl, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
    assert.equal((JSON.parse(v.stdout) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion, 'v1.34.4');
    const e = spawnSync(second.etcd, ['--version'], { encoding: 'utf8' });
    assert.match(e.stdout, /etcd Version: 3\.6\.8/);
  });
});

/** A stand-in `go` that records its calls and writes the requested outputs after a pause. */
function fakeGo(version: string): { dir: string; log: string } {
  const dir = mkdtempSync(join(scratch, 'gobin-'));
  const log = join(dir, 'calls.log');
  const script = `#!/bin/sh
echo "$*" >> "${log}"
case "$1" in
  env) echo ${version} ;;
  build)
    sleep 1
    out=""; last=""
    while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
    case "$out" in
      */) for b in kube-apiserver kubectl; do echo fake > "$out$b"; done ;;
      *) echo fake > "$out" ;;
    esac ;;
esac
`;
  writeFileSync(join(dir, 'go'), script);
  chmodSync(join(dir, 'go'), 0o755);
  return { dir, log };
}

async function withPath<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env['PATH'];
  process.env['PATH'] = `${dir}:${saved ?? ''}`;
  try {
    return await fn();
  } finally {
    process.env['PATH'] = saved;
  }
}

describe('ensureBinaries cold', () => {
  it('GIVEN an empty cache WHEN two runs start at once THEN each group is built exactly once, renamed into place, and both get the same paths', async () => {
    const go = fakeGo('go1.26.0');
    const cacheDir = join(scratch, 'cache-concurrent');
    const [a, b] = await withPath(go.dir, () => Promise.all([ensureBinaries({ cacheDir, log: () => {} }), ensureBinaries({ cacheDir, log: () => {} })]));
    assert.deepEqual(a, b);
    const builds = readFileSync(go.log, 'utf8').split('\n').filter((l) => l.startsWith('build'));
    assert.equal(builds.length, binaryCacheKeys().length, `one go build per group, got:\n${builds.join('\n')}`);
    assert.ok(builds.every((l) => l.includes('-ldflags')));
    assert.ok(builds.some((l) => l.includes('k8s.io/component-base/version.gitVersion=v1.34.4') && l.includes('k8s.io/kubernetes/cmd/kube-apiserver')));
    const entries = readdirSync(cacheDir).sort();
    assert.deepEqual(entries, [...binaryCacheKeys()].sort(), 'no temp or lock directories left behind');
    // And a third run is a hit: no more calls.
    await withPath(go.dir, () => ensureBinaries({ cacheDir, log: () => {} }));
    assert.equal(readFileSync(go.log, 'utf8').split('\n').filter((l) => l.startsWith('build')).length, binaryCacheKeys().length);
  });

  it('GIVEN a lock left by a dead process WHEN ensureBinaries runs THEN it takes the lock over and builds', async () => {
    const go = fakeGo('go1.26.0');
    const cacheDir = join(scratch, 'cache-stale');
    const [first] = binaryCacheKeys();
    const lock = join(cacheDir, `${first}.lock`);
    spawnSync('mkdir', ['-p', lock]);
    const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim(); // a pid that has exited
    writeFileSync(join(lock, 'pid'), dead);
    const bins = await withPath(go.dir, () => ensureBinaries({ cacheDir, log: () => {} }));
    assert.ok(existsSync(bins.kubeApiserver));
    assert.ok(!existsSync(lock));
  });

  it('GIVEN go is older than the modules need WHEN building THEN SANDBOX_GO_TOO_OLD says what to install', async () => {
    const go = fakeGo('go1.20.3');
    await withPath(go.dir, async () => {
      assert.throws(checkGo, (e: unknown) => e instanceof SandboxError && e.code === 'SANDBOX_GO_TOO_OLD' && /go\.dev\/dl/.test(e.message));
      await assert.rejects(ensureBinaries({ cacheDir: join(scratch, 'cache-old'), log: () => {} }), (e: unknown) => e instanceof SandboxError && e.code === 'SANDBOX_GO_TOO_OLD');
    });
  });

  it('GIVEN no go on PATH WHEN building THEN SANDBOX_GO_MISSING says what to install', () => {
    const saved = process.env['PATH'];
    process.env['PATH'] = join(scratch, 'nothing-here');
    try {
      assert.throws(checkGo, (e: unknown) => e instanceof SandboxError && e.code === 'SANDBOX_GO_MISSING' && /Install Go 1\.24/.test(e.message));
    } finally {
      process.env['PATH'] = saved;
    }
  });
});
