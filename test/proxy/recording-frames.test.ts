// The frame readers behind session recording: SPDY/3.1 (header blocks sharing one zlib stream
// primed with the SPDY dictionary) and WebSocket (ws's own parser). Whatever way the wire cuts
// the bytes, the same frames come out; bad frames are refused with a clear error.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { constants, createDeflate, type Deflate } from 'node:zlib';
import fc from 'fast-check';
import * as ws from 'ws';
import { SpdyFrameError, SpdyFrameReader, type SpdyFrame } from '../../runtime-proxy/recording/spdy-frames.ts';
import { SPDY3_HEADER_DICTIONARY } from '../../runtime-proxy/recording/spdy-dictionary.ts';
import { WsMessageReader } from '../../runtime-proxy/recording/ws-frames.ts';
import { parseCast, SessionRecorder } from '../../runtime-proxy/recording/index.ts';

/** A header block compressed on the connection's one zlib stream, as spdystream's Framer writes it (sync flush). */
function compress(z: Deflate, headers: Readonly<Record<string, string>>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const entries = Object.entries(headers);
  parts.push(u32(entries.length));
  for (const [k, v] of entries) parts.push(u32(Buffer.byteLength(k)), Buffer.from(k), u32(Buffer.byteLength(v)), Buffer.from(v));
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const onData = (c: Buffer) => out.push(c);
    z.on('data', onData);
    z.write(Buffer.concat(parts));
    z.flush(constants.Z_SYNC_FLUSH, () => {
      z.removeListener('data', onData);
      resolve(Buffer.concat(out));
    });
  });
}

function control(type: number, payload: Buffer, flags = 0): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE((0x8000 | 3) * 0x10000 + type);
  h.writeUInt32BE(flags * 0x1000000 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

function synStream(id: number, block: Buffer): Buffer {
  const p = Buffer.alloc(10);
  p.writeUInt32BE(id);
  return control(1, Buffer.concat([p, block]));
}

function data(id: number, bytes: Buffer, fin = false): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(id);
  h.writeUInt32BE((fin ? 0x01000000 : 0) + bytes.length, 4);
  return Buffer.concat([h, bytes]);
}

/** A client's side of a kubectl exec over SPDY: error, stdin, stdout, stderr streams, some stdin, a ping. */
async function clientSide(): Promise<Buffer> {
  const z = createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY });
  const frames: Buffer[] = [];
  let id = 1;
  for (const t of ['error', 'stdin', 'stdout', 'stderr']) {
    frames.push(synStream(id, await compress(z, { streamtype: t, port: '', 'x-stream-id': String(id) })));
    id += 2;
  }
  frames.push(data(3, Buffer.from('typed ✓\n')), control(6, Buffer.from([0, 0, 0, 1])), data(3, Buffer.alloc(0), true));
  z.close();
  return Buffer.concat(frames);
}

function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

/** Pieces of one data frame (they come as their bytes arrive) joined, so cuts compare equal. */
function joined(fs: SpdyFrame[]): SpdyFrame[] {
  const out: SpdyFrame[] = [];
  for (const f of fs) {
    const last = out.at(-1);
    if (f.kind === 'data' && last?.kind === 'data' && last.streamId === f.streamId && !last.fin) out[out.length - 1] = { ...f, data: Buffer.concat([last.data, f.data]) };
    else out.push(f);
  }
  return out;
}

const summary = (fs: SpdyFrame[]) => joined(fs).map((f) => (f.kind === 'headers' ? `h${f.streamId}:${f.headers.get('streamtype')}` : f.kind === 'data' ? `d${f.streamId}:${f.data.toString()}${f.fin ? ':fin' : ''}` : `c${f.type}`));

