import { isIP } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { BREAK_GLASS_PATH } from '../runtime-proxy/break-glass-endpoint.ts';

/** The proxy's own listener as the console reaches it on loopback. */
export interface ProxySelf {
  readonly port: number;
  /** The CA of the proxy's serving certificate. */
  readonly caPem: string;
  /** The name its certificate is checked against (the public host name, or 127.0.0.1). */
  readonly serverName: string;
}

/** At most this much of an endpoint's answer is relayed to the page. */
const MAX_ANSWER = 1 << 20;

/**
 * Calls one of the proxy's own endpoints as the caller (their session credential as a bearer
 * token) on loopback, verifying the proxy's certificate: the console acts for a person only
 * through the front door, so requests, approvals and break-glass are authorized, locked and
 * recorded exactly as from the CLI.
 */
export function callProxy(self: ProxySelf, method: string, path: string, credential: string, body?: string): Promise<{ readonly status: number; readonly body: string; readonly auditId: string }> {
  return new Promise((resolve, reject) => {
    const rq = httpsRequest(
      {
        host: '127.0.0.1',
        port: self.port,
        method,
        path,
        ca: self.caPem,
        ...(isIP(self.serverName) === 0 ? { servername: self.serverName } : {}),
        checkServerIdentity: (_host, cert) => checkIdentity(self.serverName, cert),
        agent: false,
        headers: { authorization: `Bearer ${credential}`, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) },
      },
      (r) => {
        let text = '';
        let size = 0;
        r.setEncoding('utf8');
        r.on('data', (d: string) => {
          size += d.length;
          if (size <= MAX_ANSWER) text += d;
        });
        r.on('end', () => (size > MAX_ANSWER ? reject(new Error(`the proxy's answer to ${path} is over ${MAX_ANSWER} bytes`)) : resolve({ status: r.statusCode ?? 502, body: text, auditId: String(r.headers['audit-id'] ?? '') })));
        r.on('error', reject);
      },
    );
    rq.setTimeout(30_000, () => rq.destroy(new Error('the proxy did not answer its own endpoint in time')));
    rq.on('error', reject);
    rq.end(body);
  });
}

function checkIdentity(name: string, cert: PeerCertificate): Error | undefined {
  return checkServerIdentity(name, cert);
}

/** The proxy endpoint a console API call stands for (requests, approvals, activations, break-glass), if any. */
export function relayTarget(method: string, route: string): string | undefined {
  if (route === '/requests' && (method === 'GET' || method === 'POST')) return '/portcullis/v1/requests';
  const m = /^\/requests\/(req-[0-9a-f]{12})\/(approve|deny)$/.exec(route);
  if (m && method === 'POST') return `/portcullis/v1/requests/${m[1] ?? ''}/${m[2] ?? ''}`;
  if (route === '/activations' && method === 'GET') return '/portcullis/v1/activations';
  if (route === '/activations/end' && method === 'POST') return '/portcullis/v1/activations/end';
  if (route === '/break-glass' && method === 'POST') return BREAK_GLASS_PATH;
  return undefined;
}
