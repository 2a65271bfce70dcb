import type { Command } from 'commander';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitError } from '../cli/exit-error.ts';
import { decodeRuleSet, type RuleSet } from '../core/index.ts';
import { buildKubeconfig, renderKubeconfig, type FleetFile } from './kubeconfig.ts';

/** Options of `portcullis kubeconfig`. */
export interface KubeconfigOptions {
  readonly user: string;
  readonly group: readonly string[];
  readonly generated: string;
  readonly proxyUrl?: string;
  readonly hostTemplate?: string;
  readonly proxyCa?: string;
  readonly issuerUrl?: string;
  readonly clientId: string;
  readonly out?: string;
}

/** Registers `portcullis kubeconfig`. */
export function registerKubeconfigCommands(program: Command): void {
  program
    .command('kubeconfig')
    .description('Write one kubeconfig for the fleet: a context for each cluster the identity can reach through the proxy, and only those.')
    .requiredOption('--user <name>', 'username as the policy names it, with its prefix (e.g. oidc:alice)')
    .option('--group <group>', 'a group of the user, with its prefix (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--generated <dir>', 'the compiler output directory', 'generated')
    .option('--proxy-url <url>', "the proxy's base URL; servers become <url>/clusters/<name> (default: proxyUrl from fleet.json)")
    .option('--host-template <url>', "per-cluster host names instead of paths: e.g. https://{cluster}.portcullis.example (the proxy's clusters[].hostnames)")
    .option('--proxy-ca <file>', "PEM of the CA of the proxy's serving certificate (default: the system trust store)")
    .option('--issuer-url <url>', 'OIDC issuer for kubelogin (default: the fleet.json identity provider whose prefix the user has)')
    .option('--client-id <id>', 'OIDC client id of the kubectl login', 'portcullis')
    .option('--out <file>', 'write here instead of stdout')
    .action(async (opts: KubeconfigOptions) => {
      const text = kubeconfigCommand(opts, Date.now());
      if (opts.out !== undefined) writeFileSync(opts.out, text, { mode: 0o600 });
      else process.stdout.write(text);
    });
}

/** Reads `generated/`, builds the kubeconfig and returns its YAML; throws ExitError with a fix-it message. */
export function kubeconfigCommand(opts: KubeconfigOptions, now: number): string {
  const fleetPath = join(opts.generated, 'fleet.json');
  if (!existsSync(fleetPath)) throw new ExitError(2, `${fleetPath} not found: run \`portcullis compile\` first, or pass --generated DIR`);
  const fleetJson = JSON.parse(readFileSync(fleetPath, 'utf8')) as FleetFile & Record<string, unknown>;
  if (!Array.isArray(fleetJson.clusters)) throw new ExitError(2, `${fleetPath} has no clusters list`);
  // The kubeconfig is a convenience, not a security boundary (the proxy decides every
  // request from the verified bundle), so rules.json is read without verifying the signature.
  const ruleSets = new Map<string, RuleSet>();
  for (const c of fleetJson.clusters) {
    const p = join(opts.generated, c.name, 'rules.json');
    if (!existsSync(p)) continue;
    try {
      ruleSets.set(c.name, decodeRuleSet(readFileSync(p, 'utf8')));
    } catch (err) {
      throw new ExitError(2, `${p}: ${(err as Error).message}; recompile with \`portcullis compile\``);
    }
  }
  const issuerUrl = opts.issuerUrl ?? issuerFor(opts.user, fleetJson);
  if (issuerUrl === undefined) throw new ExitError(2, `no identity provider in ${fleetPath} has a prefix of ${opts.user}; pass --issuer-url`);
  let proxyCaPem: string | undefined;
  if (opts.proxyCa !== undefined) {
    if (!existsSync(opts.proxyCa)) throw new ExitError(2, `--proxy-ca ${opts.proxyCa} not found`);
    proxyCaPem = readFileSync(opts.proxyCa, 'utf8');
  }
  if (opts.proxyUrl !== undefined && opts.hostTemplate !== undefined) throw new ExitError(2, 'pass --proxy-url or --host-template, not both');
  let config;
  try {
    config = buildKubeconfig({
      identity: { user: opts.user, groups: opts.group },
      fleet: fleetJson,
      ruleSets,
      login: { issuerUrl, clientId: opts.clientId },
      now,
      ...(opts.proxyUrl !== undefined ? { proxyUrl: opts.proxyUrl } : {}),
      ...(opts.hostTemplate !== undefined ? { hostTemplate: opts.hostTemplate } : {}),
      ...(proxyCaPem !== undefined ? { proxyCaPem } : {}),
    });
  } catch (err) {
    throw new ExitError(2, err instanceof Error ? err.message : String(err));
  }
  if (config.contexts.length === 0) {
    throw new ExitError(1, `no cluster grants anything to ${[opts.user, ...opts.group].join(', ')}; check the names carry their prefix (e.g. oidc:alice)`);
  }
  return renderKubeconfig(config);
}

/** The issuer of the identity provider whose username prefix `user` carries (longest prefix wins). */
function issuerFor(user: string, fleet: Record<string, unknown>): string | undefined {
  const lists = ['identityProviders', 'identities', 'issuers'].map((k) => fleet[k]).filter(Array.isArray) as unknown[][];
  let best: { issuer: string; prefix: string } | undefined;
  for (const list of lists) {
    for (const p of list) {
      const o = p as { issuer?: unknown; usernamePrefix?: unknown };
      if (typeof o.issuer !== 'string' || typeof o.usernamePrefix !== 'string' || o.usernamePrefix === '') continue;
      if (user.startsWith(o.usernamePrefix) && (!best || o.usernamePrefix.length > best.prefix.length)) best = { issuer: o.issuer, prefix: o.usernamePrefix };
    }
  }
  return best?.issuer;
}
