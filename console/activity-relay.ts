import { randomBytes } from 'node:crypto';
import { storeClient } from '../runtime-proxy/front-door.ts';
import type { ActivityItem } from './activity.ts';

/** The store channel the replicas' live activity goes through. */
const CHANNEL = 'portcullis:console:activity';

/**
 * The live feed across replicas: each replica publishes the records it writes to the shared
 * store's pub/sub, and hears the others'; the console's subscribers then filter as on one
 * replica. Best effort by design: the audit log (each replica's, hash-chained) is the record; the
 * feed is a view of it, and an item missed while the store is away is still in the log.
 */
export class ActivityRelay {
  readonly #id = randomBytes(8).toString('hex');
  readonly #pub;
  readonly #sub;
  #started = false;

  constructor(
    url: string,
    private readonly heard: (item: ActivityItem) => void,
    onError: (err: Error) => void,
  ) {
    this.#pub = storeClient(url, onError);
    this.#sub = this.#pub.duplicate();
    this.#sub.on('error', onError);
  }

  async start(): Promise<void> {
    await this.#pub.connect();
    await this.#sub.connect();
    await this.#sub.subscribe(CHANNEL, (raw: string) => {
      let m: { from?: unknown; item?: unknown };
      try {
        m = JSON.parse(raw) as typeof m;
      } catch {
        return;
      }
      if (m.from !== this.#id && m.item && typeof m.item === 'object') this.heard(m.item as ActivityItem);
    });
    this.#started = true;
  }

  /** Tells the other replicas (dropped while the store is away: the log keeps it). */
  publish(item: ActivityItem): void {
    if (!this.#started || !this.#pub.isReady) return;
    this.#pub.publish(CHANNEL, JSON.stringify({ from: this.#id, item })).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.#started = false;
    await Promise.allSettled([this.#sub.close(), this.#pub.close()]);
  }
}
