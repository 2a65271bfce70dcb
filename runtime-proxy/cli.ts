import type { Command } from 'commander';
import { createAuthenticator, type AuthnConfig } from './authn/index.ts';
import { ConfigError, loadConfig } from './config.ts';
import { PortcullisProxy } from './server.ts';

/** Registers `portcullis proxy`. */
export function registerProxyCommands(program: Command): void {
  program
    .command('proxy')
    .description('Run the runtime proxy: authenticate, authorize from the signed bundle, impersonate, audit')
    .requiredOption('--config <file>', 'proxy configuration (YAML)')
    .action(async (o: { config: string }) => {
      await runProxy(o.config);
    });
}

/** `portcullis proxy --config FILE`: runs until SIGTERM/SIGINT, then drains and flushes the audit log. */
export async function runProxy(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  let authenticator;
  try {
    authenticator = createAuthenticator(config.authn as unknown as AuthnConfig);
  } catch (err) {
    throw new ConfigError(`${configFile}: authn: ${(err as Error).message}`);
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
