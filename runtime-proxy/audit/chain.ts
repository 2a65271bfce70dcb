import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hash, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import type { AuditEvent } from './event.ts';

/**
 * The tamper-evident audit log (issue 15). Every line carries its place in the replica's chain
 * and the SHA-256 of the line before it (across rotation and restarts); every `checkpointEvery`
 * records, and at close, a checkpoint line signs the chain's head with the proxy's Ed25519 key.
 * Both are annotations, so every line stays an audit.k8s.io/v1 Event; a checkpoint is an Event
 * of the proxy's own (user portcullis:proxy, verb checkpoint).
 */
export const CHAIN = {
  seq: 'portcullis.dev/chain-seq',
  prev: 'portcullis.dev/chain-prev',
  checkpoint: 'portcullis.dev/checkpoint-signature',
  key: 'portcullis.dev/checkpoint-key',
} as const;

export const GENESIS = '0'.repeat(64);
export const CHECKPOINT_URI = '/portcullis/audit/checkpoint';

export function lineHash(line: string): string {
  // One-shot: no Hash object per record.
  return hash('sha256', line, 'hex');
}

/** What a checkpoint signs: its own place in the chain and the hash of the line before it. */
function signedText(seq: number, prev: string): Buffer {
  return Buffer.from(`portcullis audit checkpoint\n${seq}\n${prev}\n`);
}

