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
  | 'GITHUB_CONTEXT'
  | 'GITHUB_POST'
  /** An argument or input file the user must fix. */
  | 'BAD_INPUT'
  /** What went wrong was already printed (problems of audit-trace, clusters apply failed on). */
  | 'REPORTED';

/** A plan, apply or GitHub step failed or refused. The message starts with the code (`CODE: what`), but for REPORTED. */
export class GitopsError extends Error {
  constructor(
    readonly code: GitopsErrorCode,
    message: string,
  ) {
    super(code === 'REPORTED' ? message : `${code}: ${message}`);
    this.name = 'GitopsError';
  }
}
