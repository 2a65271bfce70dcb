import type { Command } from 'commander';
import { breakGlassCommand } from './break-glass.ts';
import { kubeconfigCommand, type KubeconfigOptions } from './kubeconfig-command.ts';
import { sessionKubeconfig } from '../login/commands.ts';
import { writeSecret } from '../login/session-file.ts';

/** Registers the laptop-side commands: `portcullis kubeconfig` and `portcullis break-glass`. */
export function registerClientCommands(program: Command): void {
  program
    .command('kubeconfig')
    .description('Write one kubeconfig for the fleet: a context for each cluster the identity can reach through the proxy, and only those.')
    .option('--user <name>', 'username as the policy names it, with its prefix (e.g. oidc:alice), for a kubelogin kubeconfig from generated/; without it, the kubeconfig of your `portcullis login` session, from the proxy')
    .option('--group <group>', 'a group of the user, with its prefix (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--generated <dir>', 'the compiler output directory', 'generated')
    .option('--proxy-url <url>', "the proxy's base URL; servers become <url>/clusters/<name> (default: proxyUrl from fleet.json)")
    .option('--host-template <url>', "per-cluster host names instead of paths: e.g. https://{cluster}.portcullis.example (the proxy's clusters[].hostnames)")
    .option('--proxy-ca <file>', "PEM of the CA of the proxy's serving certificate (default: the system trust store)")
    .option('--issuer-url <url>', 'OIDC issuer for kubelogin (default: the fleet.json identity provider whose prefix the user has)')
    .option('--client-id <id>', 'OIDC client id of the kubectl login', 'portcullis')
    .option('--out <file>', 'write here instead of stdout')
    .action(async (opts: Omit<KubeconfigOptions, 'user'> & { user?: string }) => {
      const text = opts.user === undefined ? await sessionKubeconfig() : kubeconfigCommand({ ...opts, user: opts.user }, Date.now());
      // It may hold a session credential: 0600, replacing the file (an existing file's mode would stay).
      if (opts.out !== undefined) writeSecret(opts.out, text);
      else process.stdout.write(text);
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
