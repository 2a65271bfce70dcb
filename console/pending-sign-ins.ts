import { answered, storeClient } from '../runtime-proxy/front-door.ts';

/**
 * Where sign-ins in progress wait (their PKCE verifier, state and nonce) between leaving for the
 * identity provider and coming back: the callback may reach another replica than the one the
 * sign-in started on. Each entry is taken once (a replayed callback finds nothing).
 */
export interface PendingSignIns {
  put(key: string, value: string, ttlMs: number): Promise<void>;
  /** The entry, removed in the same step; undefined when absent, expired or already taken. */
  take(key: string): Promise<string | undefined>;
  close(): Promise<void>;
}

/** At most this many sign-ins wait in one replica's memory (the oldest go first). */
const MAX_IN_MEMORY = 10_000;

/** One replica's memory: for a single replica, and the tests. */
export class MemoryPendingSignIns implements PendingSignIns {
  readonly #m = new Map<string, { value: string; until: number }>();
  constructor(private readonly clock: () => number = Date.now) {}
  async put(key: string, value: string, ttlMs: number): Promise<void> {
    const now = this.clock();
    for (const [k, e] of this.#m) if (e.until <= now || this.#m.size >= MAX_IN_MEMORY) this.#m.delete(k);
    this.#m.set(key, { value, until: now + ttlMs });
  }
  async take(key: string): Promise<string | undefined> {
    const e = this.#m.get(key);
    this.#m.delete(key);
    return e && e.until > this.clock() ? e.value : undefined;
  }
  async close(): Promise<void> {}
}

/** The replicas' shared store (`sessions.store.url`): SET with an expiry, GETDEL to take. */
export class RedisPendingSignIns implements PendingSignIns {
  readonly #c;
  #connecting: Promise<unknown> | undefined;
  constructor(url: string, onError: (err: Error) => void) {
    this.#c = storeClient(url, onError);
  }
  async #ready(): Promise<void> {
    if (!this.#c.isOpen) this.#connecting ??= this.#c.connect();
    await this.#connecting;
  }
  async put(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#ready();
    await answered(this.#c.set(`portcullis:console:sign-in:${key}`, value, { expiration: { type: 'PX', value: ttlMs } }), 'console sign-in');
  }
  async take(key: string): Promise<string | undefined> {
    await this.#ready();
    return (await answered(this.#c.getDel(`portcullis:console:sign-in:${key}`), 'console sign-in')) ?? undefined;
  }
  async close(): Promise<void> {
    if (this.#c.isOpen) await this.#c.close();
  }
}
