import { createAuthenticator, type AuthnConfig } from './authn/index.ts';
import { ConfigError, loadConfig } from './config.ts';
import { collectStartupGarbage, tuneHeapForProxy } from './heap.ts';
import { PortcullisProxy } from './server.ts';

/** `portcullis proxy --config FILE`: runs until SIGTERM/SIGINT, then drains and flushes the audit log. */
export async function runProxy(configFile: string): Promise<void> {
  // The proxy's own process: V8's heap growth set for it (heap.ts, issue 18).
  tuneHeapForProxy();
  const config = loadConfig(configFile);
  let authenticator;
  try {
    authenticator = createAuthenticator(config.authn as unknown as AuthnConfig);
  } catch (err) {
    throw new ConfigError(`${configFile}: authn: ${(err as Error).message}`);
  }
  const proxy = new PortcullisProxy({ config, authenticator });
  await proxy.start();
  collectStartupGarbage();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      proxy.log.info('signal received: draining');
      void proxy.stop().then(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

/**
 * The proxy as its own program (`portcullis proxy --config FILE`, the image's command, through
 * dist/bin/portcullis.js): the exit code, as the CLI maps it (a bad configuration is 2), without
 * loading the other commands or a TypeScript loader the proxy never uses (issue 18: idle memory).
 */
export async function proxyMain(configFile: string): Promise<number> {
  // As the CLI's main: audit lines to a reader that went away (audit.stdout) end the process quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    await runProxy(configFile);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