/** A key's id: the first 16 hex digits of the SHA-256 of its SPKI. */
export function keyId(pub: KeyObject): string {
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** The chain's state at the end of a log: the next sequence number and the last line's hash. */
export interface ChainHead {
  readonly seq: number;
  readonly prev: string;
}

/** Continues a chain from the last line of an existing log (a restart), or starts one. */
export function headAfter(lastLine: string | undefined): ChainHead {
  if (!lastLine) return { seq: 0, prev: GENESIS };
  try {
    const e = JSON.parse(lastLine) as AuditEvent;
    const seq = Number(e.annotations?.[CHAIN.seq]);
    if (Number.isInteger(seq)) return { seq: seq + 1, prev: lineHash(lastLine) };
  } catch {
    // not a chained line: a new chain starts after it
  }
  return { seq: 0, prev: GENESIS };
}

/** Links events into the chain, in write order, and makes checkpoint lines. */
export class Chain {
  #seq: number;
  #prev: string;
  readonly #key: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;

  constructor(head: ChainHead, privateKeyPem?: string) {
    this.#seq = head.seq;
    this.#prev = head.prev;
    if (privateKeyPem !== undefined) {
      this.#key = createPrivateKey(privateKeyPem);
      this.publicKey = createPublicKey(this.#key);
    } else {
      const pair = generateKeyPairSync('ed25519');
      this.#key = pair.privateKey;
      this.publicKey = pair.publicKey;
    }
    this.keyId = keyId(this.publicKey);
  }

  /** The sequence number the next line gets. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** The event's line (no newline), linked to the one before. */
  link(event: AuditEvent): string {
    // The chain's two annotations are spliced into the serialized event (annotations is its last
    // field; JSON.stringify keeps insertion order) rather than copying and serializing it again.
    const json = JSON.stringify(event);
    const chained = `"${CHAIN.seq}":"${this.#seq}","${CHAIN.prev}":"${this.#prev}"}}`;
    const line =
      json.endsWith('}}') && lastKey(event) === 'annotations'
        ? `${json.slice(0, -2)}${lastKey(event.annotations) !== undefined ? ',' : ''}${chained}`
        : JSON.stringify({ ...event, annotations: { ...event.annotations, [CHAIN.seq]: String(this.#seq), [CHAIN.prev]: this.#prev } });
    this.#seq++;
    this.#prev = lineHash(line);
    return line;
  }

  /** A signed checkpoint line over the chain so far. */
  checkpoint(now: number): string {
    const seq = this.#seq;
    const prev = this.#prev;
    const at = new Date(now).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    const event: AuditEvent = {
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      level: 'Metadata',
      auditID: randomUUID(),
      stage: 'ResponseComplete',
      requestURI: CHECKPOINT_URI,
      verb: 'checkpoint',
      user: { username: 'portcullis:proxy' },
      sourceIPs: [],
      responseStatus: { metadata: {}, code: 200 },
      requestReceivedTimestamp: at,
      stageTimestamp: at,
      annotations: { [CHAIN.key]: this.keyId, [CHAIN.checkpoint]: sign(null, signedText(seq, prev), this.#key).toString('base64') },
    } as unknown as AuditEvent;
    return this.link(event);
  }
}

/** An object's last own enumerable key in JSON.stringify's order (string keys here), without an array of them all. */
function lastKey(o: object): string | undefined {
  let last: string | undefined;
  for (const k in o) last = k;
  return last;
}

/** One file of a log, its lines in order. */
export interface LogFile {
  readonly name: string;
  readonly text: string;
}

/** What `audit verify` found. */
export interface Verification {
  readonly ok: boolean;
  readonly records: number;
  readonly checkpoints: number;
  /** The first break, as `file:line: what`. */
  readonly problem?: string;
  /** Lines after the last checkpoint (a live log has some; nothing signs them yet). */
  readonly unsigned: number;
}

/**
 * Verifies files of one replica's log: ordered by their first sequence number, every line must
 * parse, follow the one before (sequence and hash), and every checkpoint must be signed by one
 * of `keys` over exactly the chain before it. An edit, a deletion, a reordering, a line from
 * elsewhere or a forged checkpoint breaks it at the first line affected; a log cut short of the
 * latest checkpoint (`head`, kept beside the log) is a truncation.
 */
export function verifyLog(files: readonly LogFile[], keys: ReadonlyMap<string, KeyObject>, head?: { readonly seq: number; readonly hash: string }): Verification {
  const parsed = files.map((f) => ({ name: f.name, lines: f.text.split('\n') }));
  for (const f of parsed) {
    if (f.lines.at(-1) !== '') return { ok: false, records: 0, checkpoints: 0, unsigned: 0, problem: `${f.name}: does not end with a whole line (cut short)` };
    f.lines.pop();
  }
  const firstSeq = (f: (typeof parsed)[number]): number => {
    try {
      return Number((JSON.parse(f.lines[0] ?? '{}') as AuditEvent).annotations?.[CHAIN.seq] ?? NaN);
    } catch {
      return NaN;
    }
  };
  parsed.sort((a, b) => firstSeq(a) - firstSeq(b));
  let expectSeq: number | undefined;
  let prev: string | undefined;
  let records = 0;
  let checkpoints = 0;
  let unsigned = 0;
  let lastHash = GENESIS;
  let lastSeq = -1;
  const fail = (where: string, what: string): Verification => ({ ok: false, records, checkpoints, unsigned, problem: `${where}: ${what}` });
  for (const f of parsed) {
    for (let i = 0; i < f.lines.length; i++) {
      const line = f.lines[i] as string;
      const where = `${f.name}:${i + 1}`;
      let e: AuditEvent;
      try {
        e = JSON.parse(line) as AuditEvent;
      } catch {
        return fail(where, 'not a JSON line (edited, or a partial write)');
      }
      const seq = Number(e.annotations?.[CHAIN.seq]);
      const p = e.annotations?.[CHAIN.prev];
      if (!Number.isInteger(seq) || typeof p !== 'string') return fail(where, 'not a chained record');
      if (expectSeq === undefined) {
        // The oldest file given may start mid-chain (older files rotated away): its first line is taken as given.
        expectSeq = seq;
        prev = p;
      }
      if (seq !== expectSeq) return fail(where, `record ${seq} where ${expectSeq} was next (${seq > expectSeq ? 'records deleted' : 'records reordered or repeated'})`);
      if (p !== prev) return fail(where, 'does not follow the line before it (that line was edited, or lines were deleted or reordered)');
      const sig = e.annotations?.[CHAIN.checkpoint];
      if (sig !== undefined) {
        const key = keys.get(e.annotations?.[CHAIN.key] ?? '');
        if (!key) return fail(where, `checkpoint signed by unknown key ${e.annotations?.[CHAIN.key] ?? '(none)'}`);
        if (!verify(null, signedText(seq, p), key, Buffer.from(sig, 'base64'))) return fail(where, 'checkpoint signature does not verify (forged)');
        checkpoints++;
        unsigned = 0;
      } else {
        records++;
        unsigned++;
      }
      prev = lineHash(line);
      lastHash = prev;
      lastSeq = seq;
      expectSeq = seq + 1;
    }
  }
  if (head && (head.seq > lastSeq || (head.seq === lastSeq && head.hash !== lastHash))) {
    return fail(parsed.at(-1)?.name ?? 'log', `ends at record ${lastSeq}, but the latest checkpoint covers record ${head.seq}: the log was cut short`);
  }
  return { ok: true, records, checkpoints, unsigned };
}
