import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { UpstreamHeaders } from './headers.ts';
import type { SessionTap } from './recording/index.ts';
import { upstreamRequest, type Upstream } from './upstream.ts';

/** The only upgrades the proxy relays (SECURITY rule 10). */
export function upgradeProtocol(value: string | undefined): 'websocket' | 'spdy' | undefined {
  const v = (value ?? '').trim().toLowerCase();
  if (v === 'websocket') return 'websocket';
  if (v === 'spdy/3.1') return 'spdy';
  return undefined;
}

/** How an upgrade ended. */
export type UpgradeOutcome =
  | { readonly kind: 'upgraded-closed'; readonly status: 101 }
  | { readonly kind: 'refused'; readonly status: number }
  | { readonly kind: 'early-bytes' }
  | { readonly kind: 'upstream-error'; readonly message: string };

/** Callbacks of one upgrade. */
export interface UpgradeHooks {
  readonly onUpgraded: () => void;
  readonly onEnd: (o: UpgradeOutcome) => void;
  /** Sees the 101 and every byte relayed after it, each direction in order (a session recording). */
  readonly tap?: SessionTap;
}

const MAX_REFUSAL_BODY = 1024 * 1024;
/** How long one side may stay open after the other closed, to flush what it still holds. */
const LINGER_MS = 5_000;

/**
 * Relays an upgraded connection both ways, losslessly.
 * - Upstream closes first (the command ended): the client side is ended, so
 *   what it still buffers, the last frames and the close frame among them, is
 *   written, and the relay is done when the client closes too, or LINGER_MS
 *   later.
 * - The client closes first: nothing can reach it any more; the upstream side
 *   is ended, and the relay is done once what the client sent is flushed, or
 *   LINGER_MS later.
 * Errors on the client destroy (through the caller's `end`), as do deadlines
 * and revocation; an upstream error ends the client side gracefully.
 * Exported for its test.
 */
export function relay(up: Duplex, client: Duplex, done: () => void, armLinger: (t: NodeJS.Timeout) => void, tap?: SessionTap): void {
  let finished = false;
  let lingering = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done();
  };
  // Armed once, by whichever side closes first.
  const linger = (): void => {
    if (lingering) return;
    lingering = true;
    const t = setTimeout(finish, LINGER_MS);
    t.unref();
    armLinger(t);
  };
  // The client's bytes go upstream one turn later (setImmediate), once the poll phase that read
  // them has read whatever upstream sent too. A write to an upstream that has closed is answered
  // with a reset, and a reset discards what the proxy had not yet read from it: on a busy proxy,
  // the command's last output and the WebSocket close frame (the client saw 1006).
  let paused = false;
  const toUp = (c: Buffer): void => {
    tap?.fromClient(c);
    setImmediate(() => {
      if (up.destroyed || up.writableEnded) return;
      if (!up.write(c) && !paused) {
        paused = true;
        client.pause();
        up.once('drain', () => {
          paused = false;
          client.resume();
        });
      }
    });
  };
  up.on('error', () => undefined);
  up.on('close', () => {
    if (client.destroyed) return finish();
    // Keep reading (and dropping) what the client still sends, or its end never arrives.
    client.removeListener('data', toUp);
    client.resume();
    client.end();
    linger();
  });
  client.on('close', () => {
    // After the client's last bytes (below), which go upstream a turn later.
    setImmediate(() => {
      if (up.destroyed || up.writableFinished) return finish();
      up.end(finish);
      linger();
    });
  });
  client.on('data', toUp);
  client.on('end', () => setImmediate(() => up.destroyed || up.writableEnded || up.end()));
  // The tap sees each chunk before the client is written it.
  if (tap) up.on('data', (c: Buffer) => tap.fromUpstream(c));
  up.pipe(client);
}

/**
 * Stage 4, forward (upgrades: exec, attach, port-forward). HTTP/1.1 on a fresh
 * upstream connection each (agent: false). The client socket is not read
 * until the upstream answers 101; a client that sends bytes before that is
 * cut off, so nothing it sent early ever reaches upstream. On any other status
 * the response is relayed and both sockets close.
 */
export function forwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  upstream: Upstream,
  target: string,
  headers: UpstreamHeaders,
  hooks: UpgradeHooks,
): { readonly cut: () => void } {
  let ended = false;
  let upSocket: Duplex | undefined;
  let linger: NodeJS.Timeout | undefined;
  const end = (o: UpgradeOutcome): void => {
    if (ended) return;
    ended = true;
    if (linger) clearTimeout(linger);
    socket.destroy();
    upSocket?.destroy();
    hooks.onEnd(o);
  };
  // A fresh connection per upgrade (SECURITY rule 10), never the pool.
  const up = https.request({ ...upstreamRequest(upstream, req.method, target, headers), agent: false, ...upstream.tls, rejectUnauthorized: true });
  const early = (): void => {
    up.destroy();
    end({ kind: 'early-bytes' });
  };
  if (head.length > 0) {
    queueMicrotask(early);
  } else {
    socket.on('data', early);
  }
  socket.on('error', () => end(upSocket ? { kind: 'upgraded-closed', status: 101 } : { kind: 'upstream-error', message: 'client socket error' }));
  socket.on('close', () => {
    // After the upgrade, the relay owns teardown.
    if (!ended && !upSocket) {
      up.destroy();
      end({ kind: 'upstream-error', message: 'client closed before upgrade' });
    }
  });
  up.on('upgrade', (upRes, s, upHead) => {
    if (ended) {
      s.destroy();
      return;
    }
    upSocket = s;
    socket.removeListener('data', early);
    const lines = [`HTTP/1.1 101 ${upRes.statusMessage || 'Switching Protocols'}`];
    for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    hooks.tap?.upgraded(upRes.headers);
    if (upHead.length > 0) {
      hooks.tap?.fromUpstream(upHead);
      socket.write(upHead);
    }
    hooks.onUpgraded();
    relay(s, socket, () => end({ kind: 'upgraded-closed', status: 101 }), (t) => (linger = t), hooks.tap);
  });
  up.on('response', (upRes) => {
    const status = upRes.statusCode ?? 502;
    const chunks: Buffer[] = [];
    let size = 0;
    upRes.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REFUSAL_BODY) chunks.push(c);
    });
    upRes.on('end', () => {
      const body = Buffer.concat(chunks);
      const lines = [`HTTP/1.1 ${status} ${upRes.statusMessage ?? ''}`];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) {
        const k = (upRes.rawHeaders[i] ?? '').toLowerCase();
        if (['connection', 'transfer-encoding', 'content-length', 'keep-alive', 'upgrade'].includes(k)) continue;
        lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
      }
      lines.push(`content-length: ${body.length}`, 'connection: close');
      socket.removeListener('data', early);
      socket.end(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), body]), () => end({ kind: 'refused', status }));
    });
    upRes.on('error', () => end({ kind: 'refused', status }));
  });
  up.on('error', (err) => end({ kind: 'upstream-error', message: err.message }));
  up.end();
  return {
    cut: () => {
      up.destroy();
      end(upSocket ? { kind: 'upgraded-closed', status: 101 } : { kind: 'upstream-error', message: 'cut' });
    },
  };
}
