/** Stable codes of {@link SandboxError}; tests assert these, not messages. */
export type SandboxErrorCode =
  | 'SANDBOX_GO_MISSING'
  | 'SANDBOX_GO_TOO_OLD'
  | 'SANDBOX_BUILD'
  | 'SANDBOX_BUILD_LOCK'
  | 'SANDBOX_START'
  | 'SANDBOX_NOT_RUNNING'
  | 'SANDBOX_BAD_STATE';

/** The sandbox subsystem's one error type. Messages say how to fix the problem. */
export class SandboxError extends Error {
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxError';
  }
}
