import { storeAction, storeClient } from '../front-door.ts';

/** A proxy session: who logged in (as the identity provider asserted at login), and until when. */
export interface Session {
  readonly id: string;
  readonly user: string;
  readonly groups: readonly string[];
  /** The identity provider that authenticated the login (`iss`). */
  readonly issuer: string;
  readonly createdAt: number;
  /** The absolute end, whatever the use. */
  readonly expiresAt: number;
  /** Unused for this long, the session ends. */
  readonly idleTimeoutMs: number;
}

export { SessionStoreError } from '../front-door.ts';

/** Where replicas share sessions. Every replica keeps a copy; nothing is written per request. */
export interface SharedSessions {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Records a new session on every replica; throws SessionStoreError when the store cannot take it. */
  create(s: Session): Promise<void>;
  /** Ends a session on every replica (logout, lock); throws SessionStoreError when the store cannot take it. */
  revoke(id: string): Promise<void>;
  /** Every live session this replica knows of. */
  all(): Session[];
  /** The session, from this replica's copy, or from the store when this replica has not seen it yet. */
  get(id: string): Session | undefined;
  fetch(id: string): Promise<Session | undefined>;
  /** When the session was last used on any replica (as far as this one has heard). */
  lastSeen(id: string): number | undefined;
  /** Notes a use here; replicas tell each other in batches (`touchIntervalMs`), never per request. */
  touch(id: string, at: number): void;
  /** Whether the store answered within the grace: past it, established sessions stop working too. */
  healthy(now: number): boolean;
  /** Called when a session ends on any replica. */
  onRevoked(fn: (id: string) => void): void;
}

const KEY = 'portcullis:session:';
const SEEN = 'portcullis:session-seen';
const CHANNEL = 'portcullis:sessions';

type Message = { readonly t: 'new'; readonly id: string } | { readonly t: 'revoked'; readonly id: string } | { readonly t: 'touch'; readonly seen: Readonly<Record<string, number>> };

/**
 * Sessions in Redis (or Valkey): one key per session that expires with it, a hash of last uses,
 * and a pub/sub channel over which replicas hear of new sessions, revocations and uses at once.
 * Each replica loads every live session at start and keeps its copy current from the channel, so
 * a request never waits on the store; a credential this replica has not heard of yet is fetched.
 * The store is pinged every second: a replica that has not heard from it for `graceMs` refuses
 * established sessions too (fail closed), and refuses new logins and revocations at once.
 */
export class RedisSessions implements SharedSessions {
  readonly #cmd;
  readonly #sub;
  readonly #sessions = new Map<string, Session>();
  readonly #seen = new Map<string, number>();
  #dirty = new Map<string, number>();
  #lastOk = 0;
  #timers: NodeJS.Timeout[] = [];
  readonly #revoked: ((id: string) => void)[] = [];

