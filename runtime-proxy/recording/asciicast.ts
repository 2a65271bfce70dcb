/**
 * asciicast v2 (asciinema's file format): a JSON header line, then one JSON array per event,
 * `[seconds since start, code, data]`, with code `o` (output), `i` (input) or `r` (resize,
 * data `COLSxROWS`). Session recordings are written in it so any asciinema player shows them.
 */

/** The header line of a Portcullis recording; `portcullis` is an extra key players ignore. */
export interface CastHeader {
  readonly version: 2;
  readonly width: number;
  readonly height: number;
  /** Unix seconds when the session started. */
  readonly timestamp: number;
  readonly command?: string;
  readonly title?: string;
  readonly portcullis: {
    readonly auditID: string;
    readonly cluster: string;
    readonly user: string;
    readonly namespace: string;
    readonly pod: string;
    readonly container?: string;
    readonly subresource: string;
    readonly transport: 'websocket' | 'spdy';
    readonly tty: boolean;
    readonly input: boolean;
  };
}

/** One event: output, input or a resize. */
export type CastEvent = readonly [number, 'o' | 'i' | 'r', string];

/** A recording read back. */
export interface Cast {
  readonly header: CastHeader;
  readonly events: readonly CastEvent[];
}

/** An event line (without the newline); times in seconds with microseconds. */
export function castLine(seconds: number, code: CastEvent[1], data: string): string {
  return JSON.stringify([Math.round(seconds * 1e6) / 1e6, code, data]);
}

/** Reads a recording; throws with the line number on anything that is not asciicast v2. */
export function parseCast(text: string): Cast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const header = parseLine(lines[0] ?? '', 1) as CastHeader;
  if (!header || typeof header !== 'object' || header.version !== 2) throw new Error('line 1: not an asciicast v2 header');
  const events = lines.slice(1).map((l, i) => {
    const e = parseLine(l, i + 2);
    if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'number' || !['o', 'i', 'r'].includes(e[1]) || typeof e[2] !== 'string') throw new Error(`line ${i + 2}: not an asciicast v2 event`);
    return e as unknown as CastEvent;
  });
  return { header, events };
}

function parseLine(line: string, n: number): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`line ${n}: not JSON`);
  }
}

/** The output of a recording, as the terminal received it. */
export function castOutput(c: Cast): string {
  return c.events.filter((e) => e[1] === 'o').map((e) => e[2]).join('');
}
