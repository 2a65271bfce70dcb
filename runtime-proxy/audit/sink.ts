import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { Chain, headAfter, lineHash } from './chain.ts';
import type { AuditEvent } from './event.ts';

/** Where audit lines go. */
export interface AuditSinkOptions {
  readonly file?: { readonly path: string; readonly maxBytes: number; readonly maxFiles: number };
  readonly stdout: boolean;
  readonly flushIntervalMs: number;
  /** blocking (default): `committed()` waits for the next write, which takes every record queued until then (group commit). */
  readonly mode?: 'blocking' | 'batch';
  /** Lines kept while the sink fails; beyond this, records are counted as lost. */
  readonly maxBufferedLines?: number;
  /** A signed checkpoint after this many records (and at close). @default 1000 */
  readonly checkpointEvery?: number;
  /** The proxy's Ed25519 key for checkpoints (PEM); without one, a key of this process's own. */
  readonly signingKeyPem?: string;
  /** Gets every line (without its newline) once it is written: the webhook backend follows the file. */
  readonly ship?: (line: string) => void;
  /** Where stdout lines go (tests pass their own). */
  readonly stdoutWrite?: (chunk: string) => void;
}

/**
 * A buffered JSON-lines audit sink: one line per Event, flushed every
 * `flushIntervalMs` and on close, with size-based rotation (path, path.1 …).
 * Writes are synchronous at flush time so a failure is known at once: the
 * sink turns unhealthy, keeps the lines and retries on the next flush. The
 * proxy refuses new requests while it is unhealthy (audit.onFailure: deny).
 */
export class AuditSink {
  #buffer: string[] = [];
  #fd: number | undefined;
  #size = 0;
  #healthy = true;
  #lost = 0;
  #written = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Where the file must be cut back to before the next write (a short write whose cut failed). */
  #cutTo: number | undefined;
  #closed = false;
  #commit: Promise<void> | undefined;
  readonly #max: number;
  /** Who hears each record as it is queued (the console's live activity). */
  readonly #listeners = new Set<(event: AuditEvent) => void>();

  readonly #chain: Chain;
  #sinceCheckpoint = 0;
  /** The latest checkpoint line queued, written beside the log once it is in the file. */
  #head: { seq: number; hash: string } | undefined;

  constructor(private readonly opts: AuditSinkOptions) {
    this.#max = opts.maxBufferedLines ?? 100_000;
    if (opts.file) this.#open();
    // One chain per replica, across rotation and restarts: it continues from the log's last line.
    this.#chain = new Chain(headAfter(opts.file && lastLine(opts.file.path)), opts.signingKeyPem);
    if (opts.file) publishKey(`${opts.file.path}.pub.pem`, this.#chain.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    this.#timer = setInterval(() => this.flush(), opts.flushIntervalMs);
    this.#timer.unref();
  }

  /** Whether the last write succeeded. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Records dropped because the buffer overflowed while the sink failed. */
  get lost(): number {
    return this.#lost;
  }

  /** Records written so far. */
  get written(): number {
    return this.#written;
  }

  /**
   * Resolves once every record queued so far is written (blocking mode), or at once (batch mode).
   * The records of the requests that end in one turn of the event loop go out in one write, on
   * the next. A failing write resolves too: the records stay queued for the retry, and the proxy
   * refuses new requests while the sink is unhealthy (audit.onFailure: deny).
   */
  committed(): Promise<void> {
    // Never at once in blocking mode, even with nothing queued: the caller may queue its record
    // right after asking (a refusal sends its Status, then records it).
    if (this.opts.mode === 'batch') return Promise.resolve();
    if (!this.#commit) {
      this.#commit = new Promise<void>((resolve) =>
        setImmediate(() => {
          this.#commit = undefined;
          this.flush();
          resolve();
        }),
      );
    }
    return this.#commit;
  }

