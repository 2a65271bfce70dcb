import { constants, inflateSync } from 'node:zlib';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary.ts';

/** One SPDY/3.1 frame, as far as a session recording needs it. */
export type SpdyFrame =
  /** Data of a stream; a long data frame comes in pieces as its bytes arrive (`fin` on the last piece). */
  | { readonly kind: 'data'; readonly streamId: number; readonly fin: boolean; readonly data: Buffer }
  /** SYN_STREAM, SYN_REPLY or HEADERS: a stream's (decompressed) header block. */
  | { readonly kind: 'headers'; readonly streamId: number; readonly headers: ReadonlyMap<string, string> }
  /** Any other control frame (RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE): type only. */
  | { readonly kind: 'control'; readonly type: number };

/** A byte stream that is not SPDY/3.1 as kube's streams speak it, or more than a session needs. */
export class SpdyFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpdyFrameError';
  }
}

const TYPE_SYN_STREAM = 1;
const TYPE_SYN_REPLY = 2;
const TYPE_HEADERS = 8;
const FLAG_FIN = 0x01;
/**
 * What one direction's header blocks may amount to. kube's exec opens at most six streams, each
 * with a block of a few dozen bytes; these bounds keep the re-inflation below (all blocks so far,
 * each time) to a few milliseconds in the worst case, whatever a client sends.
 */
const MAX_HEADER_BLOCKS = 64;
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_INFLATED_BYTES = 256 * 1024;
/** A control frame other than a header block is a handful of bytes (SETTINGS, PING, GOAWAY…). */
const MAX_CONTROL_FRAME = 64 * 1024;

/**
 * Reads one direction of a SPDY/3.1 connection, as moby/spdystream's Framer (`ReadFrame`) does:
 * the 8-byte frame header (control bit, version and type, or the stream id; flags and a 24-bit
 * length), then the payload. Data is passed on in pieces as it arrives, never buffered whole.
 * Header blocks of SYN_STREAM, SYN_REPLY and HEADERS share one zlib stream per direction, primed
 * with the SPDY/3 dictionary; each block ends with a sync flush.
 *
 * The relay forwards the bytes unchanged; this only observes them. zlib's state spans blocks, so
 * each block is inflated together with every block before it and only the new output is kept:
 * synchronous, and bounded by MAX_HEADER_BLOCKS, MAX_HEADER_BYTES and MAX_INFLATED_BYTES.
 */
export class SpdyFrameReader {
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** The data frame being passed on: its stream, flags and how many of its bytes are still to come. */
  #data: { readonly streamId: number; readonly fin: boolean; remaining: number } | undefined;
  readonly #compressed: Buffer[] = [];
  #compressedBytes = 0;
  #inflatedBytes = 0;

  /** Takes the next bytes of the direction; returns the frames (and pieces of data) they complete. Throws SpdyFrameError. */
  push(chunk: Buffer): SpdyFrame[] {
    const frames: SpdyFrame[] = [];
    let rest = chunk;
    while (rest.length > 0) {
      const d = this.#data;
      if (d) {
        const n = Math.min(d.remaining, rest.length);
        d.remaining -= n;
        frames.push({ kind: 'data', streamId: d.streamId, fin: d.fin && d.remaining === 0, data: rest.subarray(0, n) });
        rest = rest.subarray(n);
        if (d.remaining === 0) this.#data = undefined;
        continue;
      }
      // A frame header, or a whole control frame: held until complete (both are bounded).
      this.#held.push(rest);
      this.#heldBytes += rest.length;
      rest = Buffer.alloc(0);
      if (this.#heldBytes < 8) break;
      const buf = this.#held.length === 1 ? (this.#held[0] as Buffer) : Buffer.concat(this.#held);
      this.#held = [];
      this.#heldBytes = 0;
      const first = buf.readUInt32BE(0);
      const second = buf.readUInt32BE(4);
      const length = second & 0xffffff;
      const flags = second >>> 24;
      if ((first & 0x80000000) === 0) {
        if (length === 0) frames.push({ kind: 'data', streamId: first & 0x7fffffff, fin: (flags & FLAG_FIN) !== 0, data: Buffer.alloc(0) });
        else this.#data = { streamId: first & 0x7fffffff, fin: (flags & FLAG_FIN) !== 0, remaining: length };
        rest = buf.subarray(8);
        continue;
      }
      if (length > MAX_CONTROL_FRAME) throw new SpdyFrameError(`control frame of ${length} bytes (at most ${MAX_CONTROL_FRAME})`);
      if (buf.length < 8 + length) {
        this.#held = [buf];
        this.#heldBytes = buf.length;
        break;
      }
      frames.push(this.#control(first, length, buf.subarray(8, 8 + length)));
      rest = buf.subarray(8 + length);
    }
    return frames;
  }

  #control(first: number, length: number, payload: Buffer): SpdyFrame {
    const version = (first >>> 16) & 0x7fff;
    if (version !== 3) throw new SpdyFrameError(`SPDY version ${version}, not 3`);
    const type = first & 0xffff;
    const blockAt = type === TYPE_SYN_STREAM ? 10 : type === TYPE_SYN_REPLY || type === TYPE_HEADERS ? 4 : -1;
    if (blockAt < 0) return { kind: 'control', type };
    if (length < blockAt) throw new SpdyFrameError(`control frame ${type} of ${length} bytes is too short`);
    const streamId = payload.readUInt32BE(0) & 0x7fffffff;
    return { kind: 'headers', streamId, headers: this.#headerBlock(payload.subarray(blockAt)) };
  }

  /** Mirrors spdystream's parseHeaderValueBlock: a count, then length-prefixed names and values. */
  #headerBlock(block: Buffer): Map<string, string> {
    this.#compressedBytes += block.length;
    this.#compressed.push(block);
    if (this.#compressed.length > MAX_HEADER_BLOCKS) throw new SpdyFrameError(`more than ${MAX_HEADER_BLOCKS} header blocks`);
    if (this.#compressedBytes > MAX_HEADER_BYTES) throw new SpdyFrameError(`more than ${MAX_HEADER_BYTES} bytes of header blocks`);
    let out: Buffer;
    try {
      out = inflateSync(Buffer.concat(this.#compressed), { dictionary: SPDY3_HEADER_DICTIONARY, finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: MAX_INFLATED_BYTES });
    } catch (err) {
      throw new SpdyFrameError(`header block does not inflate within ${MAX_INFLATED_BYTES} bytes: ${(err as Error).message}`);
    }
    const b = out.subarray(this.#inflatedBytes);
    this.#inflatedBytes = out.length;
    const headers = new Map<string, string>();
    let at = 0;
    const u32 = (): number => {
      if (b.length - at < 4) throw new SpdyFrameError('header block cut short');
      const v = b.readUInt32BE(at);
      at += 4;
      return v;
    };
    const bytes = (n: number): string => {
      if (b.length - at < n) throw new SpdyFrameError('header block cut short');
      const s = b.toString('utf8', at, at + n);
      at += n;
      return s;
    };
    for (let n = u32(); n > 0; n--) {
      const name = bytes(u32()).toLowerCase();
      headers.set(name, bytes(u32()));
    }
    return headers;
  }
}
