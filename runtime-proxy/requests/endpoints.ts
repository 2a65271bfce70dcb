import { randomBytes } from 'node:crypto';
import type { RuleSet } from '../../core/rule-set.ts';
import type { ActivationStore } from '../break-glass.ts';
import { ProxyError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import type { Authenticator, Identity } from '../identity.ts';
import { readBody, type Req, type Res } from '../request-state.ts';
import { frontDoorCaller, refuseFrontDoor, sendJson } from '../front-door.ts';
import { among, cannotDecide, checkAccessRequest, type AccessRequest, type RedisRequests } from './access-requests.ts';

/** `POST` asks, `GET` lists; `POST …/ID/approve|deny` decides; `POST /portcullis/v1/activations/end` ends access early. */
export const REQUESTS_ENDPOINT = '/portcullis/v1/requests';
export const END_ACTIVATION_ENDPOINT = '/portcullis/v1/activations/end';
export const ACTIVATIONS_ENDPOINT = '/portcullis/v1/activations';

/** What the request endpoints need from the proxy. */
export interface RequestEndpointContext {
  readonly clock: () => number;
  readonly requests: RedisRequests;
  readonly activations: ActivationStore;
  readonly authenticator: Authenticator;
  /** The refusal for a caller under a fleet-wide lock. */
  readonly lockedOut: (identity: Identity) => ProxyError | undefined;
  /** The rule set a cluster enforces now. */
  readonly ruleSet: (cluster: string) => RuleSet | undefined;
  /** Tells the configured webhook (best effort for requests; an approval is not undone by a failed notice). */
  readonly notify: (event: Record<string, unknown>) => Promise<void>;
  /** An activation ended early: live streams it allowed are re-checked now. */
  readonly ended: (cluster: string) => void;
}

/**
 * Access requests with a second person, each step an audited exchange: a person a requestable
 * grant names asks for it with a reason and a duration within its maximum; someone the grant
 * names as approver, never the requester, approves or denies; an approval is an activation (as
 * break-glass is) in the shared store, active on every replica for that duration; the requester
 * or an approver can end it early, as anyone can end their own break-glass.
 */
export async function serveRequestEndpoint(ctx: RequestEndpointContext, req: Req, res: Res, ex: Exchange, path: string): Promise<void> {
  const st = ex.st;
  const now = ctx.clock();
  const json = (status: number, body: unknown): void => sendJson(res, ex, status, body);
  const refuse = (code: 'BAD_REQUEST' | 'FORBIDDEN' | 'NOT_FOUND', message: string) => new ProxyError(code, message, message);
  try {
    const who = await frontDoorCaller(ctx.authenticator, ctx.lockedOut, req, ex, now);
    const body = async (): Promise<Record<string, unknown>> => {
      try {
        return JSON.parse((await readBody(req, 16 * 1024)).toString('utf8')) as Record<string, unknown>;
      } catch {
        throw refuse('BAD_REQUEST', 'the body is not JSON');
      }
    };
    if (path === REQUESTS_ENDPOINT && req.method === 'POST') {
      const b = await body();
      const cluster = typeof b['cluster'] === 'string' ? b['cluster'] : '';
      const rs = ctx.ruleSet(cluster);
      if (!rs) throw refuse('BAD_REQUEST', `no cluster ${cluster} with a valid bundle behind this proxy`);
      st.cluster = cluster;
      const chk = checkAccessRequest(b, rs, who.user, who.groups);
      if (!chk.ok) throw refuse(chk.status === 403 ? 'FORBIDDEN' : 'BAD_REQUEST', chk.message);
      const r: AccessRequest = { id: `req-${randomBytes(6).toString('hex')}`, cluster, grant: chk.grant.id, user: who.user, reason: String(b['reason']).trim(), durationSeconds: chk.durationSeconds, requestedAt: now, state: 'pending' };
      await ctx.requests.put(r);
      st.source = `${chk.grant.source.file}:${chk.grant.source.line}`;
      await ctx.notify({ kind: 'AccessRequest', ...r, approvers: chk.grant.conditions.approval?.approvers ?? [] }).catch(() => undefined);
      json(201, view(r));
      return ex.end(201, { reason: `access request ${r.id} for ${r.grant} on ${cluster} (${r.durationSeconds}s): ${r.reason}`, decision: 'allow', grantId: r.grant });
    }
    if (path === REQUESTS_ENDPOINT && req.method === 'GET') {
      // Your own requests, and those you may decide.
      const mine = (await ctx.requests.list(now)).filter((r) => r.user === who.user || cannotDecide({ ...r, state: 'pending' }, ctx.ruleSet(r.cluster)?.grants.find((g) => g.id === r.grant), who.user, who.groups) === undefined);
      json(200, { kind: 'AccessRequestList', apiVersion: 'portcullis.dev/v1', items: mine.map(view) });
      return ex.end(200, { reason: 'access requests listed', decision: 'allow' });
    }
    const m = /^\/portcullis\/v1\/requests\/(req-[0-9a-f]{12})\/(approve|deny)$/.exec(path);
    if (m && req.method === 'POST') {
      const r = await ctx.requests.get(m[1] ?? '');
      if (!r) throw refuse('NOT_FOUND', `no request ${m[1] ?? ''}`);
      st.cluster = r.cluster;
      const grant = ctx.ruleSet(r.cluster)?.grants.find((g) => g.id === r.grant);
      const why = cannotDecide(r, grant, who.user, who.groups);
      if (why) throw refuse('FORBIDDEN', why);
      const approve = m[2] === 'approve';
      if (!(await ctx.requests.claimDecision(r.id))) throw refuse('FORBIDDEN', `request ${r.id} is already decided`);
      const decided: AccessRequest = { ...r, state: approve ? 'approved' : 'denied', decidedBy: who.user, decidedAt: now, ...(approve ? { expiresAt: now + r.durationSeconds * 1000 } : {}) };
      if (approve) await ctx.activations.add({ cluster: r.cluster, user: r.user, grant: r.grant, reason: `request ${r.id} approved by ${who.user}: ${r.reason}`, activatedAt: now, expiresAt: now + r.durationSeconds * 1000 });
      await ctx.requests.put(decided);
      await ctx.notify({ kind: approve ? 'AccessRequestApproved' : 'AccessRequestDenied', ...decided }).catch(() => undefined);
      json(200, view(decided));
      return ex.end(200, { reason: `access request ${r.id} ${decided.state} by ${who.user}${approve ? ` until ${new Date(decided.expiresAt ?? 0).toISOString()}` : ''}`, decision: 'allow', grantId: r.grant });
    }
    if (path === END_ACTIVATION_ENDPOINT && req.method === 'POST') {
      const b = await body();
      const cluster = String(b['cluster'] ?? '');
      const grantId = String(b['grant'] ?? '');
      const user = typeof b['user'] === 'string' ? b['user'] : who.user;
      st.cluster = cluster;
      const grant = ctx.ruleSet(cluster)?.grants.find((g) => g.id === grantId);
      // Your own access, or access you may approve.
      const approver = grant?.conditions.approval !== undefined && among(grant.conditions.approval.approvers, who.user, who.groups);
      if (user !== who.user && !approver) throw refuse('FORBIDDEN', `${who.user} may end only their own access, or access they may approve`);
      if (!(await ctx.activations.end({ cluster, user, grant: grantId }))) throw refuse('NOT_FOUND', `${user} has no active ${grantId} on ${cluster}`);
      ctx.ended(cluster);
      json(200, { kind: 'Status', apiVersion: 'v1', status: 'Success', message: `${grantId} ended for ${user} on ${cluster}` });
      return ex.end(200, { reason: `activation of ${grantId} for ${user} ended early by ${who.user}`, decision: 'allow', grantId });
    }
    if (path === ACTIVATIONS_ENDPOINT && req.method === 'GET') {
      const items = ctx.activations.all().filter((x) => x.user === who.user || (ctx.ruleSet(x.cluster)?.grants.find((g) => g.id === x.grant)?.conditions.approval?.approvers ?? []).some((s) => (s.kind === 'User' ? s.name === who.user : who.groups.includes(s.name))));
      json(200, { kind: 'ActivationList', apiVersion: 'portcullis.dev/v1', items: items.map((x) => ({ ...x, activatedAt: new Date(x.activatedAt).toISOString(), expiresAt: new Date(x.expiresAt).toISOString() })) });
      return ex.end(200, { reason: 'activations listed', decision: 'allow' });
    }
    throw new ProxyError('NOT_FOUND', `no ${req.method ?? ''} ${path}`);
  } catch (err) {
    refuseFrontDoor(ex, err);
  }
}

function view(r: AccessRequest): Record<string, unknown> {
  return {
    kind: 'AccessRequest',
    apiVersion: 'portcullis.dev/v1',
    ...r,
    requestedAt: new Date(r.requestedAt).toISOString(),
    ...(r.decidedAt !== undefined ? { decidedAt: new Date(r.decidedAt).toISOString() } : {}),
    ...(r.expiresAt !== undefined ? { expiresAt: new Date(r.expiresAt).toISOString() } : {}),
  };
}