  /** Queues one Event. */
  write(event: AuditEvent): void {
    if (this.#buffer.length >= this.#max) {
      this.#lost++;
      return;
    }
    this.#buffer.push(`${this.#chain.link(event)}\n`);
    for (const fn of this.#listeners) {
      try {
        fn(event);
      } catch {
        // A listener's failure never costs a record.
      }
    }
    if (++this.#sinceCheckpoint >= (this.opts.checkpointEvery ?? 1000)) this.#checkpoint();
    // A record that comes after close (an exchange cut at the end of shutdown) is written at once.
    if (this.#closed) this.flush();
  }

  /** Calls `fn` with every record queued from now on (it must not block); returns the unsubscribe. */
  subscribe(fn: (event: AuditEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  /** Writes everything queued; returns whether it all went out. */
  flush(): boolean {
    if (this.#buffer.length === 0) return this.#healthy;
    const lines = this.#buffer;
    this.#buffer = [];
    const chunk = lines.join('');
    try {
      if (this.opts.file) this.#writeFile(chunk);
      if (this.opts.stdout) (this.opts.stdoutWrite ?? ((c: string) => process.stdout.write(c)))(chunk);
      this.#written += lines.length;
      this.#healthy = true;
      if (this.opts.ship) for (const l of lines) this.opts.ship(l.slice(0, -1));
      if (this.#head && this.opts.file) {
        // Beside the log, the latest checkpoint: a log cut short of it is a truncation (audit verify).
        const headFile = `${this.opts.file.path}.head`;
        writeFileSync(`${headFile}.tmp`, `${JSON.stringify(this.#head)}\n`, { mode: 0o600 });
        renameSync(`${headFile}.tmp`, headFile);
        this.#head = undefined;
      }
      return true;
    } catch {
      this.#healthy = false;
      this.#buffer = lines.concat(this.#buffer).slice(0, this.#max);
      // Reopen on the next attempt, unless a cut is pending, which needs this very file.
      if (this.#cutTo === undefined && this.#fd !== undefined) {
        try {
          closeSync(this.#fd);
        } catch {
          // already unusable
        }
        this.#fd = undefined;
      }
      return false;
    }
  }

  /** Flushes and closes; call after the last request finished. */
  close(): boolean {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#sinceCheckpoint > 0) this.#checkpoint();
    const ok = this.flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    return ok;
  }

  #checkpoint(): void {
    const line = this.#chain.checkpoint(Date.now());
    this.#buffer.push(`${line}\n`);
    this.#sinceCheckpoint = 0;
    this.#head = { seq: this.#chain.nextSeq - 1, hash: lineHash(line) };
  }

  #open(): void {
    const f = this.opts.file;
    if (!f) return;
    this.#fd = openSync(f.path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  /**
   * Writes a chunk of whole lines, or none of it: a short write (ENOSPC after part of the chunk)
   * is cut off the file again, so the retry, which writes the whole chunk, leaves neither a
   * partial line nor a duplicate. A cut that fails too is retried before the next write.
   */
  #writeFile(chunk: string): void {
    const f = this.opts.file;
    if (!f) return;
    if (this.#fd === undefined) this.#open();
    if (this.#cutTo !== undefined) {
      ftruncateSync(this.#fd as number, this.#cutTo);
      this.#size = this.#cutTo;
      this.#cutTo = undefined;
    }
    const bytes = Buffer.from(chunk, 'utf8');
    if (this.#size > 0 && this.#size + bytes.length > f.maxBytes) this.#rotate();
    const fd = this.#fd as number;
    let off = 0;
    try {
      while (off < bytes.length) off += writeSync(fd, bytes, off);
    } catch (err) {
      if (off > 0) {
        try {
          ftruncateSync(fd, this.#size);
        } catch {
          this.#cutTo = this.#size;
        }
      }
      throw err;
    }
    this.#size += bytes.length;
  }

  #rotate(): void {
    const f = this.opts.file;
    if (!f || this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
    const oldest = `${f.path}.${f.maxFiles}`;
    if (existsSync(oldest)) rmSync(oldest);
    for (let i = f.maxFiles - 1; i >= 1; i--) if (existsSync(`${f.path}.${i}`)) renameSync(`${f.path}.${i}`, `${f.path}.${i + 1}`);
    renameSync(f.path, `${f.path}.1`);
    this.#open();
  }
}

/** The last whole line of the log (of its newest rotated file if it is empty), to continue its chain. */
function lastLine(path: string): string | undefined {
  for (const p of [path, `${path}.1`]) {
    if (!existsSync(p)) continue;
    const fd = openSync(p, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size === 0) continue;
      const n = Math.min(size, 1 << 20);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, size - n);
      const lines = buf.toString('utf8').split('\n').filter((l) => l.length > 0);
      return lines.at(-1);
    } finally {
      closeSync(fd);
    }
  }
  return undefined;
}

/** Adds the checkpoint key to the public keys published beside the log (each once). */
function publishKey(file: string, pem: string): void {
  const known = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (!known.includes(pem)) writeFileSync(file, known + pem, { mode: 0o644 });
}
