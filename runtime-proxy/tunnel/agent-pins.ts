import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { storeClient } from '../front-door.ts';

/**
 * Which agent key serves which cluster, shared by every proxy replica: set
 * once, at registration, and never replaced (a second key claiming a
 * registered cluster is refused; re-onboarding means removing the pin by
 * hand). Used registration credentials are kept until they expire, so each
 * works once fleet-wide.
 */
export interface AgentPins {
  /** The pinned key thumbprint of every registered cluster. */
  all(): Promise<ReadonlyMap<string, string>>;
  /** The pinned key thumbprint of `cluster`, if registered. */
  get(cluster: string): Promise<string | undefined>;
  /**
   * Uses registration credential `id` (until `expiresAt`) to pin `thumbprint` for `cluster`.
   * `used`: the credential was used before; `other-key`: the cluster is pinned to another key.
   */
  register(cluster: string, thumbprint: string, id: string, expiresAt: number): Promise<'pinned' | 'used' | 'other-key'>;
  close(): Promise<void>;
}

/** Pins in a directory every replica mounts: one file per cluster and per used credential, created exclusively. */
export class DirectoryPins implements AgentPins {
  constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'clusters'), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'used'), { recursive: true, mode: 0o700 });
  }

  async all(): Promise<ReadonlyMap<string, string>> {
    const out = new Map<string, string>();
    for (const f of readdirSync(join(this.dir, 'clusters')).sort()) {
      if (f.endsWith('.json')) out.set(f.slice(0, -5), (JSON.parse(readFileSync(join(this.dir, 'clusters', f), 'utf8')) as { thumbprint: string }).thumbprint);
    }
    return out;
  }

  async get(cluster: string): Promise<string | undefined> {
    try {
      return (JSON.parse(readFileSync(join(this.dir, 'clusters', `${cluster}.json`), 'utf8')) as { thumbprint: string }).thumbprint;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async register(cluster: string, thumbprint: string, id: string, expiresAt: number): Promise<'pinned' | 'used' | 'other-key'> {
    if (!exclusive(join(this.dir, 'used', safeName(id)), JSON.stringify({ cluster, expiresAt }))) return 'used';
    if (exclusive(join(this.dir, 'clusters', `${cluster}.json`), JSON.stringify({ thumbprint, registeredAt: new Date().toISOString() }))) return 'pinned';
    return (await this.get(cluster)) === thumbprint ? 'pinned' : 'other-key';
  }

  async close(): Promise<void> {}
}

/** Pins in the Redis or Valkey store the sessions use: `SET NX` makes each step happen once. */
export class RedisPins implements AgentPins {
  readonly #cmd: ReturnType<typeof storeClient>;
  #connected: Promise<unknown> | undefined;

  constructor(url: string, onError: (err: Error) => void) {
    this.#cmd = storeClient(url, onError);
  }

  async #client() {
    this.#connected ??= this.#cmd.connect();
    await this.#connected;
    return this.#cmd;
  }

  async all(): Promise<ReadonlyMap<string, string>> {
    const c = await this.#client();
    return new Map(Object.entries(await c.hGetAll(PINS_KEY)).sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  async get(cluster: string): Promise<string | undefined> {
    const c = await this.#client();
    return (await c.hGet(PINS_KEY, cluster)) ?? undefined;
  }

  async register(cluster: string, thumbprint: string, id: string, expiresAt: number): Promise<'pinned' | 'used' | 'other-key'> {
    const c = await this.#client();
    const ttl = Math.max(1, Math.ceil((expiresAt - Date.now()) / 1000));
    if ((await c.set(`portcullis:agent-registration:${id}`, cluster, { NX: true, EX: ttl })) === null) return 'used';
    if ((await c.hSetNX(PINS_KEY, cluster, thumbprint)) === 1) return 'pinned';
    return (await c.hGet(PINS_KEY, cluster)) === thumbprint ? 'pinned' : 'other-key';
  }

  async close(): Promise<void> {
    if (this.#connected) await this.#cmd.close().catch(() => undefined);
  }
}

const PINS_KEY = 'portcullis:agent-pins';

/** Creates `path` only if it does not exist; false if it did. */
function exclusive(path: string, content: string): boolean {
  try {
    writeFileSync(path, content, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** A credential id as a file name: what verifyRegistration lets through is a UUID, but never trust that here. */
function safeName(id: string): string {
  return Buffer.from(id).toString('base64url');
}