  constructor(
    url: string,
    private readonly o: { readonly touchIntervalMs: number; readonly graceMs: number; readonly clock: () => number; readonly onError: (err: Error) => void },
  ) {
    this.#cmd = storeClient(url, o.onError);
    this.#sub = this.#cmd.duplicate();
    this.#sub.on('error', (err: Error) => o.onError(err));
    // While the subscriber is away, revocations go unheard: it counts against the grace, and on
    // its return the whole copy is read again, so a session ended meanwhile ends here too.
    this.#sub.on('end', () => (this.#subDownSince ??= this.o.clock()));
    this.#sub.on('error', () => (this.#subDownSince ??= this.o.clock()));
    this.#sub.on('ready', () => {
      if (this.#subDownSince === undefined) return;
      void this.#reload().then(
        () => (this.#subDownSince = undefined),
        (err: unknown) => o.onError(err as Error),
      );
    });
  }

  #subDownSince: number | undefined;

  /** Reads every live session again; forgets (and reports as ended) those gone from the store. */
  async #reload(): Promise<void> {
    const live = new Set<string>();
    for await (const keys of this.#cmd.scanIterator({ MATCH: `${KEY}*`, COUNT: 500 })) {
      for (const k of keys) {
        const id = k.slice(KEY.length);
        if (await this.fetch(id)) live.add(id);
      }
    }
    for (const id of [...this.#sessions.keys()]) if (!live.has(id)) this.#forget(id);
  }

  async start(): Promise<void> {
    await this.#cmd.connect();
    await this.#sub.connect();
    await this.#sub.subscribe(CHANNEL, (raw) => void this.#message(raw));
    await this.#reload();
    for (const [id, at] of Object.entries(await this.#cmd.hGetAll(SEEN))) this.#heard(id, Number(at));
    this.#lastOk = this.o.clock();
    const ping = setInterval(() => void this.#ping(), 1000);
    const flush = setInterval(() => void this.#flush(), this.o.touchIntervalMs);
    ping.unref();
    flush.unref();
    this.#timers = [ping, flush];
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    await this.#flush();
    await Promise.allSettled([this.#sub.close(), this.#cmd.close()]);
  }

  async create(s: Session): Promise<void> {
    await this.#write(async () => {
      await this.#cmd.set(`${KEY}${s.id}`, JSON.stringify(s), { expiration: { type: 'PXAT', value: s.expiresAt } });
      await this.#cmd.publish(CHANNEL, JSON.stringify({ t: 'new', id: s.id } satisfies Message));
    });
    this.#sessions.set(s.id, s);
  }

  async revoke(id: string): Promise<void> {
    this.#forget(id);
    await this.#write(async () => {
      await this.#cmd.del(`${KEY}${id}`);
      await this.#cmd.hDel(SEEN, id);
      await this.#cmd.publish(CHANNEL, JSON.stringify({ t: 'revoked', id } satisfies Message));
    });
  }

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  all(): Session[] {
    return [...this.#sessions.values()];
  }

  async fetch(id: string): Promise<Session | undefined> {
    const raw = await this.#cmd.get(`${KEY}${id}`);
    if (raw === null) return undefined;
    const s = JSON.parse(raw) as Session;
    if (s.id !== id) return undefined;
    this.#sessions.set(id, s);
    return s;
  }

  lastSeen(id: string): number | undefined {
    return this.#seen.get(id);
  }

  touch(id: string, at: number): void {
    this.#heard(id, at);
    this.#dirty.set(id, at);
  }

  healthy(now: number): boolean {
    // By the last answer to a ping (every second), not the connection's state: a dropped connection gets the grace too.
    return now - this.#lastOk <= this.o.graceMs && (this.#subDownSince === undefined || now - this.#subDownSince <= this.o.graceMs);
  }

  onRevoked(fn: (id: string) => void): void {
    this.#revoked.push(fn);
  }

  async #write(fn: () => Promise<void>): Promise<void> {
    await storeAction(this.#cmd, 'session', 'the session store is unreachable', fn);
  }

  #heard(id: string, at: number): void {
    if ((this.#seen.get(id) ?? 0) < at) this.#seen.set(id, at);
  }

  #forget(id: string): void {
    const had = this.#sessions.delete(id);
    this.#seen.delete(id);
    this.#dirty.delete(id);
    if (had) for (const fn of this.#revoked) fn(id);
  }

  async #message(raw: string): Promise<void> {
    let m: Message;
    try {
      m = JSON.parse(raw) as Message;
    } catch {
      return;
    }
    if (m.t === 'revoked') this.#forget(m.id);
    else if (m.t === 'new') await this.fetch(m.id).catch(() => undefined);
    else if (m.t === 'touch') for (const [id, at] of Object.entries(m.seen)) if (this.#sessions.has(id)) this.#heard(id, at);
  }

  async #ping(): Promise<void> {
    // Sessions past their lifetime leave this replica's copy (the store's keys expire by themselves).
    const now = this.o.clock();
    for (const [id, s] of this.#sessions) if (s.expiresAt <= now) this.#forget(id);
    try {
      if (!this.#cmd.isReady) return;
      await this.#cmd.ping();
      this.#lastOk = this.o.clock();
    } catch {
      // healthy() says so once the grace has passed.
    }
  }

  /** Tells the other replicas of this one's uses since the last flush (one message, one hash write). */
  async #flush(): Promise<void> {
    if (this.#dirty.size === 0 || !this.#cmd.isReady) return;
    const seen = Object.fromEntries(this.#dirty);
    this.#dirty = new Map();
    try {
      await this.#cmd.hSet(SEEN, Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, String(v)])));
      await this.#cmd.publish(CHANNEL, JSON.stringify({ t: 'touch', seen } satisfies Message));
    } catch {
      for (const [id, at] of Object.entries(seen)) if (!this.#dirty.has(id)) this.#dirty.set(id, at);
    }
  }
}
