import type { Grant, RuleSet, Subject } from '../../core/rule-set.ts';
import type { Activation, SharedActivations } from '../break-glass.ts';
import { storeAction, storeClient } from '../front-door.ts';

/** A request for a requestable grant: asked by one person, decided by another. */
export interface AccessRequest {
  readonly id: string;
  readonly cluster: string;
  readonly grant: string;
  readonly user: string;
  readonly reason: string;
  readonly durationSeconds: number;
  readonly requestedAt: number;
  readonly state: 'pending' | 'approved' | 'denied';
  readonly decidedBy?: string;
  readonly decidedAt?: number;
  /** When the access an approval gave ends. */
  readonly expiresAt?: number;
}

const MAX_REASON = 2000;

/** Whether `user` (with `groups`) is one of the subjects. */
export function among(subjects: readonly Subject[], user: string, groups: readonly string[]): boolean {
  return subjects.some((s) => (s.kind === 'User' ? s.name === user : groups.includes(s.name)));
}

/**
 * Checks a request against the cluster's rule set; pure. The grant is requestable, the requester
 * one of its subjects, a reason given, the duration within the policy's maximum. "No such grant"
 * and "not yours" get the same answer, which reveals nothing of the policy.
 */
export function checkAccessRequest(body: unknown, ruleSet: RuleSet, user: string, groups: readonly string[]): { readonly ok: true; readonly grant: Grant; readonly durationSeconds: number } | { readonly ok: false; readonly status: 400 | 403; readonly message: string } {
  const b = body as { grant?: unknown; reason?: unknown; durationSeconds?: unknown } | null;
  if (!b || typeof b !== 'object' || typeof b.grant !== 'string') return { ok: false, status: 400, message: 'a request is JSON {cluster, grant, reason, durationSeconds}' };
  if (typeof b.reason !== 'string' || b.reason.trim() === '' || b.reason.length > MAX_REASON) return { ok: false, status: 400, message: `a non-empty reason (at most ${MAX_REASON} characters) is required` };
  const grant = ruleSet.grants.find((g) => g.id === b.grant);
  const approval = grant?.conditions.approval;
  if (!grant || !approval || !among(grant.subjects, user, groups)) return { ok: false, status: 403, message: `no requestable grant ${b.grant} for you on this cluster` };
  const d = b.durationSeconds ?? approval.maxDurationSeconds;
  if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 1 || d > approval.maxDurationSeconds) {
    return { ok: false, status: 400, message: `durationSeconds must be an integer between 1 and ${approval.maxDurationSeconds} (the grant's maxDuration)` };
  }
  return { ok: true, grant, durationSeconds: d };
}

/** Why `approver` may not decide the request, or undefined when they may; pure. Never the requester. */
export function cannotDecide(r: AccessRequest, grant: Grant | undefined, approver: string, groups: readonly string[]): string | undefined {
  if (approver === r.user) return 'the requester cannot approve or deny their own request';
  const approval = grant?.conditions.approval;
  if (!grant || !approval) return `grant ${r.grant} is no longer requestable on ${r.cluster}`;
  if (!among(approval.approvers, approver, groups)) return `${approver} is not an approver of ${r.grant}`;
  if (r.state !== 'pending') return `request ${r.id} is already ${r.state}`;
  return undefined;
}

/**
 * How long a request stays in the store (and in `portcullis requests` and the console) after its
 * last event: its asking while undecided, else its decision or the end of the access it gave.
 * Its records stay in the audit log.
 */
export const REQUEST_RETENTION_MS = 30 * 86_400_000;

/** Whether a request is past keeping at `now`; pure. */
export function pastRetention(r: AccessRequest, now: number): boolean {
  const last = r.state === 'pending' ? r.requestedAt : Math.max(r.decidedAt ?? r.requestedAt, r.expiresAt ?? 0);
  return last + REQUEST_RETENTION_MS <= now;
}

/** An activation that ended a minute ago: no replica's clock can still honour it (as DirectoryActivations). */
const ACTIVATION_SLACK_MS = 60_000;

