// The proxy process's heap growth (runtime-proxy/heap.ts): set at run time, V8 honours it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * In a child process: a live set, a full collection (V8 sets the old generation's limit from
 * what survives it), then objects that live long enough to be promoted and die in the old
 * generation, as a busy proxy's requests leave them. Counts the full collections (incremental
 * ones included). `setup` runs first: `narrow` makes V8 grow the heap by 10% only (the
 * pathology: a full collection due as soon as one ends), `tuned` is the proxy's setting after it.
 */
function fullCollections(setup: 'narrow' | 'narrow+tuned'): number {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    import { setFlagsFromString } from 'node:v8';
    import { tuneHeapForProxy } from ${JSON.stringify(join(ROOT, 'runtime-proxy/heap.ts'))};
    setFlagsFromString('--heap-growing-percent=10');
    if (${JSON.stringify(setup)} === 'narrow+tuned') tuneHeapForProxy();
    let full = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind !== constants.NODE_PERFORMANCE_GC_MINOR) full++; }).observe({ entryTypes: ['gc'] });
    const live = Array.from({ length: 150_000 }, (_, i) => ({ i, s: 'v' + i, a: [i, i + 1] }));
    globalThis.gc();
    full = 0;
    const ring = new Array(100_000);
    for (let n = 0; n < 3_000_000; n++) ring[n % ring.length] = { n, s: 'r' + (n & 4095), a: [n, n] };
    setTimeout(() => process.stdout.write(JSON.stringify({ full, live: live.length, ring: ring.length })), 50);
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { full: number }).full;
}

/** In a child process: what collectStartupGarbage leaves, after 400,000 objects became garbage. */
function afterStartupCollection(): { before: number; after: number; gcOnGlobal: string; gcInNewContext: string } {
  const script = `
    import { runInNewContext } from 'node:vm';
    import { collectStartupGarbage } from ${JSON.stringify(join(ROOT, 'runtime-proxy/heap.ts'))};
    globalThis.startup = Array.from({ length: 400_000 }, (_, i) => ({ i, s: 'x' + i }));
    globalThis.startup = undefined;
    const before = process.memoryUsage().heapUsed;
    collectStartupGarbage();
    const after = process.memoryUsage().heapUsed;
    process.stdout.write(JSON.stringify({ before, after, gcOnGlobal: typeof globalThis.gc, gcInNewContext: runInNewContext('typeof gc') }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { before: number; after: number; gcOnGlobal: string; gcInNewContext: string };
}

describe('the proxy process heap growth', () => {
  it('GIVEN what starting left behind WHEN collectStartupGarbage runs THEN it is collected, and no gc function is left on the global nor in a new context', () => {
    const r = afterStartupCollection();
    assert.ok(r.before - r.after > 15 * 1048576, `heap used ${(r.before / 1048576).toFixed(1)} -> ${(r.after / 1048576).toFixed(1)} MiB`);
    assert.equal(r.gcOnGlobal, 'undefined');
    assert.equal(r.gcInNewContext, 'undefined', '--expose-gc is cleared again');
  });

  it('GIVEN V8 growing the old generation by 10% only WHEN tuneHeapForProxy runs after start THEN the same workload needs at most half the full collections', () => {
    const narrow = fullCollections('narrow');
    const tuned = fullCollections('narrow+tuned');
    assert.ok(narrow >= 10, `the workload shows the pathology: ${narrow} full collections`);
    assert.ok(tuned * 2 <= narrow, `tuned ${tuned} against ${narrow}`);
  });
});
