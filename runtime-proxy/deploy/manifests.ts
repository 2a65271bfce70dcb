import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { keyIdOf } from '../../core/index.ts';
import type { IssuerConfig } from '../authn/index.ts';
import { ConfigError, parseConfig } from '../config.ts';
import { inClusterProxyConfig } from './in-cluster-config.ts';
import { synthProxyChart, type ProxyChartProps } from './proxy-chart.ts';

/** Options of `portcullis proxy manifests`. */
export interface ManifestsOptions {
  /** The compiler's output directory (fleet.json, keys/). */
  readonly generated: string;
  /** The cluster the proxy is deployed to and fronts. */
  readonly cluster: string;
  /** The proxy image (packaging/Containerfile). */
  readonly image: string;
  /** `aud` values the proxy accepts from every issuer. */
  readonly audiences: readonly string[];
  /** The claim people's groups come in. */
  readonly groupsClaim: string;
  readonly replicas?: number;
  readonly serviceType?: ProxyChartProps['serviceType'];
}

/** What the command reads of fleet.json. */
interface FleetJson {
  readonly clusters?: readonly { readonly name?: unknown; readonly proxyUrl?: unknown }[];
  readonly identityProviders?: readonly { readonly issuer?: unknown; readonly usernamePrefix?: unknown; readonly groupsPrefix?: unknown }[];
}

/**
 * The proxy's chart for one cluster, as YAML, from what the compiler wrote: the issuers of the
 * policy's identity providers (with their prefixes, so names match the policy's subjects), the
 * trusted bundle keys (key ids computed from the keys), and the cluster's host name when its
 * `proxyUrl` is a host of its own (docs/addressing.md). The configuration is checked by the
 * proxy's own parser before anything is printed.
 */
export function proxyManifests(o: ManifestsOptions): string {
  const fleetPath = join(o.generated, 'fleet.json');
  if (!existsSync(fleetPath)) throw new ConfigError(`${fleetPath} not found: run \`portcullis compile\` first, or pass --generated DIR`);
  const fleet = JSON.parse(readFileSync(fleetPath, 'utf8')) as FleetJson;
  const cluster = (fleet.clusters ?? []).find((c) => c.name === o.cluster);
  if (!cluster) {
    const names = (fleet.clusters ?? []).map((c) => String(c.name)).join(', ');
    throw new ConfigError(`cluster ${o.cluster} is not in ${fleetPath} (it has ${names || 'none'})`);
  }
  const issuers: IssuerConfig[] = (fleet.identityProviders ?? []).map((p) => {
    if (typeof p.issuer !== 'string' || typeof p.usernamePrefix !== 'string') throw new ConfigError(`${fleetPath}: an identity provider without issuer or usernamePrefix`);
    return {
      issuer: p.issuer,
      audiences: [...o.audiences],
      usernamePrefix: p.usernamePrefix,
      groupsClaim: o.groupsClaim,
      ...(typeof p.groupsPrefix === 'string' ? { groupsPrefix: p.groupsPrefix } : {}),
    };
  });
  if (issuers.length === 0) throw new ConfigError(`${fleetPath} names no identity provider: declare one with new IdentityProvider(fleet, …)`);
  const keyDir = join(o.generated, 'keys');
  const trustedKeys: Record<string, string> = {};
  for (const f of existsSync(keyDir) ? readdirSync(keyDir).filter((n) => n.endsWith('.pub.pem')).sort() : []) {
    const pem = readFileSync(join(keyDir, f), 'utf8');
    trustedKeys[keyIdOf(createPublicKey(pem))] = pem;
  }
  if (Object.keys(trustedKeys).length === 0) throw new ConfigError(`no trusted keys in ${keyDir}: the proxy would refuse every bundle`);
  const hostnames = ownHost(cluster.proxyUrl);
  const config = inClusterProxyConfig({ cluster: o.cluster, issuers, trustedKeyIds: Object.keys(trustedKeys), ...(hostnames ? { hostnames } : {}) });
  // The proxy's own parser, so a chart it would refuse to start with is never printed.
  parseConfig(JSON.stringify(config), '/', `the configuration rendered for ${o.cluster}`);
  return synthProxyChart({
    image: o.image,
    cluster: o.cluster,
    trustedKeys,
    config,
    ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
    ...(o.serviceType !== undefined ? { serviceType: o.serviceType } : {}),
  });
}

/** `[host]` when the cluster's proxyUrl is a host of its own at the root, else undefined (the /clusters prefix needs none). */
function ownHost(proxyUrl: unknown): string[] | undefined {
  if (typeof proxyUrl !== 'string' || proxyUrl === '') return undefined;
  const u = new URL(proxyUrl);
  return u.pathname.replace(/\/+$/, '') === '' ? [u.hostname.toLowerCase()] : undefined;
}
