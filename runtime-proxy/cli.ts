import type { Command } from 'commander';
import { ExitError } from '../cli/exit-error.ts';
import { createAuthenticator, type AuthnConfig } from './authn/index.ts';
import { breakGlassCommand } from './break-glass-cli.ts';
import { ConfigError, loadConfig } from './config.ts';
import { PortcullisProxy } from './server.ts';

/** Registers `portcullis proxy` and `portcullis break-glass`. */
export function registerProxyCommands(program: Command): void {
  program
    .command('proxy')
    .description('Run the runtime proxy: authenticate, authorize from the signed bundle, impersonate, audit')
    .requiredOption('--config <file>', 'proxy configuration (YAML)')
    .action(async (o: { config: string }) => {
      await runProxy(o.config);
    });
  program
    .command('break-glass')
    .description('Invoke a break-glass grant through the proxy, for the given duration, with a reason (audited, notified)')
    .requiredOption('--cluster <name>', 'cluster (kubeconfig context of that name, or whose server ends in /clusters/<name>)')
    .requiredOption('--grant <id>', 'the break-glass grant id')
    .requiredOption('--reason <text>', 'why; recorded in the audit log and sent to the notification webhook')
    .option('--duration <d>', 'how long, e.g. 30m, 1h, 900s (default: the policy maximum)')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .action(async (o: { cluster: string; grant: string; reason: string; duration?: string; kubeconfig?: string }) => {
      process.stdout.write(`${await breakGlassCommand(o)}\n`);
    });
}

/** `portcullis proxy --config FILE`: runs until SIGTERM/SIGINT, then drains and flushes the audit log. */
export async function runProxy(configFile: string): Promise<void> {
  let config;
  try {
    config = loadConfig(configFile);
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(2, err.message);
    throw err;
  }
  let authenticator;
  try {
    authenticator = createAuthenticator(config.authn as unknown as AuthnConfig);
  } catch (err) {
    throw new ExitError(2, `${configFile}: authn: ${(err as Error).message}`);
  }
  const proxy = new PortcullisProxy({ config, authenticator });
  await proxy.start();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      proxy.log.info('signal received: draining');
      void proxy.stop().then(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
