import { explainRequest, parseResourceArg, whoCan } from '../compiler/questions.ts';
import type { RuleIndex } from '../core/rule-index.ts';
import { ProxyError } from '../runtime-proxy/errors.ts';

/**
 * explain and who-can as the console asks them: the CLI's own functions (compiler/questions.ts)
 * over the index of the signed bundle the proxy enforces, with the query's fields checked first.
 * Pure but for the clock and activations passed in.
 */
export function answerQuestion(
  route: '/explain' | '/who-can',
  q: URLSearchParams,
  cluster: string,
  index: RuleIndex,
  now: number,
  activationsOf: (user: string) => ReadonlySet<string>,
): { readonly body: unknown; readonly reason: string } {
  if (route === '/explain') {
    const method = (q.get('method') ?? 'GET').toUpperCase();
    const path = q.get('path') ?? '';
    const user = q.get('user') ?? '';
    if (!path.startsWith('/') || user === '') throw new ProxyError('BAD_REQUEST', 'explain needs a path starting with / and a user', 'give a user and a request path starting with /');
    const groups = (q.get('groups') ?? '').split(',').map((g) => g.trim()).filter((g) => g !== '');
    const r = explainRequest(method, path, { user, groups }, index, { now, breakGlass: activationsOf(user) });
    return { body: { allowed: r.allowed, lines: r.lines }, reason: `console: explain ${method} ${path} for ${user} on ${cluster}` };
  }
  const verb = q.get('verb') ?? '';
  const resource = q.get('resource') ?? '';
  if (verb === '' || resource === '') throw new ProxyError('BAD_REQUEST', 'who-can needs a verb and a resource', 'give a verb and a resource');
  const rows = whoCan({ verb, isResourceRequest: true, path: '', apiVersion: '', ...parseResourceArg(resource), namespace: q.get('namespace') ?? '', name: q.get('name') ?? '' }, index, now);
  return {
    body: {
      rows: rows.map((r) => ({
        subject: `${r.subject.kind} ${r.subject.name}`,
        grant: r.grant.id,
        source: `${r.grant.source.file}:${r.grant.source.line}`,
        ...(r.deniedBy ? { deniedBy: r.deniedBy.id, denySource: `${r.deniedBy.source.file}:${r.deniedBy.source.line}` } : {}),
        ...(r.inactive ? { inactive: r.inactive } : {}),
      })),
    },
    reason: `console: who-can ${verb} ${resource} on ${cluster}`,
  };
}
