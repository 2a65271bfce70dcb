import type { RequestAttributes } from '../core/attributes.ts';
import type { Identity } from './identity.ts';
import type { Impersonation } from './impersonation.ts';

/** Why the proxy ended a long-running request (audited as portcullis.dev/stream-end). */
export type StreamEndReason = 'token-expired' | 'window-ended' | 'break-glass-ended' | 'revoked' | 'bundle-expired' | 'shutdown' | 'recording-failed' | 'session-ended' | 'locked' | 'tunnel-lost';

/** When a stream must end on its own, and why. */
export interface StreamDeadline {
  readonly at: number;
  readonly reason: StreamEndReason;
}

/** A live long-running request (watch, exec, attach, port-forward, follow logs, proxy). */
export interface LiveStream {
  readonly id: string;
  readonly cluster: string;
  /** `issuer user` — the per-identity limit counts by this. */
  readonly identityKey: string;
  readonly identity: Identity;
  readonly attributes: RequestAttributes;
  readonly grantId: string;
  /** Under `kubectl --as`: the caller and the impersonation checks, re-run at every bundle swap. */
  readonly impersonation?: Impersonation;
  deadline: StreamDeadline;
  /** Closes the stream; called at most once. */
  readonly close: (reason: StreamEndReason) => void;
}

/** What re-authorizing a live stream under a new bundle gave. */
export type Recheck = { readonly allowed: true; readonly grantId: string; readonly deadline: StreamDeadline } | { readonly allowed: false };

const MAX_TIMER = 2 ** 31 - 1;

/**
 * Every live long-running request, so the proxy can end them when access
 * ends (SECURITY rule 12): each has a deadline timer (token expiry, window end,
 * break-glass end), and every bundle swap re-authorizes them all.
 */
export class StreamRegistry {
  readonly #streams = new Map<string, LiveStream>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #perIdentity = new Map<string, number>();
  readonly #perCluster = new Map<string, number>();

  constructor(
    private readonly maxPerIdentity: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Registers a stream, or returns false when its identity is at the limit (→ 429). */
  register(s: LiveStream): boolean {
    const n = this.#perIdentity.get(s.identityKey) ?? 0;
    if (n >= this.maxPerIdentity) return false;
    this.#perIdentity.set(s.identityKey, n + 1);
    this.#perCluster.set(s.cluster, (this.#perCluster.get(s.cluster) ?? 0) + 1);
    this.#streams.set(s.id, s);
    this.#arm(s);
    return true;
  }

  /** Forgets a stream that ended (by itself or closed); idempotent. */
  unregister(id: string): void {
    const s = this.#streams.get(id);
    if (!s) return;
    this.#streams.delete(id);
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
    this.#perCluster.set(s.cluster, (this.#perCluster.get(s.cluster) ?? 1) - 1);
    const n = (this.#perIdentity.get(s.identityKey) ?? 1) - 1;
    if (n <= 0) this.#perIdentity.delete(s.identityKey);
    else this.#perIdentity.set(s.identityKey, n);
  }

  /** Live streams of a cluster (all clusters without an argument). */
  list(cluster?: string): LiveStream[] {
    return [...this.#streams.values()].filter((s) => cluster === undefined || s.cluster === cluster);
  }

  /** Number of live streams of a cluster. */
  count(cluster: string): number {
    return this.#perCluster.get(cluster) ?? 0;
  }

  /** Re-authorizes every live stream of a cluster; closes the revoked ones, re-arms the rest. Returns how many were closed. */
  recheck(cluster: string, check: (s: LiveStream) => Recheck): number {
    let closed = 0;
    for (const s of this.list(cluster)) {
      const r = check(s);
      if (!r.allowed) {
        this.#end(s, 'revoked');
        closed++;
      } else {
        s.deadline = r.deadline;
        this.#arm(s);
      }
    }
    return closed;
  }

  /** Closes one stream now, if it is still live. */
  close(id: string, reason: StreamEndReason): void {
    const s = this.#streams.get(id);
    if (s) this.#end(s, reason);
  }

  /** Closes every stream (graceful shutdown). */
  closeAll(reason: StreamEndReason): void {
    for (const s of this.list()) this.#end(s, reason);
  }

  #end(s: LiveStream, reason: StreamEndReason): void {
    this.unregister(s.id);
    s.close(reason);
  }

  #arm(s: LiveStream): void {
    const old = this.#timers.get(s.id);
    if (old) clearTimeout(old);
    this.#timers.delete(s.id);
    if (!Number.isFinite(s.deadline.at)) return;
    const wait = s.deadline.at - this.clock();
    if (wait <= 0) {
      queueMicrotask(() => {
        if (this.#streams.has(s.id)) this.#end(s, s.deadline.reason);
      });
      return;
    }
    const t = setTimeout(() => {
      if (!this.#streams.has(s.id)) return;
      if (s.deadline.at - this.clock() > 0) this.#arm(s);
      else this.#end(s, s.deadline.reason);
    }, Math.min(wait, MAX_TIMER));
    t.unref();
    this.#timers.set(s.id, t);
  }
}
