import { Command, CommanderError } from 'commander';
import { ExitError } from './exit-error.ts';
import { registerCompilerCommands } from '../compiler/cli.ts';
import { registerSandboxCommands } from '../sandbox/cli.ts';
import { registerDemoCommand } from '../demo/cli.ts';
import { registerProxyCommands } from '../runtime-proxy/cli.ts';
import { registerKubeconfigCommands } from '../runtime-proxy/kubeconfig-cli.ts';
import { registerGitopsCommands } from '../gitops/cli.ts';

/** The CLI is thin: parse arguments, call a command function, map ExitError to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  // `portcullis … | head`: a reader that stops early ends the output, not in a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = new Command('portcullis')
    .description('Access policy for a fleet of Kubernetes clusters, as typed TypeScript in git.')
    .exitOverride()
    .showHelpAfterError();
  registerCompilerCommands(program);
  registerSandboxCommands(program);
  registerDemoCommand(program);
  registerProxyCommands(program);
  registerKubeconfigCommands(program);
  registerGitopsCommands(program);
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof ExitError) {
      if (err.message) process.stderr.write(`${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
