import { Command } from 'commander';
import { PRODUCT_VERSION } from '../core/version.ts';
import { registerAgentCommand } from './cli.ts';

/** `portcullis agent` on its own: the in-cluster process loads the agent, not the compiler and the rest of the CLI. */
export async function main(argv: readonly string[], _name = 'portcullis'): Promise<number> {
  const program = new Command('portcullis').version(PRODUCT_VERSION, '--version', 'print the version').exitOverride().showHelpAfterError();
  registerAgentCommand(program);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (err) {
    // commander's own exits (--help, a missing option) have printed already.
    const code = (err as { exitCode?: number }).exitCode;
    if (typeof code === 'number') return code;
    process.stderr.write(`portcullis agent: ${(err as Error).message}\n`);
    return 1;
  }
}
