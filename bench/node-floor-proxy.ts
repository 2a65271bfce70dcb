/**
 * The floor of a Node.js reverse proxy, for `bench/proxy.ts`: TLS in,
 * HTTP/1.1 keep-alive pool with verified TLS out, headers copied, body piped.
 * No authentication, authorization, audit or metrics: what Portcullis costs
 * beyond this is its own; what this costs over direct is Node's.
 * Usage: node bin/run-ts.js bench/node-floor-proxy.ts UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE
 * Prints one JSON line `{ "port": N }` once listening.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';

const [upstreamUrl, caFile, certFile, keyFile] = process.argv.slice(2);
if (!upstreamUrl || !caFile || !certFile || !keyFile) {
  process.stderr.write('usage: node-floor-proxy UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE\n');
  process.exit(2);
}
const upstream = new URL(upstreamUrl);
const agent = new https.Agent({ keepAlive: true, maxSockets: 256, noDelay: true, ca: readFileSync(caFile) });
const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'host'];
const strip = (h: IncomingHttpHeaders): IncomingHttpHeaders => {
  const out = { ...h };
  for (const k of HOP) delete out[k];
  return out;
};
const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), noDelay: true }, (req, res) => {
  const up = https.request({ hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: strip(req.headers), agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, strip(upRes.headers));
    upRes.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0 })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
