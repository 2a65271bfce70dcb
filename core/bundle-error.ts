/** Stable codes for every way a bundle is refused; tests assert the code. */
export type BundleErrorCode =
  | 'BUNDLE_MALFORMED'
  | 'BUNDLE_UNKNOWN_KEY'
  | 'BUNDLE_SIGNATURE'
  | 'BUNDLE_CLUSTER'
  | 'BUNDLE_EXPIRED'
  | 'BUNDLE_ROLLBACK'
  | 'BUNDLE_FILE_MISSING'
  | 'BUNDLE_FILE_UNLISTED'
  | 'BUNDLE_DIGEST';

/** A bundle was refused. */
export class BundleError extends Error {
  constructor(
    readonly code: BundleErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'BundleError';
  }
}
