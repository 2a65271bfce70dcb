import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Grant, RuleSet } from '../core/rule-set.ts';
import { ConfigMapDocument, type ConfigMapLocation } from './configmap-document.ts';

/** One break-glass invocation: who opened which grant on which cluster, why, until when. */
export interface Activation {
  readonly cluster: string;
  readonly user: string;
  readonly grant: string;
  readonly reason: string;
  readonly activatedAt: number;
  readonly expiresAt: number;
}

/** The body of `POST /clusters/NAME/portcullis/break-glass`. */
export interface BreakGlassRequest {
  readonly grant: string;
  readonly reason: string;
  readonly durationSeconds?: number;
}

/** The outcome of checking a break-glass request; pure. */
export type BreakGlassCheck =
  | { readonly ok: true; readonly grant: Grant; readonly durationSeconds: number }
  | { readonly ok: false; readonly status: 400 | 403; readonly message: string };

const MAX_REASON = 2000;

/**
 * Checks a break-glass request against the active rule set: the grant exists
 * and is break-glass, the requester is one of its subjects (user, or a group it
 * carries after the impersonable filter), a non-empty reason, and a duration
 * no longer than the policy allows (default: the maximum).
 */
export function checkBreakGlass(body: unknown, ruleSet: RuleSet, user: string, groups: readonly string[]): BreakGlassCheck {
  const b = body as Partial<BreakGlassRequest> | null;
  if (!b || typeof b !== 'object' || typeof b.grant !== 'string') return { ok: false, status: 400, message: 'body must be JSON {grant, reason, durationSeconds}' };
  if (typeof b.reason !== 'string' || b.reason.trim() === '' || b.reason.length > MAX_REASON) {
    return { ok: false, status: 400, message: `a non-empty reason (at most ${MAX_REASON} characters) is required` };
  }
  const grant = ruleSet.grants.find((g) => g.id === b.grant);
  const bg = grant?.conditions.breakGlass;
  // Same answer for "no such grant" and "not yours": do not reveal the policy.
  if (!grant || !bg || !grant.subjects.some((s) => (s.kind === 'User' ? s.name === user : groups.includes(s.name)))) {
    return { ok: false, status: 403, message: `no break-glass grant ${b.grant} for you on this cluster` };
  }
  const d = b.durationSeconds ?? bg.maxDurationSeconds;
  if (!Number.isSafeInteger(d) || d < 1 || d > bg.maxDurationSeconds) {
    return { ok: false, status: 400, message: `durationSeconds must be an integer between 1 and ${bg.maxDurationSeconds}` };
  }
  return { ok: true, grant, durationSeconds: d };
}

/** Where activations are shared between replicas. */
export interface SharedActivations {
  /** Every activation currently recorded (expired ones may be included). */
  load(now: number): Promise<Activation[]>;
  /** Records one; rejects when it could not be recorded. */
  save(a: Activation, now: number): Promise<void>;
  /** Ends a user's activations of a grant before their time; how many there were. @default not supported: activations end only at their time */
  remove?(a: Pick<Activation, 'cluster' | 'user' | 'grant'>): Promise<number>;
}

const REFRESH_MS = 500;

/**
 * Break-glass activations: in memory, and in a shared backend when configured
 * (a directory every replica mounts, or a ConfigMap) so an activation made
 * through one replica holds on all of them within about half a second. Lookups
 * are synchronous (request path) and read the last refreshed copy.
 */
