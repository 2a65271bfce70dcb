import { request } from 'node:https';

/** Most a discovery document or JWKS may weigh; anything larger is refused. */
const MAX_BYTES = 1 << 20;

/**
 * A fetch for discovery and JWKS that trusts exactly `ca` (or the system store),
 * never follows redirects, bounds the body and honours the abort signal.
 */
export function httpsFetcher(ca: string | undefined): (url: string, init: { readonly signal?: AbortSignal; readonly headers?: Headers }) => Promise<Response> {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const u = new URL(url);
      if (u.protocol !== 'https:') {
        reject(new Error(`refusing non-https URL ${u.origin}`));
        return;
      }
      const headers: Record<string, string> = { accept: 'application/json' };
      init.headers?.forEach((v, k) => {
        headers[k] = v;
      });
      const req = request(u, { method: 'GET', headers, ...(ca !== undefined ? { ca } : {}), ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BYTES) {
            res.destroy(new Error(`response from ${u.origin} exceeds ${MAX_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
          const status = res.statusCode ?? 500;
          // Response() rejects bodies on 1xx/204/304; those are failures for us anyway.
          const body = status === 204 || status === 304 || status < 200 ? null : Buffer.concat(chunks);
          resolve(new Response(body, { status, headers: h }));
        });
      });
      req.on('error', reject);
      req.end();
    });
}
