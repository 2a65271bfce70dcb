import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientError } from './client-error.ts';
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

/** Reads `generated/`, builds the kubeconfig and returns its YAML; throws a ClientError with a fix-it message. */
export function kubeconfigCommand(opts: KubeconfigOptions, now: number): string {
  const fleetPath = join(opts.generated, 'fleet.json');
  if (!existsSync(fleetPath)) throw new ClientError('BAD_INPUT', `${fleetPath} not found: run \`portcullis compile\` first, or pass --generated DIR`);
  const fleetJson = JSON.parse(readFileSync(fleetPath, 'utf8')) as FleetFile & Record<string, unknown>;
  if (!Array.isArray(fleetJson.clusters)) throw new ClientError('BAD_INPUT', `${fleetPath} has no clusters list`);
  // The kubeconfig is a convenience, not a security boundary (the proxy decides every
  // request from the verified bundle), so rules.json is read without verifying the signature.
  const ruleSets = new Map<string, RuleSet>();
  for (const c of fleetJson.clusters) {
    const p = join(opts.generated, c.name, 'rules.json');
    if (!existsSync(p)) continue;
    try {
      ruleSets.set(c.name, decodeRuleSet(readFileSync(p, 'utf8')));
    } catch (err) {
      throw new ClientError('BAD_INPUT', `${p}: ${(err as Error).message}; recompile with \`portcullis compile\``);
    }
  }
  const issuerUrl = opts.issuerUrl ?? issuerFor(opts.user, fleetJson);
  if (issuerUrl === undefined) throw new ClientError('BAD_INPUT', `no identity provider in ${fleetPath} has a prefix of ${opts.user}; pass --issuer-url`);
  let proxyCaPem: string | undefined;
  if (opts.proxyCa !== undefined) {
    if (!existsSync(opts.proxyCa)) throw new ClientError('BAD_INPUT', `--proxy-ca ${opts.proxyCa} not found`);
    proxyCaPem = readFileSync(opts.proxyCa, 'utf8');
  }
  if (opts.proxyUrl !== undefined && opts.hostTemplate !== undefined) throw new ClientError('BAD_INPUT', 'pass --proxy-url or --host-template, not both');
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
    throw new ClientError('BAD_INPUT', err instanceof Error ? err.message : String(err));
  }
  if (config.contexts.length === 0) {
    throw new ClientError('NO_ACCESS', `no cluster grants anything to ${[opts.user, ...opts.group].join(', ')}; check the names carry their prefix (e.g. oidc:alice)`);
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
