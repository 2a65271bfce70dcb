import { storeAction, storeClient } from '../front-door.ts';

/** What a lock cuts off: one person, everyone in a group, a whole cluster, or everything one grant allows. */
export type LockKind = 'user' | 'group' | 'cluster' | 'grant';

/** A lock: in force on every replica within a second of being set, until lifted or expired. */
export interface Lock {
  readonly id: string;
  readonly kind: LockKind;
  /** The user or group (with its prefix), the cluster, or the grant id. */
  readonly subject: string;
  readonly reason: string;
  /** Who set it, as authenticated. */
  readonly setBy: string;
  readonly setAt: number;
  /** @default until lifted */
  readonly expiresAt?: number;
}

/** What a lock is checked against: one request or live stream. */
export interface LockTarget {
  readonly cluster: string;
  readonly user: string;
  readonly groups: readonly string[];
  /** The grant that allowed it (absent before authorization). */
  readonly grantId?: string;
}

/** Whether a lock in force at `now` covers the target; pure. */
export function lockCovers(l: Lock, t: LockTarget, now: number): boolean {
  if (l.expiresAt !== undefined && now >= l.expiresAt) return false;
  switch (l.kind) {
    case 'user':
      return t.user === l.subject;
    case 'group':
      return t.groups.includes(l.subject);
    case 'cluster':
      return t.cluster === l.subject;
    case 'grant':
      return t.grantId === l.subject;
    default:
      return true; // an unknown kind locks everything: deny is the default path
  }
}

const HASH = 'portcullis:locks';
const CHANNEL = 'portcullis:locks';
type Message = { readonly t: 'set'; readonly lock: Lock } | { readonly t: 'lifted'; readonly id: string };

/**
 * Locks in Redis (or Valkey): a hash of the locks in force and a pub/sub channel, so a lock set
 * through one replica is in force on every replica as soon as the message arrives (well within a
 * second). Every replica holds all locks in memory; a request checks them without the store. On
 * every (re)connection a replica reads the whole hash again, so a lock set while it was cut off is
 * never lost. A lock that cannot be written is refused (SessionStoreError), never half set.
 */
export class RedisLocks {
  readonly #cmd;
  readonly #sub;
  #locks = new Map<string, Lock>();
  #loaded = false;
  readonly #listeners: ((l: Lock) => void)[] = [];

  constructor(url: string, onError: (err: Error) => void) {
    this.#cmd = storeClient(url, onError);
    this.#sub = this.#cmd.duplicate();
    this.#sub.on('error', onError);
    // On every (re)connection of either client: the subscriber may have missed messages meanwhile.
    this.#cmd.on('ready', () => void this.#reload().catch(onError));
    this.#sub.on('ready', () => void this.#reload().catch(onError));
  }

  async start(): Promise<void> {
    await this.#cmd.connect();
    await this.#sub.connect();
    await this.#sub.subscribe(CHANNEL, (raw) => this.#message(raw));
    await this.#reload();
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.#sub.close(), this.#cmd.close()]);
  }

  /** Called on this replica for every lock that comes into force (set here or elsewhere). */
  onSet(fn: (l: Lock) => void): void {
    this.#listeners.push(fn);
  }

  /** The locks in force at `now`. */
  list(now: number): Lock[] {
    return [...this.#locks.values()].filter((l) => l.expiresAt === undefined || now < l.expiresAt).sort((a, b) => a.setAt - b.setAt);
  }

  /** Whether the locks were read from the store at least once (until then, requests are refused: no lock may be missed). */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** The first lock in force that covers the target, if any: a map walk, no store call (expired locks are dropped as met). */
  covering(t: LockTarget, now: number): Lock | undefined {
    if (this.#locks.size === 0) return undefined;
    for (const [id, l] of this.#locks) {
      if (l.expiresAt !== undefined && now >= l.expiresAt) this.#locks.delete(id);
      else if (lockCovers(l, t, now)) return l;
    }
    return undefined;
  }

  /** A lock as the store has it now (not this replica's copy): what lifting it is decided on. */
  async fetch(id: string): Promise<Lock | undefined> {
    const raw = await storeAction(this.#cmd, 'lock', 'the lock store is unreachable', () => this.#cmd.hGet(HASH, id));
    return raw ? (JSON.parse(raw) as Lock) : undefined;
  }

  async set(l: Lock): Promise<void> {
    await this.#write(async () => {
      await this.#cmd.hSet(HASH, l.id, JSON.stringify(l));
      await this.#cmd.publish(CHANNEL, JSON.stringify({ t: 'set', lock: l } satisfies Message));
    });
    this.#apply(l);
  }

  /** Lifts a lock; false if there was none with that id. */
  async lift(id: string): Promise<boolean> {
    let removed = 0;
    await this.#write(async () => {
      removed = await this.#cmd.hDel(HASH, id);
      await this.#cmd.publish(CHANNEL, JSON.stringify({ t: 'lifted', id } satisfies Message));
    });
    this.#locks.delete(id);
    return removed > 0;
  }

  async #write(fn: () => Promise<void>): Promise<void> {
    await storeAction(this.#cmd, 'lock', 'the lock store is unreachable: the lock is not set', fn);
  }

  #apply(l: Lock): void {
    const fresh = !this.#locks.has(l.id);
    this.#locks.set(l.id, l);
    if (fresh) for (const fn of this.#listeners) fn(l);
  }

  #message(raw: string): void {
    let m: Message;
    try {
      m = JSON.parse(raw) as Message;
    } catch {
      return;
    }
    if (m.t === 'set') this.#apply(m.lock);
    else if (m.t === 'lifted') this.#locks.delete(m.id);
  }

  async #reload(): Promise<void> {
    const all = await this.#cmd.hGetAll(HASH);
    const next = new Map<string, Lock>();
    for (const [id, raw] of Object.entries(all)) next.set(id, JSON.parse(raw) as Lock);
    const before = this.#locks;
    this.#locks = next;
    this.#loaded = true;
    for (const l of next.values()) if (!before.has(l.id)) for (const fn of this.#listeners) fn(l);
  }
}
