/** Stable codes for every way a compiler command refuses or fails; the CLI maps them to exit codes (cli/exit-codes.ts). */
export type CompilerErrorCode =
  /** An argument the command cannot use (a time, a duration). */
  | 'BAD_ARGUMENT'
  /** The policy has problems; each was printed with file:line, nothing was written. */
  | 'POLICY_PROBLEMS'
  /** generated/ differs from what the policy compiles to, or a bundle does not verify. */
  | 'GENERATED_STALE'
  /** generated/ is current, but a bundle is past its notAfter. */
  | 'BUNDLE_EXPIRED'
  /** No signing key, or one that cannot be read. */
  | 'SIGNING_KEY'
  /** keygen would overwrite a key or write one where it would be committed. */
  | 'KEY_REFUSED'
  /** verify refused a bundle (its BundleError code is in the message). */
  | 'BUNDLE_INVALID'
  /** A question about a cluster or a revision the output does not have. */
  | 'NOT_FOUND';

/** A compiler command refused or failed; the message says how to fix it. */
export class CompilerError extends Error {
  constructor(
    readonly code: CompilerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CompilerError';
  }
}