export class ActivationStore {
  #memory: Activation[] = [];
  #shared: Activation[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly shared?: SharedActivations,
    private readonly clock: () => number = Date.now,
    private readonly onError: (err: Error) => void = () => undefined,
    /** Activations that vanished from the shared backend before their time (ended early elsewhere), by cluster. */
    private readonly onEnded: (clusters: ReadonlySet<string>) => void = () => undefined,
  ) {}

  /** Starts refreshing from the shared backend. */
  async start(): Promise<void> {
    if (!this.shared) return;
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.#timer.unref();
  }

  /** Stops refreshing. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Re-reads the shared backend now; keeps the last copy when it fails. */
  async refresh(): Promise<void> {
    if (!this.shared) return;
    try {
      const now = this.clock();
      const next = (await this.shared.load(now)).filter((a) => a.expiresAt > now);
      const key = (a: Activation) => `${a.cluster}\0${a.user}\0${a.grant}\0${a.activatedAt}`;
      const kept = new Set(next.map(key));
      const gone = new Set(this.#shared.filter((a) => a.expiresAt > now && !kept.has(key(a))).map((a) => a.cluster));
      this.#shared = next;
      if (gone.size > 0) this.onEnded(gone);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  /** Records an activation (shared first: if that fails, nothing is activated). */
  async add(a: Activation): Promise<void> {
    // With a shared backend it is the one record (an early end elsewhere removes it); else memory.
    if (this.shared) {
      await this.shared.save(a, this.clock());
      this.#shared = [...this.#shared, a];
    } else this.#memory.push(a);
  }

  /**
   * Ends a user's activations of a grant now (an early end of break-glass or of an approved request):
   * in the shared backend first, so no replica brings it back at its next refresh. False if there was none.
   */
  async end(a: Pick<Activation, 'cluster' | 'user' | 'grant'>): Promise<boolean> {
    const same = (x: Activation) => x.cluster === a.cluster && x.user === a.user && x.grant === a.grant;
    const had = [...this.#memory, ...this.#shared].some((x) => same(x) && x.expiresAt > this.clock());
    if (this.shared?.remove) await this.shared.remove(a);
    else if (this.shared) throw new Error('this activation backend cannot end an activation early');
    this.#memory = this.#memory.filter((x) => !same(x));
    this.#shared = this.#shared.filter((x) => !same(x));
    return had;
  }

  /** Every unexpired activation (all users, all clusters). */
  all(): Activation[] {
    const now = this.clock();
    const seen = new Set<string>();
    return [...this.#memory, ...this.#shared].filter((a) => {
      const k = `${a.cluster}\0${a.user}\0${a.grant}\0${a.activatedAt}`;
      if (a.expiresAt <= now || seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /** The unexpired activations of a user on a cluster, by grant id → latest expiry. */
  active(cluster: string, user: string): ReadonlyMap<string, number> {
    if (this.#memory.length === 0 && this.#shared.length === 0) return NONE; // the common case, on every request
    const now = this.clock();
    this.#memory = this.#memory.filter((a) => a.expiresAt > now);
    const out = new Map<string, number>();
    for (const list of [this.#memory, this.#shared]) {
      for (const a of list) {
        if (a.cluster === cluster && a.user === user && a.expiresAt > now) out.set(a.grant, Math.max(out.get(a.grant) ?? 0, a.expiresAt));
      }
    }
    return out;
  }
}

const NONE: ReadonlyMap<string, number> = new Map();

function activationKey(a: Activation): string {
  return `${createHash('sha256').update(`${a.cluster}\0${a.user}\0${a.grant}\0${a.activatedAt}`).digest('hex').slice(0, 32)}.json`;
}

function isActivation(v: unknown): v is Activation {
  const a = v as Partial<Activation> | null;
  return !!a && typeof a.cluster === 'string' && typeof a.user === 'string' && typeof a.grant === 'string' && typeof a.reason === 'string' && typeof a.activatedAt === 'number' && typeof a.expiresAt === 'number';
}

/**
 * A directory every replica mounts (one JSON file per activation, written by
 * atomic rename). Whoever can write there can activate break-glass grants:
 * mount it only into the proxy.
 */
export class DirectoryActivations implements SharedActivations {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async save(a: Activation): Promise<void> {
    const name = activationKey(a);
    const tmp = join(this.dir, `.${name}.tmp`);
    writeFileSync(tmp, JSON.stringify(a), { mode: 0o600 });
    renameSync(tmp, join(this.dir, name));
  }

  async load(now: number): Promise<Activation[]> {
    const out: Activation[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const file = join(this.dir, name);
      try {
        const a: unknown = JSON.parse(readFileSync(file, 'utf8'));
        if (!isActivation(a)) continue; // a foreign file grants nothing
        if (a.expiresAt > now) out.push(a);
        // Expired a minute ago: no replica's clock can still honour it; tidy up (any replica may).
        else if (a.expiresAt < now - 60_000) rmSync(file, { force: true });
      } catch {
        // a half-written file grants nothing
      }
    }
    return out;
  }
}

/**
 * A ConfigMap (one data key per activation), for replicas without a shared
 * volume. Concurrent activations through two replicas never overwrite each
 * other (ConfigMapDocument's optimistic concurrency). Expired keys are dropped on every write.
 */
export class ConfigMapActivations implements SharedActivations {
  readonly #doc: ConfigMapDocument;

  constructor(loc: ConfigMapLocation) {
    this.#doc = new ConfigMapDocument(loc);
  }

  async load(): Promise<Activation[]> {
    return Object.values(await this.#doc.read()).flatMap((v) => {
      const a = parseActivation(v);
      return a ? [a] : [];
    });
  }

  async save(a: Activation, now: number): Promise<void> {
    await this.#doc.update((current) => {
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries(current)) if ((parseActivation(v)?.expiresAt ?? 0) > now) data[k] = v;
      data[activationKey(a)] = JSON.stringify(a);
      return data;
    });
  }
}

function parseActivation(v: string): Activation | undefined {
  try {
    const a: unknown = JSON.parse(v);
    return isActivation(a) ? a : undefined;
  } catch {
    return undefined; // what is not an activation grants nothing
  }
}