describe('SPDY frame reader', () => {
  it('GIVEN a client side of an exec WHEN read whole THEN each stream is named by its streamtype, across header blocks sharing one zlib stream', async () => {
    const frames = new SpdyFrameReader().push(await clientSide());
    assert.deepEqual(summary(frames), ['h1:error', 'h3:stdin', 'h5:stdout', 'h7:stderr', 'd3:typed ✓\n', 'c6', 'd3::fin']);
    // A data frame is passed on as its bytes arrive, never held whole.
    const r = new SpdyFrameReader();
    const big = data(5, Buffer.alloc(1 << 20, 0x61), true);
    const pieces = [r.push(big.subarray(0, 1000)), r.push(big.subarray(1000))];
    assert.deepEqual(pieces.map((p) => p.map((f) => (f.kind === 'data' ? [f.data.length, f.fin] : f.kind))), [[[992, false]], [[(1 << 20) - 992, true]]]);
  });

  it('GIVEN the same bytes WHEN the wire cuts them anywhere THEN the same frames come out (property)', async () => {
    const wire = await clientSide();
    const whole = summary(new SpdyFrameReader().push(wire));
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const r = new SpdyFrameReader();
        const got = splitAt(wire, cuts).flatMap((c) => r.push(c));
        assert.deepEqual(summary(got), whole);
      }),
      { seed: 20261207, numRuns: 300 },
    );
  });

  it('GIVEN bad frames WHEN read THEN each is refused with a SpdyFrameError saying why', async () => {
    const bad: [string, Buffer, RegExp][] = [
      ['SPDY/2', Buffer.from([0x80, 0x02, 0x00, 0x01, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), /version 2/],
      ['a SYN_STREAM too short for its stream id', control(1, Buffer.from([0, 0])), /too short/],
      ['a header block that is not zlib', synStream(1, Buffer.from('not deflate at all')), /does not inflate/],
    ];
    for (const [what, bytes, why] of bad) {
      assert.throws(() => new SpdyFrameReader().push(bytes), (e: unknown) => e instanceof SpdyFrameError && why.test(e.message), what);
    }
    // A header block that claims 9 entries and holds none.
    const z = createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY });
    const count = await new Promise<Buffer>((resolve) => {
      const out: Buffer[] = [];
      z.on('data', (c: Buffer) => out.push(c));
      z.write(Buffer.from([0, 0, 0, 9]));
      z.flush(constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)));
    });
    z.close();
    assert.throws(() => new SpdyFrameReader().push(synStream(1, count)), /cut short/);
  });

  it('GIVEN more header than a session carries WHEN read THEN refused at once: a long control frame, too many blocks, a block that inflates beyond the bound', async () => {
    assert.throws(() => new SpdyFrameReader().push(synStream(1, Buffer.alloc(100 * 1024))), /control frame of 102410 bytes/);
    const z = createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY });
    const r = new SpdyFrameReader();
    let id = 1;
    const many = async () => {
      for (;;) {
        r.push(synStream(id, await compress(z, { streamtype: 'stdout' })));
        id += 2;
      }
    };
    await assert.rejects(many, /more than 64 header blocks/);
    z.close();
    // A small block that inflates to megabytes (zeros compress well) is refused at the bound, not inflated whole.
    const bomb = createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY });
    const zeros = await new Promise<Buffer>((resolve) => {
      const out: Buffer[] = [];
      bomb.on('data', (c: Buffer) => out.push(c));
      bomb.write(Buffer.alloc(8 << 20));
      bomb.flush(constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)));
    });
    bomb.close();
    assert.ok(zeros.length < 64 * 1024, `${zeros.length} compressed bytes`);
    assert.throws(() => new SpdyFrameReader().push(synStream(1, zeros)), /does not inflate within 262144 bytes/);
  });
});

