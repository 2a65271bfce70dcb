/** Stable codes of the demo's failures. */
export type DemoErrorCode = 'CHECKS_FAILED' | 'STEP_FAILED';

/** The demo could not run a step, or a scripted check did not end as the policy says. */
export class DemoError extends Error {
  constructor(
    readonly code: DemoErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DemoError';
  }
}
