/**
 * Runs the Portcullis proxy (proxy-core's PortcullisProxy with the real
 * authenticator) as its own process for `bench/proxy.ts`, so the benchmark can
 * read the proxy's RSS and the load generator does not share its event loop.
 * Usage: node bin/run-ts.js bench/proxy-server.ts CONFIG.yaml
 * Prints one JSON line `{ "port": N, "pid": N }` once listening; SIGUSR2 prints a memory line; SIGTERM stops it gracefully.
 */
import http2 from 'node:http2';
import { PerformanceObserver, constants as perfConstants, type PerformanceEntry } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { createAuthenticator, type AuthnConfig } from '../runtime-proxy/authn/index.ts';
import { loadConfig } from '../runtime-proxy/config.ts';
import { PortcullisProxy } from '../runtime-proxy/server.ts';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: proxy-server CONFIG.yaml\n');
  process.exit(2);
}
// Diagnosis only (BENCH_NODELAY=1): disable Nagle on client connections, to measure what it costs.
if (process.env.BENCH_NODELAY === '1') {
  const original = http2.createSecureServer;
  (http2 as { createSecureServer: typeof original }).createSecureServer = ((...a: Parameters<typeof original>) => {
    const server = original(...a);
    server.on('secureConnection', (s: TLSSocket) => s.setNoDelay(true));
    return server;
  }) as typeof original;
}
// Diagnosis only (BENCH_GC_STATS=FILE): count the proxy's garbage collections by kind, written to FILE when it stops.
const gcStats = new Map<string, { n: number; ms: number }>();
if (process.env.BENCH_GC_STATS) {
  const c = perfConstants;
  const kinds: Record<number, string> = { [c.NODE_PERFORMANCE_GC_MINOR]: 'minor', [c.NODE_PERFORMANCE_GC_MAJOR]: 'major', [c.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [c.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = (e as PerformanceEntry & { detail?: { kind?: number; flags?: number } }).detail;
      // Why a full collection ran, where V8 says: external memory pressure (Buffers), or a forced/idle one.
      const why = d?.flags ? [d.flags & c.NODE_PERFORMANCE_GC_FLAGS_ALL_EXTERNAL_MEMORY ? 'external' : '', d.flags & c.NODE_PERFORMANCE_GC_FLAGS_FORCED ? 'forced' : '', d.flags & c.NODE_PERFORMANCE_GC_FLAGS_SCHEDULE_IDLE ? 'idle' : '', d.flags & c.NODE_PERFORMANCE_GC_FLAGS_ALL_AVAILABLE_GARBAGE ? 'all-garbage' : ''].filter(Boolean).join('+') : '';
      const k = `${kinds[d?.kind ?? 0] ?? 'other'}${why ? ` (${why})` : ''}`;
      const s = gcStats.get(k) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += e.duration;
      gcStats.set(k, s);
    }
  }).observe({ entryTypes: ['gc'] });
}
const config = loadConfig(file);
const proxy = new PortcullisProxy({
  config,
  authenticator: createAuthenticator(config.authn as unknown as AuthnConfig),
  logger: pino({ name: 'portcullis-proxy', level: process.env.BENCH_LOG_LEVEL ?? 'info' }, pino.destination(2)),
});
const { port } = await proxy.start();
process.stdout.write(`${JSON.stringify({ port, pid: process.pid })}\n`);
// SIGUSR2: collect garbage (when run with --expose-gc) and print one memory line, for the watch benchmark.
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ memory: { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers } })}\n`);
});
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  if (process.env.BENCH_GC_STATS) writeFileSync(process.env.BENCH_GC_STATS, `proxy gc: ${[...gcStats].map(([k, v]) => `${k} ${v.n}× ${v.ms.toFixed(0)} ms`).join(', ')}, cpu ${(process.cpuUsage().user / 1000).toFixed(0)} ms user, heap ${JSON.stringify(process.memoryUsage())}\n`);
  void proxy.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
