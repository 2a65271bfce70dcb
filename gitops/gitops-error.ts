/** Stable codes for every way plan or apply refuses or fails; tests assert the code. */
export type GitopsErrorCode =
  | 'GENERATED_MISSING'
  | 'GENERATED_MALFORMED'
  | 'GENERATED_STALE'
  | 'SELECTOR_INVALID'
  | 'SELECTOR_UNKNOWN_CLUSTER'
  | 'SELECTOR_EMPTY'
  | 'CREDENTIALS_MISSING'
  | 'CLUSTER_UNREACHABLE'
  | 'KUBECTL_FAILED'
  | 'GIT_FAILED'
  | 'COMMIT_MISMATCH'
  | 'GITHUB_CONTEXT';

/** A plan, apply or GitHub step failed or refused. */
export class GitopsError extends Error {
  constructor(
    readonly code: GitopsErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'GitopsError';
  }
}
