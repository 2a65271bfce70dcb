import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_ANNOTATION as A } from '../../core/names.ts';
import { searchAuditFiles } from '../audit/search.ts';
import { parseCast, type Cast } from './asciicast.ts';

/** Why a recording cannot be replayed: not found or unreadable (BAD_INPUT), or not the one its audit record names (MISMATCH). */
export class ReplayError extends Error {
  constructor(
    readonly code: 'BAD_INPUT' | 'MISMATCH',
    message: string,
  ) {
    super(message);
    this.name = 'ReplayError';
  }
}

/** How to replay. */
export interface ReplayOptions {
  /** Where recordings are (the proxy's `audit.recordings.dir`). @default `recordings` */
  readonly dir?: string;
  /** Audit files whose record of the session must name this recording's digest. @default none: not checked */
  readonly audit?: readonly string[];
  /** Playback speed. @default 1 */
  readonly speed?: number;
  /** The longest pause kept, in seconds. @default 2 */
  readonly idleLimit?: number;
  /** Print at once, without the recorded timing. @default false */
  readonly noWait?: boolean;
  /** Also show what was typed (where the grant recorded input), after `> `. @default false */
  readonly input?: boolean;
}

/** Reads a recording by id or path; with `audit`, checks its SHA-256 against the session's last record. */
export async function loadRecording(idOrFile: string, o: ReplayOptions): Promise<{ readonly cast: Cast; readonly file: string; readonly verified: boolean }> {
  const file = idOrFile.endsWith('.cast') || existsSync(idOrFile) ? idOrFile : join(o.dir ?? 'recordings', `${idOrFile}.cast`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new ReplayError('BAD_INPUT', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such recording (pass --dir, the proxy\'s audit.recordings.dir)' : (err as Error).message}`);
  }
  let cast: Cast;
  try {
    cast = parseCast(bytes.toString('utf8'));
  } catch (err) {
    throw new ReplayError('BAD_INPUT', `${file}: ${(err as Error).message}`);
  }
  if (!o.audit?.length) return { cast, file, verified: false };
  const id = cast.header.portcullis?.auditID ?? '';
  const { events } = await searchAuditFiles(o.audit, { stage: 'ResponseComplete' });
  const record = events.find((e) => e.auditID === id && e.annotations?.[A.recording] === id);
  if (!record) throw new ReplayError('MISMATCH', `${file}: no ResponseComplete record in ${o.audit.join(', ')} names recording ${id}`);
  const want = record.annotations[A.recordingSha256];
  const got = createHash('sha256').update(bytes).digest('hex');
  if (want !== got) throw new ReplayError('MISMATCH', `${file}: sha256 ${got} is not the ${want ?? '(none)'} its audit record names: the recording was changed or is incomplete`);
  return { cast, file, verified: true };
}

/** Plays a recording's output (and input, if asked) on `write`, with its timing unless `noWait`. */
export async function playRecording(cast: Cast, write: (s: string) => void, o: ReplayOptions, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<void> {
  const speed = o.speed ?? 1;
  const idle = (o.idleLimit ?? 2) * 1000;
  let last = 0;
  for (const [t, code, data] of cast.events) {
    if (code === 'r' || (code === 'i' && !o.input)) continue;
    if (!o.noWait) {
      const wait = Math.min((t - last) * 1000, idle) / speed;
      if (wait > 0) await sleep(wait);
    }
    last = t;
    write(code === 'i' ? `> ${data}` : data);
  }
}
