/**
 * Diagnosis only (BENCH_GC_STATS=FILE), for the bench's proxies (proxy-server.ts, node-floor-proxy.ts):
 * the process's garbage collections by kind, with why V8 ran each full one (external memory
 * pressure, forced, idle), and how much the old generation grew across scavenges (what minor
 * collections promoted, read from the heap's spaces after each one), written to FILE when it stops.
 */
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, constants as c, type PerformanceEntry } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

/** Starts counting; returns the writer to call when the process stops. */
export function watchGc(label: string): (file: string) => void {
  const stats = new Map<string, { n: number; ms: number; max: number }>();
  const kinds: Record<number, string> = { [c.NODE_PERFORMANCE_GC_MINOR]: 'minor', [c.NODE_PERFORMANCE_GC_MAJOR]: 'major', [c.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [c.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
  const OLD = ['old_space', 'code_space', 'large_object_space', 'code_large_object_space'];
  const spaces = (): Map<string, number> => new Map(getHeapSpaceStatistics().filter((s) => OLD.includes(s.space_name)).map((s) => [s.space_name, s.space_used_size]));
  const oldUsed = (): number => [...spaces().values()].reduce((a, b) => a + b, 0);
  let last = oldUsed();
  let promoted = 0;
  // Growth of each old space between one collection's end and the next one's: what went to it directly (pretenured, large, code) or through a scavenge.
  let lastSpaces = spaces();
  const grown = new Map<string, number>();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = (e as PerformanceEntry & { detail?: { kind?: number; flags?: number } }).detail;
      const why = d?.flags ? [d.flags & c.NODE_PERFORMANCE_GC_FLAGS_ALL_EXTERNAL_MEMORY ? 'external' : '', d.flags & c.NODE_PERFORMANCE_GC_FLAGS_FORCED ? 'forced' : '', d.flags & c.NODE_PERFORMANCE_GC_FLAGS_SCHEDULE_IDLE ? 'idle' : '', d.flags & c.NODE_PERFORMANCE_GC_FLAGS_ALL_AVAILABLE_GARBAGE ? 'all-garbage' : ''].filter(Boolean).join('+') : '';
      const kind = kinds[d?.kind ?? 0] ?? 'other';
      const k = `${kind}${why ? ` (${why})` : ''}`;
      const s = stats.get(k) ?? { n: 0, ms: 0, max: 0 };
      s.n++;
      s.ms += e.duration;
      s.max = Math.max(s.max, e.duration);
      stats.set(k, s);
      // Old-generation growth since the previous collection: promotion when this one was a scavenge.
      const now = oldUsed();
      if (kind === 'minor' && now > last) promoted += now - last;
      last = now;
      const cur = spaces();
      for (const [k, v] of cur) if (v > (lastSpaces.get(k) ?? 0)) grown.set(k, (grown.get(k) ?? 0) + v - (lastSpaces.get(k) ?? 0));
      lastSpaces = cur;
    }
  }).observe({ entryTypes: ['gc'] });
  return (file) =>
    writeFileSync(file, `${label} gc: ${[...stats].map(([k, v]) => `${k} ${v.n}× ${v.ms.toFixed(0)} ms (longest ${v.max.toFixed(1)} ms)`).join(', ')}; old generation grown by scavenges ${(promoted / 1048576).toFixed(1)} MiB; grown between collections, by space: ${[...grown].map(([k, v]) => `${k} ${(v / 1048576).toFixed(1)} MiB`).join(', ')}; cpu ${(process.cpuUsage().user / 1000).toFixed(0)} ms user; heap ${JSON.stringify(process.memoryUsage())}\n`);
}
