import {
  authorizationVerb,
  decide,
  evaluateConditions,
  EXTRA_USER,
  parseRequestInfo,
  ruleAllows,
  toAttributes,
  type Deny,
  type Grant,
  type RequestAttributes,
  type RuleIndex,
  type Subject,
} from '../core/index.ts';

/** One answer of who-can: a subject, the grant that lets it, and whether a deny or a condition stands in the way. */
export interface WhoCanRow {
  readonly subject: Subject;
  readonly grant: Grant;
  readonly deniedBy?: Deny;
  readonly inactive?: string;
}

/**
 * Every subject some grant lets do `attrs` (whose user and groups are
 * ignored), with denies and conditions applied per subject. Pure.
 */
export function whoCan(attrs: Omit<RequestAttributes, 'user' | 'groups'>, index: RuleIndex, now: number): WhoCanRow[] {
  const rows: WhoCanRow[] = [];
  for (const g of index.ruleSet.grants) {
    const scoped = g.scope.kind === 'cluster' || (attrs.isResourceRequest && g.scope.namespaces.includes(attrs.namespace));
    if (!scoped) continue;
    for (const s of g.subjects) {
      const a: RequestAttributes = { ...attrs, user: s.kind === 'User' ? s.name : '', groups: s.kind === 'Group' ? [s.name] : [] };
      if (!g.rules.some((r) => ruleAllows(a, r))) continue;
      const deniedBy = index.ruleSet.denies.find(
        (d) =>
          !d.except.some((e) => e.kind === s.kind && e.name === s.name) &&
          (d.subjects === 'everyone' || d.subjects.some((x) => x.kind === s.kind && x.name === s.name)) &&
          (d.scope.kind === 'cluster' || d.scope.namespaces.includes(attrs.namespace)) &&
          d.rules.some((r) => ruleAllows(a, r)),
      );
      const c = evaluateConditions(g.id, g.conditions, now, new Set());
      const cond = c.active ? undefined : g.conditions.breakGlass ? 'break-glass: active once invoked' : c.why;
      rows.push({ subject: s, grant: g, ...(deniedBy ? { deniedBy } : {}), ...(cond ? { inactive: cond } : {}) });
    }
  }
  return rows.sort((x, y) => (`${x.subject.kind}:${x.subject.name}:${x.grant.id}` < `${y.subject.kind}:${y.subject.name}:${y.grant.id}` ? -1 : 1));
}

/** Parses `resource[.group][/subresource]` as kubectl names resources. */
export function parseResourceArg(arg: string): { apiGroup: string; resource: string; subresource: string } {
  const [head = '', subresource = ''] = arg.split('/', 2);
  const dot = head.indexOf('.');
  return dot < 0 ? { apiGroup: '', resource: head, subresource } : { apiGroup: head.slice(dot + 1), resource: head.slice(0, dot), subresource };
}

/** The explanation of one request: attributes, the decision and what determined it, as lines of text. */
export function explainRequest(
  method: string,
  target: string,
  identity: { user: string; groups: readonly string[] },
  index: RuleIndex,
  ctx: { now: number; breakGlass: ReadonlySet<string> },
): { allowed: boolean; lines: string[] } {
  const url = new URL(target, 'https://proxy.invalid');
  const info = parseRequestInfo(method, url.pathname, url.searchParams);
  const verb = authorizationVerb(info, { isUpgrade: false });
  const attrs = toAttributes(info, verb, identity.user, identity.groups);
  const lines = [
    attrs.isResourceRequest
      ? `request: verb=${verb || '(none)'} group=${attrs.apiGroup || '(core)'} resource=${attrs.resource}${attrs.subresource ? `/${attrs.subresource}` : ''} namespace=${attrs.namespace || '(cluster)'} name=${attrs.name || '(any)'}`
      : `request: verb=${verb || '(none)'} non-resource path=${attrs.path}`,
  ];
  const v = decide(attrs, index, ctx);
  if (v.droppedGroups.length) lines.push(`groups not named by a grant (seen by denies, not impersonated): ${v.droppedGroups.join(', ')}`);
  const d = v.decision;
  if (d.allowed) {
    lines.push(`decision: ALLOW by grant ${d.grant.id} (${d.grant.source.file}:${d.grant.source.line})`);
    if (v.impersonate) {
      const who = v.impersonate.asMember ? `${v.impersonate.user} (${identity.user} is not named by the policy; its name goes upstream as the ${EXTRA_USER} extra)` : v.impersonate.user;
      lines.push(`impersonates: user=${who} groups=${v.impersonate.groups.join(',') || '(none)'}`);
    }
  } else if (d.reason === 'deny') lines.push(`decision: DENY by deny ${d.deny.id} (${d.deny.source.file}:${d.deny.source.line})`);
  else {
    lines.push('decision: DENY: no grant allows it');
    for (const i of d.inactive) lines.push(`  grant ${i.grant.id} (${i.grant.source.file}:${i.grant.source.line}) would, but ${i.why}`);
  }
  return { allowed: d.allowed, lines };
}
