import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { statusFor, type ProxyError } from './errors.ts';

/** Writes a `Status` error response, unless headers were already sent. */
export function sendStatus(res: ServerResponse | Http2ServerResponse, err: ProxyError, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(statusFor(err));
  res.writeHead(err.httpStatus, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** Writes a `Status` error as a raw HTTP/1.1 response on an upgrade socket and closes it. */
export function sendStatusOnSocket(socket: Duplex, err: ProxyError, headers: Readonly<Record<string, string>> = {}): void {
  const body = JSON.stringify(statusFor(err));
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${err.httpStatus} ${statusFor(err).reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
}
