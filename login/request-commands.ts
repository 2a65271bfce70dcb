import { parseDuration } from '../core/duration.ts';
import { proxyCall } from './commands.ts';
import { LoginError } from './login-error.ts';
import { readSession, type SessionFile } from './session-file.ts';

function session(): SessionFile {
  const s = readSession();
  if (!s) throw new LoginError('NO_SESSION', 'not logged in: run portcullis login --proxy URL');
  return s;
}

interface RequestView {
  readonly id: string;
  readonly cluster: string;
  readonly grant: string;
  readonly user: string;
  readonly reason: string;
  readonly durationSeconds: number;
  readonly state: string;
  readonly decidedBy?: string;
  readonly expiresAt?: string;
}

const line = (r: RequestView) => [r.id, r.state, r.grant, `on ${r.cluster}`, `for ${r.user}`, `${r.durationSeconds}s`, r.decidedBy ? `by ${r.decidedBy}` : '', r.expiresAt ? `until ${r.expiresAt}` : '', r.reason].filter(Boolean).join('  ');

/** `portcullis request`: asks for a requestable grant; an approver then runs portcullis approve ID. */
export async function requestAccess(o: { grant: string; cluster: string; reason: string; duration?: string }): Promise<string> {
  let durationSeconds: number | undefined;
  if (o.duration !== undefined) {
    durationSeconds = parseDuration(o.duration);
    if (durationSeconds === undefined) throw new LoginError('BAD_INPUT', `--duration ${o.duration}: a duration such as 30m or 2h`);
  }
  const s = session();
  const r = JSON.parse(await proxyCall(s, '/portcullis/v1/requests', { method: 'POST', token: s.credential, body: { cluster: o.cluster, grant: o.grant, reason: o.reason, ...(durationSeconds !== undefined ? { durationSeconds } : {}) } })) as RequestView;
  return `${line(r)}\nAn approver runs: portcullis approve ${r.id}`;
}

/** `portcullis approve ID` / `portcullis deny ID`. */
export async function decide(id: string, approve: boolean): Promise<string> {
  const s = session();
  return line(JSON.parse(await proxyCall(s, `/portcullis/v1/requests/${encodeURIComponent(id)}/${approve ? 'approve' : 'deny'}`, { method: 'POST', token: s.credential })) as RequestView);
}

/** `portcullis requests`: yours, and those you may decide. */
export async function listRequests(): Promise<string> {
  const s = session();
  const l = JSON.parse(await proxyCall(s, '/portcullis/v1/requests', { token: s.credential })) as { items: RequestView[] };
  return l.items.length ? l.items.map(line).join('\n') : 'no requests';
}

/** `portcullis activations`: access activated now (break-glass, approved requests): yours, and what you approve. */
export async function listActivations(): Promise<string> {
  const s = session();
  const l = JSON.parse(await proxyCall(s, '/portcullis/v1/activations', { token: s.credential })) as { items: { cluster: string; user: string; grant: string; expiresAt: string; reason: string }[] };
  return l.items.length ? l.items.map((a) => [a.grant, `on ${a.cluster}`, `for ${a.user}`, `until ${a.expiresAt}`, a.reason].join('  ')).join('\n') : 'no activations';
}

/** `portcullis end`: ends an activation before its time (your own, or one you may approve). */
export async function endActivation(o: { cluster: string; grant: string; user?: string }): Promise<string> {
  const s = session();
  return (JSON.parse(await proxyCall(s, '/portcullis/v1/activations/end', { method: 'POST', token: s.credential, body: o })) as { message: string }).message;
}
