/** Stable codes for every way a laptop-side command (kubeconfig, break-glass) refuses or fails. */
export type ClientErrorCode =
  /** An argument or file the user must fix (a duration, a missing generated/, a kubeconfig without the cluster). */
  | 'BAD_INPUT'
  /** The identity has no access anywhere: there is nothing to write. */
  | 'NO_ACCESS'
  /** The proxy refused the request. */
  | 'REFUSED';

/** A laptop-side command refused or failed; the message says how to fix it. */
export class ClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}
