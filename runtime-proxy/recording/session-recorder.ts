import { createHash } from 'node:crypto';
import { TextDecoder } from 'node:util';
import { close, fsync, mkdirSync, openSync, writeFile } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { castLine, type CastHeader } from './asciicast.ts';
import { SpdyFrameReader } from './spdy-frames.ts';
import { WsMessageReader } from './ws-frames.ts';

/** What a recording is about; becomes its header. */
export type RecordingMeta = Omit<CastHeader['portcullis'], 'input'> & { readonly command: readonly string[]; readonly recordInput: boolean };

/** How a recording ended: its id and the SHA-256 of the file's bytes, or why it could not be written. */
export type RecordingResult =
  | { readonly ok: true; readonly id: string; readonly sha256: string; readonly bytes: number }
  | { readonly ok: false; readonly id: string; readonly error: string };

/** What the upgrade relay shows a recording: the 101 answer, then the bytes of each direction. */
export interface SessionTap {
  upgraded(headers: IncomingHttpHeaders): void;
  fromUpstream(chunk: Buffer): void;
  fromClient(chunk: Buffer): void;
}

/** A session's recording stops (and fails, so the audit failure policy applies) beyond this size. @default 64 MiB */
export const MAX_RECORDING_BYTES = 64 * 1024 * 1024;

/** kube's remotecommand stream types by WebSocket channel (`k8s.io/apimachinery/pkg/util/remotecommand`). */
const WS_CHANNEL: Readonly<Record<number, StreamType>> = { 0: 'stdin', 1: 'stdout', 2: 'stderr', 3: 'error', 4: 'resize' };
type StreamType = 'stdin' | 'stdout' | 'stderr' | 'error' | 'resize';
/** Which side may send each stream type: kube's server ignores output a client sends, and so does the recording. */
const SENDER: Readonly<Record<StreamType, 'upstream' | 'client'>> = { stdin: 'client', resize: 'client', stdout: 'upstream', stderr: 'upstream', error: 'upstream' };
/** Reads a transport's framing in each direction. */
interface Decoder {
  readonly fromUpstream: (c: Buffer) => void;
  readonly fromClient: (c: Buffer) => void;
}

/**
 * One exec or attach session written as asciicast v2 (`<dir>/<auditID>.cast`, mode 0600): what
 * the terminal showed (stdout and stderr), what was typed where the grant records input, and
 * resizes. It reads kube's remotecommand framing over both transports: WebSocket channels
 * (binary `*channel.k8s.io`, or `base64.channel.k8s.io` text frames) and SPDY/3.1 streams named
 * by their `streamtype` header. It only observes: the relay forwards the bytes as they are.
 *
 * Writes are queued and appended in order; the file's digest is computed as it is written. A
 * failure to write, or bytes that cannot be read as the protocol, is reported once to
 * `onFailure`, after which nothing more is recorded (the proxy applies the audit failure policy).
 */
export class SessionRecorder implements SessionTap {
  readonly id: string;
  readonly file: string;
  readonly #fd: number;
  readonly #meta: RecordingMeta;
  readonly #startedAt: number;
  readonly #clock: () => number;
  readonly #hash = createHash('sha256');
  #bytes = 0;
  #queue: Buffer[] = [];
  #writing = false;
  #drained: (() => void)[] = [];
  #error: Error | undefined;
  #closed: Promise<RecordingResult> | undefined;
  #onFailure: ((err: Error) => void) | undefined;
  /** The header waits for the first event, so that a resize sent at once gives the real size. */
  #headerWritten = false;
  #size = { width: 80, height: 24 };
  #transport: Decoder | undefined;
  readonly #decoders = new Map<StreamType, TextDecoder>();

  /** Creates the file now (synchronously, so a failure refuses the session before it starts). Throws. */
  static open(dir: string, meta: RecordingMeta, clock: () => number, maxBytes = MAX_RECORDING_BYTES): SessionRecorder {
    if (!/^[0-9a-f-]{36}$/.test(meta.auditID)) throw new Error(`recording id ${meta.auditID} is not an audit ID`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `${meta.auditID}.cast`);
    return new SessionRecorder(file, openSync(file, 'wx', 0o600), meta, clock, maxBytes);
  }

