/**
 * Runs the Portcullis proxy (proxy-core's PortcullisProxy with the real
 * authenticator) as its own process for `bench/proxy.ts`, so the benchmark can
 * read the proxy's RSS and the load generator does not share its event loop.
 * Usage: node bin/run-ts.js bench/proxy-server.ts CONFIG.yaml
 * Prints one JSON line `{ "port": N, "pid": N }` once listening; SIGUSR2 prints a memory line; SIGTERM stops it gracefully.
 */
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { createAuthenticator, type AuthnConfig } from '../runtime-proxy/authn/index.ts';
import { loadConfig } from '../runtime-proxy/config.ts';
import { collectStartupGarbage, tuneHeapForProxy } from '../runtime-proxy/heap.ts';
import { PortcullisProxy } from '../runtime-proxy/server.ts';
import { watchGc } from './gc-stats.ts';

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
// Diagnosis only (BENCH_GC_STATS=FILE): the proxy's garbage collections, written to FILE when it stops.
const gcReport = process.env.BENCH_GC_STATS ? watchGc('proxy') : undefined;
// As `portcullis proxy` runs (runtime-proxy/run.ts): the proxy process's heap growth (heap.ts).
tuneHeapForProxy();
const config = loadConfig(file);
const proxy = new PortcullisProxy({
  config,
  authenticator: createAuthenticator(config.authn as unknown as AuthnConfig),
  logger: pino({ name: 'portcullis-proxy', level: process.env.BENCH_LOG_LEVEL ?? 'info' }, pino.destination(2)),
});
const { port } = await proxy.start();
collectStartupGarbage();
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
  if (process.env.BENCH_GC_STATS) gcReport?.(process.env.BENCH_GC_STATS);
  void proxy.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
