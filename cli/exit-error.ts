/** Thrown by a command to end with a given exit code and a message that says how to fix the problem. */
export class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ExitError';
  }
}
