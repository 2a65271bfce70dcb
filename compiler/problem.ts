import type { SourceLocation } from '../core/index.ts';

/** Stable codes of everything validation reports; tests assert the code. */
export type ProblemCode =
  | 'UNKNOWN_CLUSTER'
  | 'SELECTOR_MATCHES_NOTHING'
  | 'DUPLICATE_ID'
  | 'UNKNOWN_VERB'
  | 'UNKNOWN_API_GROUP'
  | 'UNKNOWN_RESOURCE'
  | 'INVALID_NAME'
  | 'INVALID_PROXY_URL'
  | 'INVALID_CLUSTER'
  | 'ESCALATION_NOT_ACKNOWLEDGED'
  | 'INVALID_SUBRESOURCE_WILDCARD'
  | 'RESOURCE_NAMES_WITH_CREATE'
  | 'BREAK_GLASS_NO_MAX_DURATION'
  | 'WINDOW_NEVER_OPENS'
  | 'INVALID_TIME'
  | 'SYSTEM_NAME'
  | 'EMPTY_RULE'
  | 'NON_RESOURCE_IN_NAMESPACE'
  | 'UNDECLARED_NAMESPACE'
  | 'MISSING_CATALOG'
  | 'POLICY_LOAD'
  | 'TYPE_ERROR'
  | 'UNFINISHED_CLAIM'
  // warnings
  | 'GRANT_EXPIRED'
  | 'GRANT_NOT_YET_ACTIVE'
  | 'DENY_NARROWS_GRANT'
  | 'STREAM_GET_UPSTREAM';

/** One problem found in a policy, with where it was written. */
export interface Problem {
  readonly severity: 'error' | 'warning';
  readonly code: ProblemCode;
  readonly message: string;
  readonly source: SourceLocation;
  /** The construct path, e.g. `payments/edit`. */
  readonly path: string;
  /** A suggestion, e.g. "did you mean 'prod-eu'?". */
  readonly hint?: string;
}

/** `file:line: error CODE: message (hint) [path]` — one line per problem. */
export function formatProblem(p: Problem): string {
  const hint = p.hint ? ` (${p.hint})` : '';
  const path = p.path ? ` [${p.path}]` : '';
  return `${p.source.file}:${p.source.line}: ${p.severity} ${p.code}: ${p.message}${hint}${path}`;
}

/** "did you mean 'x'?" for the closest candidate within a small edit distance, else undefined. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD || (d === bestD && best !== undefined && c < best)) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? `did you mean '${best}'?` : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
