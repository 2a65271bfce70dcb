import { constants, inflateSync } from 'node:zlib';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary.ts';

/** One SPDY/3.1 frame, as far as a session recording needs it. */
export type SpdyFrame =
  | { readonly kind: 'data'; readonly streamId: number; readonly fin: boolean; readonly data: Buffer }
  /** SYN_STREAM, SYN_REPLY or HEADERS: a stream's (decompressed) header block. */
  | { readonly kind: 'headers'; readonly streamId: number; readonly headers: ReadonlyMap<string, string> }
  /** Any other control frame (RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE): type only. */
  | { readonly kind: 'control'; readonly type: number };

/** A byte stream that is not SPDY/3.1 as kube's streams speak it. */
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
/** Compressed header bytes one direction may carry in all (kube's streams use a handful of small blocks). */
const MAX_HEADER_BYTES = 256 * 1024;

/**
 * Reads one direction of a SPDY/3.1 connection, as moby/spdystream's Framer (`ReadFrame`) does:
 * the 8-byte frame header (control bit, version and type, or the stream id; flags and a 24-bit
 * length), then the payload. Header blocks of SYN_STREAM, SYN_REPLY and HEADERS share one zlib
 * stream per direction, primed with the SPDY/3 dictionary; each block ends with a sync flush.
 *
 * The relay forwards the bytes unchanged; this only observes them, so the reader must never ask
 * for more than the wire carries. zlib's state spans blocks, so each block is inflated together
 * with every block before it and only the new output is kept: synchronous, and cheap for the few
 * blocks a session has (at most MAX_HEADER_BYTES in all).
 */
export class SpdyFrameReader {
  #pending: Buffer = Buffer.alloc(0);
  readonly #compressed: Buffer[] = [];
  #compressedBytes = 0;
  #inflatedBytes = 0;

  /** Takes the next bytes of the direction; returns the frames they complete. Throws SpdyFrameError. */
  push(chunk: Buffer): SpdyFrame[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: SpdyFrame[] = [];
    let at = 0;
    const buf = this.#pending;
    while (buf.length - at >= 8) {
      const first = buf.readUInt32BE(at);
      const second = buf.readUInt32BE(at + 4);
      const length = second & 0xffffff;
      if (buf.length - at - 8 < length) break;
      const payload = buf.subarray(at + 8, at + 8 + length);
      const flags = second >>> 24;
      at += 8 + length;
      if ((first & 0x80000000) === 0) {
        frames.push({ kind: 'data', streamId: first & 0x7fffffff, fin: (flags & FLAG_FIN) !== 0, data: payload });
        continue;
      }
      const version = (first >>> 16) & 0x7fff;
      if (version !== 3) throw new SpdyFrameError(`SPDY version ${version}, not 3`);
      const type = first & 0xffff;
      const blockAt = type === TYPE_SYN_STREAM ? 10 : type === TYPE_SYN_REPLY || type === TYPE_HEADERS ? 4 : -1;
      if (blockAt < 0) {
        frames.push({ kind: 'control', type });
        continue;
      }
      if (length < blockAt) throw new SpdyFrameError(`control frame ${type} of ${length} bytes is too short`);
      const streamId = payload.readUInt32BE(0) & 0x7fffffff;
      frames.push({ kind: 'headers', streamId, headers: this.#headerBlock(payload.subarray(blockAt)) });
    }
    this.#pending = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    return frames;
  }

  /** Mirrors spdystream's parseHeaderValueBlock: a count, then length-prefixed names and values. */
  #headerBlock(block: Buffer): Map<string, string> {
    this.#compressedBytes += block.length;
    if (this.#compressedBytes > MAX_HEADER_BYTES) throw new SpdyFrameError(`more than ${MAX_HEADER_BYTES} bytes of header blocks`);
    this.#compressed.push(block);
    let out: Buffer;
    try {
      out = inflateSync(Buffer.concat(this.#compressed), { dictionary: SPDY3_HEADER_DICTIONARY, finishFlush: constants.Z_SYNC_FLUSH });
    } catch (err) {
      throw new SpdyFrameError(`header block does not inflate: ${(err as Error).message}`);
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
