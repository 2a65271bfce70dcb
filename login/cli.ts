import type { Command } from 'commander';
import { login, logout } from './commands.ts';

/** Registers `portcullis login` and `portcullis logout` (the session kubeconfig is `portcullis kubeconfig` without --user). */
export function registerLoginCommands(program: Command): void {
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  program
    .command('login')
    .description("Sign in through the identity provider and get a Portcullis session: plain kubectl then uses it (portcullis kubeconfig), until logout, idle timeout, its maximum lifetime or a lock")
    .requiredOption('--proxy <url>', "the proxy's URL, e.g. https://portcullis.example")
    .option('--device', 'sign in on another device (a code to type) instead of this machine\'s browser')
    .option('--no-browser', 'print the sign-in URL without opening a browser')
    .option('--ca <pem>', 'a CA bundle to trust for the proxy and the identity provider (default: the system store)')
    .action(async (o: { proxy: string; device?: boolean; browser: boolean; ca?: string }) => {
      await login({ proxy: o.proxy, device: o.device === true, browser: o.browser, ...(o.ca !== undefined ? { ca: o.ca } : {}) }, say);
    });
  program
    .command('logout')
    .description('End the session on every proxy replica; its kubeconfig stops working at once')
    .action(async () => logout(say));
}
