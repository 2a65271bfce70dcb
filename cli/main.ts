import { Command } from 'commander';
import { exitFor } from './exit-codes.ts';
import { PRODUCT_VERSION } from '../core/version.ts';
import { registerClientCommands } from '../client/cli.ts';
import { registerCompilerCommands } from '../compiler/cli.ts';
import { registerSandboxCommands } from '../sandbox/cli.ts';
import { registerDemoCommand } from '../demo/cli.ts';
import { registerProxyCommands } from '../runtime-proxy/cli.ts';
import { registerGitopsCommands } from '../gitops/cli.ts';
import { registerScaffoldCommands } from '../scaffold/cli.ts';
import { registerLoginCommands } from '../login/cli.ts';
import { registerAgentCommands } from '../agent/cli.ts';

/** The CLI is thin: parse arguments, call a command function, map the area's coded error to the exit code (exit-codes.ts). */
export async function main(argv: readonly string[], name = 'portcullis'): Promise<number> {
  // `portcullis … | head`: a reader that stops early ends the output, not in a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = new Command(name)
    .description('Access policy for a fleet of Kubernetes clusters, as typed TypeScript in git.')
    .version(PRODUCT_VERSION, '--version', 'print the version')
    .exitOverride()
    .showHelpAfterError();
  registerCompilerCommands(program);
  registerSandboxCommands(program);
  registerDemoCommand(program);
  registerProxyCommands(program);
  registerClientCommands(program);
  registerGitopsCommands(program);
  registerScaffoldCommands(program);
  registerLoginCommands(program);
  registerAgentCommands(program);
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const exit = exitFor(err);
    if (exit) {
      if (exit.message) process.stderr.write(`${exit.message}\n`);
      return exit.code;
    }
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
