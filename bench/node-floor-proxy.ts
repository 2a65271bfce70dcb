/**
 * The floor of a Node.js reverse proxy, for `bench/proxy.ts`: TLS in,
 * HTTP/1.1 keep-alive pool (undici, configured as Portcullis's) with verified
 * TLS out, headers copied, body relayed with backpressure. No authentication,
 * authorization, audit or metrics: what Portcullis costs beyond this is its
 * own; what this costs over direct is Node's.
 * Usage: node bin/run-ts.js bench/node-floor-proxy.ts UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE
 * Prints one JSON line `{ "port": N }` once listening.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { PerformanceObserver, constants as perfConstants, type PerformanceEntry } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { createUpstream } from '../runtime-proxy/upstream.ts';

const [upstreamUrl, caFile, certFile, keyFile] = process.argv.slice(2);
if (!upstreamUrl || !caFile || !certFile || !keyFile) {
  process.stderr.write('usage: node-floor-proxy UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE\n');
  process.exit(2);
}
// Portcullis's own upstream pool (same options), without anything else of the proxy.
const { pool } = createUpstream({ url: upstreamUrl, caFile });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host']);
const strip = (h: Record<string, string | string[] | undefined>): Record<string, string | string[]> => {
  const out: Record<string, string | string[]> = {};
  for (const k in h) if (!HOP.has(k) && h[k] !== undefined) out[k] = h[k];
  return out;
};
const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), noDelay: true }, (req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  let paused = false;
  pool.dispatch(
    { path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: strip(req.headers), body: hasBody ? (req as Readable) : null, reset: false },
    {
      onRequestStart: () => undefined,
      onResponseStart: (_c, status, headers) => {
        if (status >= 200) res.writeHead(status, strip(headers));
      },
      onResponseData: (c, chunk) => {
        if (!res.write(chunk) && !paused) {
          paused = true;
          c.pause();
          res.once('drain', () => {
            paused = false;
            c.resume();
          });
        }
      },
      onResponseEnd: () => res.end(),
      onResponseError: () => res.destroy(),
    },
  );
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0 })}\n`);
});
// Diagnosis only (BENCH_GC_STATS=FILE, as bench/proxy-server.ts): the floor's collections by kind, to FILE.floor when it stops.
const gcStats = new Map<string, { n: number; ms: number }>();
if (process.env.BENCH_GC_STATS) {
  const c = perfConstants;
  const kinds: Record<number, string> = { [c.NODE_PERFORMANCE_GC_MINOR]: 'minor', [c.NODE_PERFORMANCE_GC_MAJOR]: 'major', [c.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [c.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = kinds[(e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
      const st = gcStats.get(k) ?? { n: 0, ms: 0 };
      st.n++;
      st.ms += e.duration;
      gcStats.set(k, st);
    }
  }).observe({ entryTypes: ['gc'] });
}
process.on('SIGTERM', () => {
  if (process.env.BENCH_GC_STATS) writeFileSync(`${process.env.BENCH_GC_STATS}.floor`, `node floor gc: ${[...gcStats].map(([k, v]) => `${k} ${v.n}× ${v.ms.toFixed(0)} ms`).join(', ')}, cpu ${(process.cpuUsage().user / 1000).toFixed(0)} ms user, heap ${JSON.stringify(process.memoryUsage())}\n`);
  process.exit(0);
});
