import type { Command } from 'commander';
import { DEFAULT_RENEW_WITHIN, runCompile, runDiscover, runKeygen, runVerify } from './commands.ts';
import { runTest } from './assertions-cli.ts';
import { runDiffAccess, runExplain, runWhoCan } from './questions-cli.ts';

/** Registers compile, keygen, verify, discover, who-can, explain, diff-access and test. */
export function registerCompilerCommands(program: Command): void {
  program
    .command('compile')
    .description('compile policies/ into generated/: per-cluster RBAC, rule set and signed bundle')
    .option('--policies <dir>', 'policy sources', 'policies')
    .option('--out <dir>', 'output directory', 'generated')
    .option('--check', 'exit 1 if generated/ is stale or does not verify, 3 if a bundle has expired; warn of bundles due for renewal; writes nothing')
    .option('--renew', 'new revisions with a fresh expiry for every cluster')
    .option('--renew-within <duration>', `new revisions with a fresh expiry for bundles that expire within DURATION (with --check: what counts as due; default ${DEFAULT_RENEW_WITHIN})`)
    .option('--now <time>', 'the time to compile at (RFC 3339), for reproducing a past compile')
    .option('--no-typecheck', 'skip type-checking the policies')
    .action(async (o) => runCompile(o));
  program
    .command('keygen')
    .description('generate an Ed25519 bundle signing key (never store it under generated/)')
    .requiredOption('--out <file>', 'private key path; the public key goes next to it as .pub.pem')
    .action((o) => runKeygen(o));
  program
    .command('verify')
    .description("verify a cluster's signed bundle")
    .requiredOption('--cluster <name>', 'the cluster the bundle must be bound to')
    .option('--generated <dir>', 'generated directory', 'generated')
    .option('--dir <dir>', 'bundle directory (default GENERATED/CLUSTER)')
    .option('--key <pem...>', 'trusted public keys (default GENERATED/keys/*.pem)')
    .option('--min-revision <n>', 'refuse older revisions (rollback)', '0')
    .option('--now <time>', 'verify as of this time (RFC 3339), e.g. what a proxy will say on that date')
    .action((o) => runVerify(o));
  program
    .command('discover')
    .description("refresh a cluster's API resource catalog from a live cluster")
    .requiredOption('--kubeconfig <file>', 'kubeconfig of the live cluster')
    .option('--cluster <name>', 'write generated/catalog/NAME.json')
    .option('--generated <dir>', 'generated directory', 'generated')
    .option('--kubectl <path>', 'kubectl binary', 'kubectl')
    .option('--bootstrap-roles <file>', "also write Kubernetes' aggregated view/edit/admin rules to FILE")
    .action(async (o) => runDiscover(o));
  program
    .command('who-can')
    .description('list the subjects that may VERB RESOURCE, and the grants that let them')
    .argument('<verb>')
    .argument('<resource>', 'resource[.group][/subresource], e.g. pods, deployments.apps, pods/exec')
    .requiredOption('--cluster <name>')
    .option('-n, --namespace <ns>', 'namespace ("" for cluster-scoped)', '')
    .option('--name <name>', 'object name', '')
    .option('--generated <dir>', 'generated directory', 'generated')
    .option('--now <time>', 'evaluate conditions at this time')
    .action((verb, resource, o) => runWhoCan(verb, resource, o));
  program
    .command('explain')
    .description('decide a request as the proxy would, and name the grant or deny behind it')
    .requiredOption('--user <name>')
    .option('--group <name...>', 'groups', [])
    .requiredOption('--cluster <name>')
    .option('--generated <dir>', 'generated directory', 'generated')
    .option('--now <time>', 'evaluate conditions at this time')
    .option('--break-glass <grant...>', 'treat these break-glass grants as invoked', [])
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path, e.g. /api/v1/namespaces/shop/secrets')
    .action((method, path, o) => runExplain(method, path, o));
  program
    .command('diff-access')
    .description('who gains or loses which verbs on which resources where, between two git revisions')
    .argument('<base>', 'git revision')
    .argument('<head>', 'git revision (or WORKTREE for the working tree)')
    .option('--generated <dir>', 'generated directory', 'generated')
    .option('--format <fmt>', 'text, markdown or json', 'text')
    .action((base, head, o) => runDiffAccess(base, head, o));
  program
    .command('test')
    .description('check the policy assertions (policies/**/*.assert.ts) against the signed bundles in generated/; exit 1 if one fails')
    .option('--policies <dir>', 'policy sources', 'policies')
    .option('--generated <dir>', 'generated directory', 'generated')
    .option('--now <time>', 'the time claims of present access are checked at (RFC 3339)')
    .action(async (o) => runTest(o));
}
