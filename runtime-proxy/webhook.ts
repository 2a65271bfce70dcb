import http from 'node:http';
import https from 'node:https';

/** POSTs JSON to a webhook; resolves on 2xx, rejects otherwise (5 s timeout). */
export function postJson(url: string, body: unknown, ca?: Buffer): Promise<void> {
  const data = Buffer.from(JSON.stringify(body));
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': data.length }, timeout: 5000, ...(ca ? { ca } : {}) },
      (res) => {
        res.resume();
        const s = res.statusCode ?? 0;
        if (s >= 200 && s < 300) resolve();
        else reject(new Error(`webhook answered HTTP ${s}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('webhook timed out')));
    req.on('error', reject);
    req.end(data);
  });
}
