/**
 * The floor of a Node.js reverse proxy, for `bench/proxy.ts`: TLS in,
 * HTTP/1.1 keep-alive pool (undici, configured as Portcullis's) with verified
 * TLS out, headers copied, body relayed with backpressure. No authentication,
 * authorization, audit or metrics: what Portcullis costs beyond this is its
 * own; what this costs over direct is Node's. Like Portcullis's listener it
 * takes HTTP/2 and HTTP/1.1 from clients, and relays watches over upstream
 * HTTP/2 streams, as Portcullis does (for the watch bench's side by side).
 * Usage: node bin/run-ts.js bench/node-floor-proxy.ts UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE
 * Prints one JSON line `{ "port": N }` once listening.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { createUpstream } from '../runtime-proxy/upstream.ts';
import { watchGc } from './gc-stats.ts';

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
  for (const k in h) if (!HOP.has(k) && !k.startsWith(':') && h[k] !== undefined) out[k] = h[k];
  return out;
};
// Watches, as Portcullis relays them (runtime-proxy/forward-h2.ts): streams of upstream HTTP/2
// connections, 100 each, not one HTTP/1.1 connection per watch; for the watch bench's side by side.
const ca = readFileSync(caFile);
const sessions: { session: http2.ClientHttp2Session; active: number }[] = [];
function watchUpstream(req: IncomingMessage, res: ServerResponse): void {
  let s = sessions.find((x) => !x.session.closed && !x.session.destroyed && x.active < 100);
  if (!s) {
    s = { session: http2.connect(upstreamUrl as string, { ca, ALPNProtocols: ['h2'] }), active: 0 };
    s.session.on('error', () => undefined);
    sessions.push(s);
  }
  const pooled = s;
  pooled.active++;
  const up = pooled.session.request({ ...strip(req.headers), ':method': 'GET', ':path': req.url ?? '/' }, { endStream: true });
  up.on('response', (h) => {
    const { [':status']: status, ...rest } = h;
    res.writeHead(Number(status), strip(rest as Record<string, string | string[] | undefined>));
    (res as Partial<ServerResponse>).flushHeaders?.();
    up.pipe(res);
  });
  up.on('close', () => {
    pooled.active--;
    res.destroy();
  });
  up.on('error', () => res.destroy());
  res.on('close', () => up.close());
}
// HTTP/2 with HTTP/1.1 allowed, as Portcullis's listener (measured: the same CPU per HTTP/1.1 request as https.createServer).
const server = http2.createSecureServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), noDelay: true, allowHTTP1: true, settings: { maxConcurrentStreams: 1000 } }, (request, response) => {
  // The compatibility API: both HTTP versions give the same request and response methods used here.
  const req = request as unknown as IncomingMessage;
  const res = response as unknown as ServerResponse;
  if (req.method === 'GET' && /[?&]watch=(1|true)(&|$)/.test(req.url ?? '')) return watchUpstream(req, res);
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
// Diagnosis only (BENCH_GC_STATS=FILE, as bench/proxy-server.ts): the floor's collections, to FILE.floor when it stops.
const gcReport = process.env.BENCH_GC_STATS ? watchGc('node floor') : undefined;
process.on('SIGTERM', () => {
  if (process.env.BENCH_GC_STATS) gcReport?.(`${process.env.BENCH_GC_STATS}.floor`);
  process.exit(0);
});
