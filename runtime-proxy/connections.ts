import type { ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';

/**
 * The client connections of the proxy's listener, for a shutdown that ends: HTTP/2 sessions get
 * GOAWAY (their open streams finish), idle HTTP/1.1 connections close at once, busy ones after
 * their response, which says `Connection: close`. Without this, clients that keep their
 * connections alive hold the process past its grace (issue 15). Upgraded connections (exec,
 * attach, port-forward) are the stream registry's to close.
 */
export class Connections {
  readonly #sockets = new Map<TLSSocket, { busy: number; upgraded: boolean }>();
  readonly #sessions = new Set<Http2Session>();
  #closing = false;
  #empty: (() => void) | undefined;

  /** A TLS connection was accepted. */
  accepted(socket: TLSSocket): void {
    this.#sockets.set(socket, { busy: 0, upgraded: false });
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#check();
    });
  }

  /** An HTTP/2 session started on one of them. */
  session(session: Http2Session): void {
    this.#sessions.add(session);
    session.once('close', () => {
      this.#sessions.delete(session);
      this.#check();
    });
    if (this.#closing) session.close();
  }

  /** An HTTP/1.1 request arrived on `socket`: while closing, its response is the connection's last. */
  request(socket: TLSSocket, res: ServerResponse): void {
    const s = this.#sockets.get(socket);
    if (!s) return;
    s.busy++;
    if (this.#closing) res.shouldKeepAlive = false;
    res.once('close', () => {
      s.busy--;
      if (this.#closing && s.busy === 0 && !s.upgraded) socket.end();
    });
  }

  /** `socket` was upgraded. */
  upgraded(socket: TLSSocket): void {
    const s = this.#sockets.get(socket);
    if (s) s.upgraded = true;
  }

  /** Starts closing: GOAWAY on every HTTP/2 session, idle HTTP/1.1 connections end, busy ones after their response. */
  close(): void {
    this.#closing = true;
    for (const session of this.#sessions) session.close();
    for (const [socket, s] of this.#sockets) if (s.busy === 0 && !s.upgraded && !this.#isH2(socket)) socket.end();
  }

  /** Resolves when every connection has closed. */
  closed(): Promise<void> {
    return this.#sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => (this.#empty = resolve));
  }

  /** Ends what is still open (the grace is over). */
  destroyAll(): void {
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#sockets.keys()) socket.destroy();
  }

  /** Connections still open. */
  get size(): number {
    return this.#sockets.size;
  }

  #isH2(socket: TLSSocket): boolean {
    return socket.alpnProtocol === 'h2';
  }

  #check(): void {
    if (this.#sockets.size === 0 && this.#empty) {
      this.#empty();
      this.#empty = undefined;
    }
  }
}