const REQUESTS = 'portcullis:requests';
const ACTIVATIONS = 'portcullis:activations';

/** Requests and activations (break-glass invocations, approvals) in Redis, shared by every replica. */
export class RedisRequests implements SharedActivations {
  readonly #cmd;

  constructor(url: string, onError: (err: Error) => void) {
    this.#cmd = storeClient(url, onError);
  }

  async start(): Promise<void> {
    await this.#cmd.connect();
  }

  async stop(): Promise<void> {
    await this.#cmd.close().catch(() => undefined);
  }

  async put(r: AccessRequest): Promise<void> {
    await this.#write(() => this.#cmd.hSet(REQUESTS, r.id, JSON.stringify(r)));
  }

  /** Claims the one decision of a request (SET NX): false when another approve or deny got there first, on any replica. */
  async claimDecision(id: string): Promise<boolean> {
    return (await this.#write(() => this.#cmd.set(`portcullis:request-decided:${id}`, '1', { condition: 'NX', expiration: { type: 'EX', value: 30 * 86_400 } }))) === 'OK';
  }

  async get(id: string): Promise<AccessRequest | undefined> {
    const raw = await this.#read(() => this.#cmd.hGet(REQUESTS, id));
    return raw ? (JSON.parse(raw) as AccessRequest) : undefined;
  }

  /** Every request still kept at `now`; those past REQUEST_RETENTION_MS are removed from the store as they are found. */
  async list(now: number): Promise<AccessRequest[]> {
    const all = await this.#read(() => this.#cmd.hGetAll(REQUESTS));
    const kept: AccessRequest[] = [];
    const old: string[] = [];
    for (const [k, v] of Object.entries(all)) {
      const r = JSON.parse(v) as AccessRequest;
      if (pastRetention(r, now)) old.push(k);
      else kept.push(r);
    }
    await this.#tidy(REQUESTS, old);
    return kept.sort((a, b) => a.requestedAt - b.requestedAt);
  }

  /** The activations in force at `now`; those that ended over a minute ago are removed from the store (any replica may). */
  async load(now: number): Promise<Activation[]> {
    const all = await this.#read(() => this.#cmd.hGetAll(ACTIVATIONS));
    const live: Activation[] = [];
    const old: string[] = [];
    for (const [k, v] of Object.entries(all)) {
      const a = JSON.parse(v) as Activation;
      if (a.expiresAt > now) live.push(a);
      else if (a.expiresAt < now - ACTIVATION_SLACK_MS) old.push(k);
    }
    await this.#tidy(ACTIVATIONS, old);
    return live;
  }

  /** Removes entries nothing reads any more; a failure leaves them for the next read, and fails nothing. */
  async #tidy(hash: string, fields: readonly string[]): Promise<void> {
    if (fields.length === 0) return;
    await this.#write(() => this.#cmd.hDel(hash, [...fields])).catch(() => undefined);
  }

  async save(a: Activation): Promise<void> {
    await this.#write(() => this.#cmd.hSet(ACTIVATIONS, key(a), JSON.stringify(a)));
  }

  async remove(a: Pick<Activation, 'cluster' | 'user' | 'grant'>): Promise<number> {
    const all = await this.#read(() => this.#cmd.hGetAll(ACTIVATIONS));
    const gone = Object.entries(all).filter(([, v]) => {
      const x = JSON.parse(v) as Activation;
      return x.cluster === a.cluster && x.user === a.user && x.grant === a.grant;
    });
    if (gone.length > 0) await this.#write(() => this.#cmd.hDel(ACTIVATIONS, gone.map(([k]) => k)));
    return gone.length;
  }

  async #write<T>(fn: () => Promise<T>): Promise<T> {
    return storeAction(this.#cmd, 'request', 'the request store is unreachable: nothing was recorded', fn);
  }

  #read<T>(fn: () => Promise<T>): Promise<T> {
    return this.#write(fn);
  }
}

function key(a: Activation): string {
  return `${a.cluster}\0${a.user}\0${a.grant}\0${a.activatedAt}`;
}