describe('WebSocket message reader', () => {
  /** Frames as a peer writes them (ws's Sender): masked from a client, plain from a server. */
  function frames(messages: readonly Buffer[], masked: boolean): Buffer {
    const out: Buffer[] = [];
    const fakeSocket = { write: (b: Buffer) => out.push(Buffer.from(b)), cork() {}, uncork() {} };
    // ws's frame writer (`Sender`, which @types/ws does not declare).
    const Sender = (ws as unknown as { Sender: new (socket: never) => { send(data: Buffer, o: object): void } }).Sender;
    const s = new Sender(fakeSocket as never);
    for (const m of messages) s.send(m, { binary: true, mask: masked, fin: true, compress: false });
    return Buffer.concat(out);
  }

  it('GIVEN masked client frames WHEN read in any cuts THEN the messages come out, and the bytes handed in are left as they were (the relay forwards them)', () => {
    const msgs = [Buffer.from([0, ...Buffer.from('stdin ✓')]), Buffer.from([4, ...Buffer.from('{"Width":100,"Height":30}')])];
    const wire = frames(msgs, true);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
        const copy = Buffer.from(wire);
        const r = new WsMessageReader(true, (e) => assert.fail(e));
        const got = splitAt(copy, cuts).flatMap((c) => r.push(c));
        assert.deepEqual(got.map((m) => m.data), msgs);
        assert.ok(copy.equals(wire), 'the forwarded bytes are untouched');
      }),
      { seed: 20261207, numRuns: 200 },
    );
  });

  it('GIVEN an unmasked frame from a client, or a masked one from a server THEN it is reported, and nothing more is read', async () => {
    for (const [fromClient, why] of [[true, /MASK must be set/], [false, /MASK must be clear/]] as const) {
      const errors: Error[] = [];
      const r = new WsMessageReader(fromClient, (e) => errors.push(e));
      r.push(frames([Buffer.from('x')], !fromClient));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(errors.length, 1);
      assert.match(errors[0]?.message ?? '', why);
      assert.throws(() => r.push(frames([Buffer.from('y')], fromClient)), why);
    }
  });
});

describe('session recorder: what each side may put in a recording', () => {
  /** One WebSocket frame as ws's Sender writes it. */
  function frame(payload: Buffer | string, masked: boolean, binary = true): Buffer {
    const out: Buffer[] = [];
    const Sender = (ws as unknown as { Sender: new (socket: never) => { send(data: Buffer | string, o: object): void } }).Sender;
    new Sender({ write: (b: Buffer) => out.push(Buffer.from(b)), cork() {}, uncork() {} } as never).send(payload, { binary, mask: masked, fin: true, compress: false });
    return Buffer.concat(out);
  }
  const meta = (auditID: string) => ({ auditID, cluster: 'dev', user: 'oidc:olivia', namespace: 'ns', pod: 'p', subresource: 'exec', transport: 'websocket' as const, tty: true, command: ['sh'], recordInput: true });

  it('GIVEN a client that sends output channels and an upstream that sends input ones WHEN recorded THEN only what each side may send is kept (kube ignores the rest), in both WebSocket framings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-rec-'));
    for (const [proto, enc] of [['v5.channel.k8s.io', (ch: number, s: string) => Buffer.concat([Buffer.from([ch]), Buffer.from(s)])], ['v4.base64.channel.k8s.io', (ch: number, s: string) => `${ch}${Buffer.from(s).toString('base64')}`]] as const) {
      const id = randomUUID();
      const rec = SessionRecorder.open(dir, meta(id), () => 0);
      rec.upgraded({ 'sec-websocket-protocol': proto });
      const binary = proto === 'v5.channel.k8s.io';
      rec.fromClient(frame(enc(4, '{"width":120,"height":40}'), true, binary));
      rec.fromClient(frame(enc(1, 'FORGED OUTPUT'), true, binary));
      rec.fromClient(frame(enc(0, 'typed'), true, binary));
      rec.fromUpstream(frame(enc(0, 'FORGED INPUT'), false, binary));
      rec.fromUpstream(frame(enc(1, 'real output'), false, binary));
      rec.fromUpstream(frame(enc(4, 'not json'), false, binary));
      const r = await rec.close();
      assert.equal(r.ok, true, JSON.stringify(r));
      const cast = parseCast(readFileSync(join(dir, `${id}.cast`), 'utf8'));
      assert.deepEqual(cast.events.map((e) => [e[1], e[2]]), [['i', 'typed'], ['o', 'real output']], proto);
      assert.deepEqual([cast.header.width, cast.header.height], [120, 40], 'a resize in lower-case keys, as Go decodes it');
    }
  });
});