  readonly #maxBytes: number;

  private constructor(file: string, fd: number, meta: RecordingMeta, clock: () => number, maxBytes: number) {
    this.#maxBytes = maxBytes;
    this.id = meta.auditID;
    this.file = file;
    this.#fd = fd;
    this.#meta = meta;
    this.#clock = clock;
    this.#startedAt = clock();
  }

  /** Called once, on the first failure. */
  onFailure(fn: (err: Error) => void): void {
    this.#onFailure = fn;
  }

  upgraded(headers: IncomingHttpHeaders): void {
    try {
      if (this.#meta.transport === 'spdy') this.#transport = this.#spdy();
      else if (headers['sec-websocket-extensions'] !== undefined) throw new Error('the WebSocket session negotiated an extension; its frames cannot be read');
      else this.#transport = this.#websocket(String(headers['sec-websocket-protocol'] ?? '').includes('base64.channel.k8s.io'));
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  fromUpstream(chunk: Buffer): void {
    this.#feed('fromUpstream', chunk);
  }

  fromClient(chunk: Buffer): void {
    this.#feed('fromClient', chunk);
  }

  /** Bytes of one side to its reader; what it cannot read fails the recording, never the relay. */
  #feed(side: keyof Decoder, chunk: Buffer): void {
    if (this.#error || !this.#transport) return;
    try {
      this.#transport[side](chunk);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  /** Writes what is left, syncs and closes the file; the same promise for every call. */
  close(): Promise<RecordingResult> {
    this.#closed ??= (async () => {
      for (const [type, d] of this.#decoders) {
        const rest = d.decode();
        if (rest) this.#event(type === 'stdin' ? 'i' : 'o', rest);
      }
      this.#writeHeader();
      await new Promise<void>((resolve) => (this.#queue.length === 0 && !this.#writing ? resolve() : this.#drained.push(resolve)));
      if (!this.#error) await new Promise<void>((resolve) => fsync(this.#fd, (err) => (err ? this.#fail(err) : undefined, resolve())));
      await new Promise<void>((resolve) => close(this.#fd, () => resolve()));
      return this.#error ? { ok: false, id: this.id, error: this.#error.message } : { ok: true, id: this.id, sha256: this.#hash.digest('hex'), bytes: this.#bytes };
    })();
    return this.#closed;
  }

  #websocket(base64: boolean): Decoder {
    const fail = (err: Error): void => this.#fail(err);
    const up = new WsMessageReader(false, fail);
    const client = new WsMessageReader(true, fail);
    const take = (from: 'upstream' | 'client') => (m: { data: Buffer; binary: boolean }): void => {
      if (m.data.length === 0) return;
      const first = m.data[0] ?? 0;
      const channel = base64 ? first - 0x30 : first;
      const type = WS_CHANNEL[channel];
      // v5's close signal (255) and unknown channels carry no terminal data; nor does a channel from the wrong side.
      if (!type || SENDER[type] !== from) return;
      const payload = base64 ? Buffer.from(m.data.subarray(1).toString('latin1'), 'base64') : m.data.subarray(1);
      this.#data(type, payload);
    };
    const fromUp = take('upstream');
    const fromClient = take('client');
    return {
      fromUpstream: (c) => up.push(c).forEach(fromUp),
      fromClient: (c) => client.push(c).forEach(fromClient),
    };
  }

  #spdy(): Decoder {
    const up = new SpdyFrameReader();
    const client = new SpdyFrameReader();
    // Streams are named by the client's SYN_STREAM (kube's `streamtype` header); either side's data then follows the name.
    const types = new Map<number, StreamType>();
    const take = (from: 'upstream' | 'client') => (f: ReturnType<SpdyFrameReader['push']>[number]): void => {
      if (f.kind === 'headers') {
        // Only the client names streams (its SYN_STREAM); upstream's SYN_REPLY echoes them.
        const t = f.headers.get('streamtype');
        if (from === 'client' && (t === 'stdin' || t === 'stdout' || t === 'stderr' || t === 'error' || t === 'resize')) types.set(f.streamId, t);
      } else if (f.kind === 'data') {
        const t = types.get(f.streamId);
        if (t && SENDER[t] === from && f.data.length > 0) this.#data(t, f.data);
      }
    };
    const fromUp = take('upstream');
    const fromClient = take('client');
    return {
      fromUpstream: (c) => up.push(c).forEach(fromUp),
      fromClient: (c) => client.push(c).forEach(fromClient),
    };
  }

  /** One stream's bytes: output and input as text (a character split across chunks waits for its rest), resizes as events. */
  #data(type: StreamType, payload: Buffer): void {
    if (type === 'error') return;
    if (type === 'resize') {
      // remotecommand.TerminalSize as JSON, one per message ({"Width":80,"Height":24}).
      // Read as leniently as kube's decoder (keys in any case); what cannot be read is skipped, never fatal.
      for (const line of payload.toString('utf8').split('\n')) {
        const s = terminalSize(line);
        if (!s) continue;
        this.#size = s;
        if (this.#headerWritten) this.#event('r', `${s.width}x${s.height}`);
      }
      return;
    }
    if (type === 'stdin' && !this.#meta.recordInput) return;
    let d = this.#decoders.get(type);
    if (!d) this.#decoders.set(type, (d = new TextDecoder('utf-8')));
    const text = d.decode(payload, { stream: true });
    if (text) this.#event(type === 'stdin' ? 'i' : 'o', text);
  }

  #writeHeader(): void {
    if (this.#headerWritten) return;
    this.#headerWritten = true;
    const m = this.#meta;
    const header: CastHeader = {
      version: 2,
      width: this.#size.width,
      height: this.#size.height,
      timestamp: Math.floor(this.#startedAt / 1000),
      command: m.command.join(' '),
      title: `${m.subresource} ${m.namespace}/${m.pod}${m.container ? `/${m.container}` : ''} on ${m.cluster} by ${m.user}`,
      portcullis: {
        auditID: m.auditID,
        cluster: m.cluster,
        user: m.user,
        namespace: m.namespace,
        pod: m.pod,
        ...(m.container ? { container: m.container } : {}),
        subresource: m.subresource,
        transport: m.transport,
        tty: m.tty,
        input: m.recordInput,
      },
    };
    this.#append(JSON.stringify(header));
  }

  #event(code: 'o' | 'i' | 'r', data: string): void {
    this.#writeHeader();
    this.#append(castLine((this.#clock() - this.#startedAt) / 1000, code, data));
  }

  #append(line: string): void {
    if (this.#error) return;
    const b = Buffer.from(`${line}\n`, 'utf8');
    if (this.#bytes + b.length > this.#maxBytes) return this.#fail(new Error(`the recording reached its limit of ${this.#maxBytes} bytes`));
    this.#hash.update(b);
    this.#bytes += b.length;
    this.#queue.push(b);
    this.#kick();
  }

  /** One write at a time, of everything queued (fs.writeFile on a descriptor writes it whole, appending). */
  #kick(): void {
    if (this.#writing) return;
    if (this.#queue.length === 0 || this.#error) {
      for (const d of this.#drained.splice(0)) d();
      return;
    }
    this.#writing = true;
    const chunk = this.#queue.length === 1 ? (this.#queue[0] as Buffer) : Buffer.concat(this.#queue);
    this.#queue = [];
    writeFile(this.#fd, chunk, (err) => {
      this.#writing = false;
      if (err) this.#fail(err);
      this.#kick();
    });
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#queue = [];
    this.#onFailure?.(err);
  }
}

/** remotecommand.TerminalSize as JSON (`{"Width":80,"Height":24}`), keys matched in any case as Go's decoder does. */
function terminalSize(line: string): { readonly width: number; readonly height: number } | undefined {
  if (line.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const get = (k: string) => Object.entries(v).find(([key]) => key.toLowerCase() === k)?.[1];
  const width = get('width');
  const height = get('height');
  return typeof width === 'number' && typeof height === 'number' ? { width, height } : undefined;
}
