import { randomBytes } from 'node:crypto';
import { ProxyError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import type { Authenticator, Identity } from '../identity.ts';
import { readBody, type Req, type Res } from '../request-state.ts';
import { frontDoorCaller, refuseFrontDoor, sendJson } from '../front-door.ts';
import type { Lock, LockKind, RedisLocks } from './locks.ts';

/** `POST` sets a lock, `GET` lists them; `DELETE /portcullis/v1/locks/ID` lifts one. */
export const LOCKS_ENDPOINT = '/portcullis/v1/locks';

/** What the lock endpoints need from the proxy. */
export interface LockEndpointContext {
  readonly clock: () => number;
  readonly locks: RedisLocks;
  /** The proxy's authenticator: a session credential or an identity provider's token. */
  readonly authenticator: Authenticator;
  /** Whether the policy lets `identity` use `verb` on LOCKS_PATH: on `cluster` when given, else on any cluster. */
  readonly may: (identity: Identity, verb: 'get' | 'post' | 'delete', cluster?: string) => boolean;
  /** Why the policy does not know this subject, or undefined when it does. */
  readonly unknown: (kind: LockKind, subject: string) => string | undefined;
  /** The refusal for a caller who is locked out themselves (a locked locker lifts nothing). */
  readonly lockedOut: (identity: Identity) => ProxyError | undefined;
  /** Once a lock is set: end the sessions it covers (every replica then closes its streams). */
  readonly afterSet: (l: Lock) => Promise<void>;
}

const KINDS: readonly LockKind[] = ['user', 'group', 'cluster', 'grant'];

/**
 * The lock endpoints, each an audited exchange. Who may lock is the policy's word (`Roles.locker`,
 * the same authorizer as every request); a lock of a subject the policy does not know, or without
 * the right, changes nothing and says why.
 */
export async function serveLockEndpoint(ctx: LockEndpointContext, req: Req, res: Res, ex: Exchange, path: string): Promise<void> {
  const now = ctx.clock();
  const json = (status: number, body: unknown): void => sendJson(res, ex, status, body);
  try {
    const who = await frontDoorCaller(ctx.authenticator, ctx.lockedOut, req, ex, now);
    const denied = (what: string) => new ProxyError('FORBIDDEN', `${who.user} may not ${what}`, `${who.user} may not ${what}: the policy grants it with Roles.locker`);
    if (path === LOCKS_ENDPOINT && req.method === 'GET') {
      if (!ctx.may(who, 'get')) throw denied('list locks');
      json(200, { kind: 'LockList', apiVersion: 'portcullis.dev/v1', items: ctx.locks.list(now).map(view) });
      return ex.end(200, { reason: 'locks listed', decision: 'allow' });
    }
    if (path === LOCKS_ENDPOINT && req.method === 'POST') {
      let body: { kind?: unknown; subject?: unknown; reason?: unknown; expiresInSeconds?: unknown };
      try {
        body = JSON.parse((await readBody(req, 16 * 1024)).toString('utf8')) as typeof body;
      } catch {
        throw new ProxyError('BAD_REQUEST', 'lock body is not JSON', 'a lock is JSON: {"kind":"user|group|cluster|grant","subject":"…","reason":"…","expiresInSeconds":N}');
      }
      const kind = body.kind as LockKind;
      if (!KINDS.includes(kind) || typeof body.subject !== 'string' || body.subject === '') {
        throw new ProxyError('BAD_REQUEST', 'lock without kind or subject', 'a lock names a kind (user, group, cluster or grant) and a subject');
      }
      const reason = typeof body.reason === 'string' ? body.reason.trim() : '';
      const ttl = body.expiresInSeconds;
      if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl <= 0)) throw new ProxyError('BAD_REQUEST', 'bad expiresInSeconds', 'expiresInSeconds is a whole number of seconds above 0');
      const unknown = ctx.unknown(kind, body.subject);
      if (unknown !== undefined) throw new ProxyError('BAD_REQUEST', unknown, unknown);
      if (!ctx.may(who, 'post', kind === 'cluster' ? body.subject : undefined)) throw denied(`lock ${kind} ${body.subject}`);
      const lock: Lock = { id: `lock-${randomBytes(6).toString('hex')}`, kind, subject: body.subject, reason, setBy: who.user, setAt: now, ...(typeof ttl === 'number' ? { expiresAt: now + ttl * 1000 } : {}) };
      await ctx.locks.set(lock);
      await ctx.afterSet(lock);
      json(201, view(lock));
      return ex.end(201, { reason: `lock ${lock.id} set on ${kind} ${lock.subject}${reason ? `: ${reason}` : ''}`, decision: 'allow' });
    }
    const m = /^\/portcullis\/v1\/locks\/(lock-[0-9a-f]{12})$/.exec(path);
    if (m && req.method === 'DELETE') {
      const id = m[1] ?? '';
      // Decided on the lock as the store has it, not on what this replica has heard.
      const l = await ctx.locks.fetch(id);
      if (!ctx.may(who, 'delete', l?.kind === 'cluster' ? l.subject : undefined)) throw denied(`lift ${id}`);
      if (!(await ctx.locks.lift(id))) throw new ProxyError('NOT_FOUND', `no lock ${id}`, `no lock ${id} is in force`);
      json(200, { kind: 'Status', apiVersion: 'v1', status: 'Success', message: `${id} lifted` });
      return ex.end(200, { reason: `lock ${id} lifted`, decision: 'allow' });
    }
    throw new ProxyError('NOT_FOUND', `no ${req.method ?? ''} ${path}`);
  } catch (err) {
    refuseFrontDoor(ex, err);
  }
}

function view(l: Lock): Record<string, unknown> {
  return { kind: 'Lock', apiVersion: 'portcullis.dev/v1', id: l.id, lockKind: l.kind, subject: l.subject, reason: l.reason, setBy: l.setBy, setAt: new Date(l.setAt).toISOString(), ...(l.expiresAt !== undefined ? { expiresAt: new Date(l.expiresAt).toISOString() } : {}) };
}
