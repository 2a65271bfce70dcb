import * as ws from 'ws';

/** A complete WebSocket message: binary or text (data frames reassembled; control frames not reported). */
export interface WsMessage {
  readonly data: Buffer;
  readonly binary: boolean;
}

/** The parts of ws's frame parser (`ws/lib/receiver.js`, exported as `Receiver`; @types/ws does not declare it) used here. */
interface Receiver {
  write(chunk: Buffer): boolean;
  on(event: 'message', fn: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  on(event: 'conclude', fn: () => void): void;
}
type ReceiverClass = new (options: { isServer: boolean; maxPayload: number; skipUTF8Validation: boolean }) => Receiver;

/** The largest message recorded; kube's streams send at most 32 KiB frames. */
const MAX_MESSAGE = 16 * 1024 * 1024;

/**
 * Reads one direction of a relayed WebSocket connection with ws's own frame parser (RFC 6455
 * framing, masking, fragmentation, control frames), so the recording understands exactly the
 * frames that pass. `fromClient`: the client's frames, which are masked. No extension is
 * negotiated on a recorded session (the proxy does not forward Sec-WebSocket-Extensions), so a
 * compressed frame is an error here.
 */
export class WsMessageReader {
  readonly #receiver: Receiver;
  readonly #messages: WsMessage[] = [];
  #error: Error | undefined;
  readonly #masked: boolean;
  /** A close frame was read: the connection is over, and the parser takes nothing more. */
  #concluded = false;

  /** `onError`: a malformed frame (ws reports it a turn after the bytes that held it). */
  constructor(fromClient: boolean, onError: (err: Error) => void) {
    this.#masked = fromClient;
    const R = (ws as unknown as { Receiver: ReceiverClass }).Receiver;
    this.#receiver = new R({ isServer: fromClient, maxPayload: MAX_MESSAGE, skipUTF8Validation: true });
    this.#receiver.on('message', (data, binary) => this.#messages.push({ data, binary }));
    this.#receiver.on('conclude', () => (this.#concluded = true));
    this.#receiver.on('error', (err) => {
      if (this.#error) return;
      this.#error = err;
      onError(err);
    });
  }

  /** Takes the next bytes of the direction; returns the messages they complete. Throws after a malformed frame. */
  push(chunk: Buffer): WsMessage[] {
    if (this.#error) throw this.#error;
    if (this.#concluded) return [];
    // ws unmasks payloads in place, and the relay forwards this very buffer: the receiver gets a copy.
    this.#receiver.write(this.#masked ? Buffer.from(chunk) : chunk);
    if (this.#error) throw this.#error;
    return this.#messages.splice(0);
  }
}
