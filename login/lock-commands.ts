import { parseDuration } from '../core/duration.ts';
import { proxyCall } from './commands.ts';
import { LoginError } from './login-error.ts';
import { readSession, type SessionFile } from './session-file.ts';

/** What `portcullis lock` locks: exactly one of these. */
export interface LockOptions {
  readonly user?: string;
  readonly group?: string;
  readonly cluster?: string;
  readonly grant?: string;
  readonly reason?: string;
  /** A duration (`30m`, `2h`). @default until lifted */
  readonly expires?: string;
}

function session(): SessionFile {
  const s = readSession();
  if (!s) throw new LoginError('NO_SESSION', 'not logged in: run portcullis login --proxy URL');
  return s;
}

/** `portcullis lock`: in force on every replica within a second; prints the lock. */
export async function lock(o: LockOptions): Promise<string> {
  const chosen = (['user', 'group', 'cluster', 'grant'] as const).filter((k) => o[k] !== undefined);
  if (chosen.length !== 1) throw new LoginError('BAD_INPUT', 'lock exactly one of --user, --group, --cluster or --grant');
  const kind = chosen[0] as 'user' | 'group' | 'cluster' | 'grant';
  let expiresInSeconds: number | undefined;
  if (o.expires !== undefined) {
    expiresInSeconds = parseDuration(o.expires);
    if (expiresInSeconds === undefined || expiresInSeconds <= 0) throw new LoginError('BAD_INPUT', `--expires ${o.expires}: a duration such as 30m, 2h or 1d`);
  }
  const s = session();
  const body = { kind, subject: o[kind], reason: o.reason ?? '', ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}) };
  const l = JSON.parse(await proxyCall(s, '/portcullis/v1/locks', { method: 'POST', token: s.credential, body })) as { id: string; lockKind: string; subject: string; expiresAt?: string };
  return `${l.id}: ${l.lockKind} ${l.subject} locked${l.expiresAt ? ` until ${l.expiresAt}` : ' until lifted'}`;
}

/** `portcullis unlock ID`. */
export async function unlock(id: string): Promise<string> {
  const s = session();
  await proxyCall(s, `/portcullis/v1/locks/${encodeURIComponent(id)}`, { method: 'DELETE', token: s.credential });
  return `${id} lifted`;
}

/** `portcullis locks`: one line per lock in force. */
export async function locks(): Promise<string> {
  const s = session();
  const list = JSON.parse(await proxyCall(s, '/portcullis/v1/locks', { token: s.credential })) as { items: { id: string; lockKind: string; subject: string; reason: string; setBy: string; setAt: string; expiresAt?: string }[] };
  if (list.items.length === 0) return 'no locks in force';
  return list.items.map((l) => [l.id, l.lockKind, l.subject, `by ${l.setBy} at ${l.setAt}`, l.expiresAt ? `until ${l.expiresAt}` : 'until lifted', l.reason].join('  ')).join('\n');
}
