import type { Logger } from 'pino';
import { checkBreakGlass, type ActivationStore } from './break-glass.ts';
import type { BundleStore } from './bundle-store.ts';
import { ProxyError } from './errors.ts';
import type { Identity } from './identity.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { Exchange } from './exchange.ts';
import { readBody, type EndpointContext, type Req, type Res } from './request-state.ts';
import { postJson } from './webhook.ts';

/** The path of the break-glass endpoint under /clusters/NAME. */
export const BREAK_GLASS_PATH = '/portcullis/break-glass';

/** What the break-glass endpoint needs beyond the common context. */
export interface BreakGlassContext extends EndpointContext {
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  readonly activations: ActivationStore;
  readonly webhookUrl: string | undefined;
  readonly webhookCa: Buffer | undefined;
}

/**
 * `POST /clusters/NAME/portcullis/break-glass` {grant, reason, durationSeconds}:
 * checks the request against the cluster's current rule set (break-glass.ts),
 * notifies the webhook (no notification, no activation), records and audits it.
 */
export async function serveBreakGlass(ctx: BreakGlassContext, req: Req, res: Res, ex: Exchange, cluster: string, store: BundleStore): Promise<void> {
  const st = ex.st;
  const identity = st.identity as Identity;
  const refuse = (e: ProxyError, reason: string): void => void ex.refuse(e, { reason, decision: 'deny' });
  if (req.method !== 'POST') {
    refuse(new ProxyError('METHOD_NOT_ALLOWED', `${req.method ?? ''} on break-glass`, 'use POST'), 'break-glass: method');
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse((await readBody(req, 16 * 1024)).toString('utf8'));
  } catch {
    body = undefined;
  }
  const bundle = store.current(ctx.clock());
  if (!bundle) {
    ex.refuse(new ProxyError('NO_BUNDLE', 'bundle expired during break-glass'));
    return;
  }
  const chk = checkBreakGlass(body, bundle.ruleSet, identity.user, identity.groups);
  if (!chk.ok) {
    ctx.metrics.breakGlass.inc({ cluster, result: 'refused' });
    // The message is built only from what the caller sent; it names no other part of the policy.
    refuse(new ProxyError(chk.status === 403 ? 'FORBIDDEN' : 'BAD_REQUEST', chk.message, chk.message), `break-glass refused: ${chk.message}`);
    return;
  }
  const now = ctx.clock();
  const b = body as { reason: string };
  const activation = { cluster, user: identity.user, grant: chk.grant.id, reason: b.reason.trim(), activatedAt: now, expiresAt: now + chk.durationSeconds * 1000 };
  const url = ctx.webhookUrl;
  if (url !== undefined) {
    try {
      await postJson(url, { kind: 'BreakGlassActivation', ...activation, issuer: identity.issuer, notify: chk.grant.conditions.breakGlass?.notify ?? [], auditID: st.auditId }, ctx.webhookCa);
    } catch (err) {
      // Notification is part of the control: no notification, no activation.
      ctx.metrics.breakGlass.inc({ cluster, result: 'notify_failed' });
      ctx.log.error({ cluster, grant: chk.grant.id, user: identity.user, err: (err as Error).message, alert: true }, 'break-glass webhook failed; activation refused');
      refuse(new ProxyError('NOTIFY_FAILED', (err as Error).message), 'break-glass notify failed');
      return;
    }
  }
  try {
    await ctx.activations.add(activation);
  } catch (err) {
    ctx.metrics.breakGlass.inc({ cluster, result: 'store_failed' });
    ctx.log.error({ cluster, grant: chk.grant.id, user: identity.user, err: (err as Error).message, alert: true }, 'break-glass activation could not be recorded; not activated (the webhook was already notified)');
    refuse(new ProxyError('BREAK_GLASS_STORE', (err as Error).message), 'break-glass store failed');
    return;
  }
  ctx.metrics.breakGlass.inc({ cluster, result: 'activated' });
  st.breakGlass = `activated ${chk.grant.id} until ${new Date(activation.expiresAt).toISOString()}: ${activation.reason}`;
  st.source = `${chk.grant.source.file}:${chk.grant.source.line}`;
  ctx.log.warn({ cluster, grant: chk.grant.id, user: identity.user, reason: activation.reason, expiresAt: activation.expiresAt, alert: true }, 'BREAK-GLASS ACTIVATED');
  res.writeHead(201, { 'content-type': 'application/json', 'audit-id': st.auditId });
  res.end(JSON.stringify({ kind: 'BreakGlassActivation', apiVersion: 'portcullis.dev/v1', cluster, grant: chk.grant.id, user: identity.user, expiresAt: new Date(activation.expiresAt).toISOString() }));
  ex.end(201, { reason: 'break-glass activated', decision: 'allow', grantId: chk.grant.id });
}
