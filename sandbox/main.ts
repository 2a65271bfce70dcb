// Standalone entry for the sandbox commands (`node bin/run-ts.js sandbox/main.ts up|status|down …`):
// the test runner and CI start the fleet through it, so they depend only on sandbox/.
import { Command, CommanderError } from 'commander';
import { registerSandboxCommands } from './cli.ts';
import { SandboxError } from './errors.ts';

const program = new Command('portcullis').exitOverride();
registerSandboxCommands(program);
try {
  await program.parseAsync(['sandbox', ...process.argv.slice(2)], { from: 'user' });
} catch (err) {
  if (err instanceof SandboxError) {
    process.stderr.write(`portcullis sandbox: ${err.message}\n`);
    process.exitCode = 1;
  } else if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`portcullis sandbox: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
}
