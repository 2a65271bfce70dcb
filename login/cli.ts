import type { Command } from 'commander';
import { login, logout } from './commands.ts';
import { lock, locks, unlock } from './lock-commands.ts';
import { execCredential } from './credential.ts';
import { decide, endActivation, listActivations, listRequests, requestAccess } from './request-commands.ts';

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
    .command('credential')
    .description("kubectl's exec credential plugin (client.authentication.k8s.io/v1): the identity provider's own ID token, cached and renewed by signing in again, for those who prefer it to a session")
    .requiredOption('--proxy <url>', "the proxy's URL (it names the identity provider)")
    .option('--ca <pem>', 'a CA bundle to trust for the proxy and the identity provider')
    .option('--device', 'sign in with the device flow when a new token is needed')
    .action(async (o: { proxy: string; ca?: string; device?: boolean }) => void process.stdout.write(`${await execCredential({ proxy: o.proxy, device: o.device === true, ...(o.ca !== undefined ? { ca: o.ca } : {}) }, say)}\n`));
  program
    .command('logout')
    .description('End the session on every proxy replica; its kubeconfig stops working at once')
    .action(async () => logout(say));
  program
    .command('lock')
    .description('Cut a person, a group, a cluster or a grant off on every replica within a second: new requests refused, live watches, execs and port-forwards closed, sessions ended (who may: Roles.locker in the policy)')
    .option('--user <name>', 'a person, with the prefix (oidc:alice@acme.example)')
    .option('--group <name>', 'a group the policy names (oidc:contractors)')
    .option('--cluster <name>', 'a whole cluster')
    .option('--grant <id>', 'everything one grant allows')
    .option('--reason <text>', 'why (recorded, audited, shown to whoever is refused)')
    .option('--expires <duration>', 'lift it by itself after this long (30m, 2h); default: until unlock')
    .action(async (o: { user?: string; group?: string; cluster?: string; grant?: string; reason?: string; expires?: string }) => void process.stdout.write(`${await lock(o)}\n`));
  program
    .command('unlock')
    .description('Lift a lock')
    .argument('<id>', 'the lock id (portcullis locks lists them)')
    .action(async (id: string) => void process.stdout.write(`${await unlock(id)}\n`));
  const print = (s: string): void => void process.stdout.write(`${s}\n`);
  program
    .command('request')
    .description('Ask for a requestable grant (approval in the policy) for a while, with a reason; someone the grant names as approver, never you, approves it')
    .requiredOption('--grant <id>', 'the grant')
    .requiredOption('--cluster <name>', 'the cluster')
    .requiredOption('--reason <text>', 'why (recorded, audited, sent to the approvers)')
    .option('--duration <d>', "how long, e.g. 2h (default: the grant's maxDuration)")
    .action(async (o: { grant: string; cluster: string; reason: string; duration?: string }) => print(await requestAccess(o)));
  program
    .command('approve')
    .description('Approve an access request (you must be one of its approvers, and not its requester)')
    .argument('<id>', 'the request id (portcullis requests lists them)')
    .action(async (id: string) => print(await decide(id, true)));
  program
    .command('deny')
    .description('Deny an access request')
    .argument('<id>', 'the request id')
    .action(async (id: string) => print(await decide(id, false)));
  program
    .command('requests')
    .description('Your access requests, and those you may approve')
    .action(async () => print(await listRequests()));
  program
    .command('activations')
    .description('Access active now through break-glass or approved requests: yours, and what you approve')
    .action(async () => print(await listActivations()));
  program
    .command('end')
    .description('End an activation (break-glass or an approved request) before its time')
    .requiredOption('--cluster <name>', 'the cluster')
    .requiredOption('--grant <id>', 'the grant')
    .option('--user <name>', 'whose (approvers may end what they approved; default: yours)')
    .action(async (o: { cluster: string; grant: string; user?: string }) => print(await endActivation(o)));
  program
    .command('locks')
    .description('The locks in force: who set each, when, why and until when')
    .action(async () => void process.stdout.write(`${await locks()}\n`));
}
