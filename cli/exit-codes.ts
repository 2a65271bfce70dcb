import { CommanderError } from 'commander';
import { ClientError, type ClientErrorCode } from '../client/client-error.ts';
import { CompilerError, type CompilerErrorCode } from '../compiler/compiler-error.ts';
import { DemoError } from '../demo/demo-error.ts';
import { GitopsError } from '../gitops/gitops-error.ts';
import { ConfigError } from '../runtime-proxy/config.ts';
import { ReplayError } from '../runtime-proxy/recording/replay.ts';
import { LoginError, type LoginErrorCode } from '../login/login-error.ts';
import { SandboxError } from '../sandbox/errors.ts';
import { ScaffoldError } from '../scaffold/init.ts';

/**
 * The CLI's exit codes, in one place. Every area throws its own coded error; this maps it.
 *
 * | code | meaning |
 * | --- | --- |
 * | 0 | success (`plan`, `diff-access`: no changes) |
 * | 1 | a failure or refusal: stale generated/, a bundle that does not verify, a cluster apply failed on, a refused break-glass |
 * | 2 | bad input the caller must fix: a proxy configuration, a kubeconfig or generated/ a laptop command cannot use (`plan`, `diff-access`: changes, as `kubectl diff`, set as their result) |
 * | 3 | `compile --check`: generated/ matches the policy, but a bundle is past its notAfter (renew it) |
 */
export const EXIT = { ok: 0, failed: 1, badInput: 2, expired: 3 } as const;

const COMPILER: Readonly<Record<CompilerErrorCode, number>> = {
  BAD_ARGUMENT: EXIT.failed,
  POLICY_PROBLEMS: EXIT.failed,
  GENERATED_STALE: EXIT.failed,
  BUNDLE_EXPIRED: EXIT.expired,
  SIGNING_KEY: EXIT.failed,
  KEY_REFUSED: EXIT.failed,
  BUNDLE_INVALID: EXIT.failed,
  NOT_FOUND: EXIT.failed,
};

const CLIENT: Readonly<Record<ClientErrorCode, number>> = {
  BAD_INPUT: EXIT.badInput,
  NO_ACCESS: EXIT.failed,
  REFUSED: EXIT.failed,
};

const LOGIN: Readonly<Record<LoginErrorCode, number>> = {
  BAD_INPUT: EXIT.badInput,
  UNREACHABLE: EXIT.failed,
  IDP: EXIT.failed,
  REFUSED: EXIT.failed,
  TIMEOUT: EXIT.failed,
  EXPIRED: EXIT.failed,
  NO_SESSION: EXIT.failed,
};

/** What the CLI prints and exits with for an error a command threw; undefined for an unexpected one (a bug). */
export function exitFor(err: unknown): { readonly code: number; readonly message: string } | undefined {
  if (err instanceof CompilerError) return { code: COMPILER[err.code], message: err.message };
  if (err instanceof GitopsError) return { code: EXIT.failed, message: err.message && `portcullis: ${err.message}` };
  if (err instanceof ClientError) return { code: CLIENT[err.code], message: err.message };
  if (err instanceof ConfigError) return { code: EXIT.badInput, message: err.message };
  if (err instanceof LoginError) return { code: LOGIN[err.code], message: `portcullis: ${err.message}` };
  if (err instanceof ReplayError) return { code: err.code === 'MISMATCH' ? EXIT.failed : EXIT.badInput, message: `portcullis replay: ${err.message}` };
  if (err instanceof SandboxError) return { code: EXIT.failed, message: `portcullis sandbox: ${err.message}` };
  if (err instanceof DemoError) return { code: EXIT.failed, message: err.message };
  if (err instanceof ScaffoldError) return { code: EXIT.failed, message: `portcullis init: ${err.message}` };
  if (err instanceof CommanderError) return { code: err.exitCode, message: '' };
  return undefined;
}
