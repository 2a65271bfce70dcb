import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Grant, RuleSet } from '../core/rule-set.ts';

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

/**
 * Break-glass activations, in memory and optionally in a directory shared by
 * every replica (one JSON file per activation, written by atomic rename and
 * re-read at most every 500 ms), so an activation made through one replica
 * holds on all of them. The files are not secrets but must be writable only
 * by the proxy: whoever can write there can activate break-glass grants.
 */
export class ActivationStore {
  #memory: Activation[] = [];
  #shared: Activation[] = [];
  #readAt = 0;

  constructor(
    private readonly stateDir?: string,
    private readonly clock: () => number = Date.now,
  ) {
    if (stateDir !== undefined) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  }

  /** Records an activation. */
  add(a: Activation): void {
    this.#memory.push(a);
    if (this.stateDir !== undefined) {
      const name = `${createHash('sha256').update(`${a.cluster}\0${a.user}\0${a.grant}\0${a.activatedAt}`).digest('hex').slice(0, 32)}.json`;
      const tmp = join(this.stateDir, `.${name}.tmp`);
      writeFileSync(tmp, JSON.stringify(a), { mode: 0o600 });
      renameSync(tmp, join(this.stateDir, name));
      this.#readAt = 0;
    }
  }

  /** The unexpired activations of a user on a cluster, by grant id → latest expiry. */
  active(cluster: string, user: string): ReadonlyMap<string, number> {
    const now = this.clock();
    this.#memory = this.#memory.filter((a) => a.expiresAt > now);
    const out = new Map<string, number>();
    for (const a of [...this.#memory, ...this.#loadShared(now)]) {
      if (a.cluster === cluster && a.user === user && a.expiresAt > now) out.set(a.grant, Math.max(out.get(a.grant) ?? 0, a.expiresAt));
    }
    return out;
  }

  #loadShared(now: number): Activation[] {
    if (this.stateDir === undefined) return [];
    if (now - this.#readAt < 500) return this.#shared;
    this.#readAt = now;
    const out: Activation[] = [];
    for (const name of readdirSync(this.stateDir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const file = join(this.stateDir, name);
      try {
        const a = JSON.parse(readFileSync(file, 'utf8')) as Activation;
        const valid = typeof a.cluster === 'string' && typeof a.user === 'string' && typeof a.grant === 'string' && typeof a.expiresAt === 'number';
        if (valid && a.expiresAt > now) out.push(a);
        // Expired a minute ago: no replica's clock can still honour it; tidy up (any replica may).
        else if (valid && a.expiresAt < now - 60_000) rmSync(file, { force: true });
      } catch {
        // a half-written or foreign file grants nothing
      }
    }
    this.#shared = out;
    return out;
  }
}
