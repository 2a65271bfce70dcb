/** Stable codes for every way `portcullis login`, `logout` and the session kubeconfig fail. */
export type LoginErrorCode =
  /** An argument or file the user must fix. */
  | 'BAD_INPUT'
  /** The proxy or the identity provider could not be reached. */
  | 'UNREACHABLE'
  /** The identity provider refused or answered something unusable. */
  | 'IDP'
  /** The proxy refused (an unknown identity, a session that ended). */
  | 'REFUSED'
  /** Nobody signed in in time, or the device code expired. */
  | 'TIMEOUT'
  | 'EXPIRED'
  /** There is no session: run portcullis login. */
  | 'NO_SESSION';

/** A login-side command failed; the message says how to go on. */
export class LoginError extends Error {
  constructor(
    readonly code: LoginErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LoginError';
  }
}
