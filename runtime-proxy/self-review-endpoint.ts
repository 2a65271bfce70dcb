import { decide } from '../core/decide.ts';
import { ProxyError } from './errors.ts';
import { buildUpstreamHeaders } from './headers.ts';
import { upstreamIdentity, type Admission } from './pipeline.ts';
import type { Exchange } from './exchange.ts';
import { readBody, type EndpointContext, type Req, type Res } from './request-state.ts';
import { deniedReview, readReviewSpec, reviewAttributes } from './self-review.ts';
import type { ClusterLink } from './cluster-link.ts';

/** What the self-review endpoint needs beyond the common context. */
export interface SelfReviewContext extends EndpointContext {
  /** Break-glass grants this user invoked on this cluster. */
  readonly activeBreakGlass: (user: string) => ReadonlySet<string>;
  readonly link: ClusterLink;
  /** The proxy's own `Authorization` for upstream, if it uses a token. */
  readonly authorization: string | undefined;
}

/**
 * `kubectl auth can-i` (SelfSubjectAccessReview): answered "no" by the proxy
 * when it would refuse the request asked about; otherwise forwarded upstream
 * impersonating exactly what that request would carry (self-review.ts).
 */
export async function serveSelfReview(ctx: SelfReviewContext, req: Req, res: Res, ex: Exchange, a: Admission, target: string): Promise<void> {
  const st = ex.st;
  let raw: Buffer;
  try {
    raw = await readBody(req, 64 * 1024);
  } catch {
    ex.refuse(new ProxyError('BAD_REQUEST', 'unreadable SelfSubjectAccessReview'));
    return;
  }
  const spec = readReviewSpec(String(req.headers['content-type'] ?? ''), raw);
  const asked = reviewAttributes(spec, a.identity.user, a.attributes.groups);
  const v = asked ? decide(asked, a.bundle.index, { now: ctx.clock(), breakGlass: ctx.activeBreakGlass(a.identity.user) }) : undefined;
  if (!v || !v.decision.allowed) {
    res.writeHead(201, { 'content-type': 'application/json', 'audit-id': st.auditId });
    res.end(JSON.stringify(deniedReview(spec, v?.decision.reason === 'deny')));
    ex.end(201, { reason: `self-review answered by the proxy: ${v ? v.decision.reason : 'unreadable spec'}` });
    return;
  }
  const g = v.decision.grant;
  const who = {
    ...(ctx.authorization !== undefined ? { authorization: ctx.authorization } : {}),
    ...upstreamIdentity(v, a.identity, g),
    auditId: st.auditId,
  };
  const headers = buildUpstreamHeaders(req.rawHeaders, who);
  headers['content-length'] = String(raw.length);
  ctx.link.forward(
    req,
    res,
    target,
    headers,
    {
      onResponse: () => undefined,
      onEnd: (o) => {
        if (o.kind === 'upstream-error') ex.upstreamFailed(o.message);
        else ex.end(o.status, { reason: `self-review of ${g.id} answered upstream` });
      },
    },
    raw,
  );
}
