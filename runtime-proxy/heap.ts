import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * How far V8 lets the old generation grow past what the last full collection left alive before
 * the next one is due, for the proxy's process: at most 4× (1 + 300/100), as V8 itself allows a
 * large heap, rather than the near 1.1× it picks for a heap as small as the proxy's.
 *
 * Why (issue 18, measured with `bench/proxy.ts` and BENCH_GC_STATS): V8 starts incremental
 * marking once the room left below the old generation's limit is no more than the young
 * generation's capacity. Under load the proxy's young generation sits at its 16 MiB maximum while
 * its old generation holds about 16 MiB alive, and V8's own growing factor for so small a heap
 * put the limit at 32 MiB: the next marking cycle was due as soon as one ended, 76 full
 * collections in a latency run against the node floor's 36. With this setting there were 8, and
 * the proxy spent a fifth less CPU over the same requests, while each collection stays
 * incremental (no longer pause: turning incremental marking off, the other lever, gave 80 ms
 * pauses with 2,000 watches open).
 *
 * The cost is memory between collections: garbage may reach 3× the live heap before marking
 * starts. The live heap is small (tens of MiB with thousands of watches open), and the watch
 * and idle RSS figures of `bench/proxy.ts` are measured with it.
 */
const HEAP_GROWING_PERCENT = 300;

/**
 * Sets V8's heap growing factor for this process. Called by the proxy's process entry points
 * (`portcullis proxy` and the benchmark's proxy process), never by the library: a test process
 * that embeds the proxy keeps V8's defaults. V8 reads the flag whenever it sets a new limit,
 * so setting it once the process runs takes effect from the next collection on
 * (test/proxy/heap.test.ts checks that it does, in a child process).
 */
export function tuneHeapForProxy(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/**
 * Once the proxy has started: one full collection of what starting left behind (its
 * configuration and bundles parsed, schemas compiled, modules loaded), so that the memory an
 * idle proxy holds is what it keeps, not what it once used. V8's memory reducer would give it
 * back too, but only some 10 s later, and not always before the first request (issue 18: 98–104 MiB
 * at rest on Node 22 without it, 88–89 with it). Node.js has no call for a collection without --expose-gc;
 * with the flag set for a moment, a fresh context's `gc` is taken and the flag cleared again,
 * so nothing in the proxy's own global changes.
 */
export function collectStartupGarbage(): void {
  setFlagsFromString('--expose-gc');
  try {
    // Without arguments: a full, synchronous collection (on Node 20 and 22 alike).
    (runInNewContext('gc') as () => void)();
  } catch {
    // A Node.js that no longer installs gc this way: nothing is lost but the memory, which V8's
    // memory reducer gives back later. An optimisation never stops the proxy from serving.
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
