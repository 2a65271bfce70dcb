import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { PolicyRule } from '../core/index.ts';
import { catalogFromDiscovery, type Catalog, type DiscoveryDocument } from './catalog.ts';

const run = promisify(execFile);

/** Reads raw API paths from a live cluster; the adapter at the edge. */
export type RawGetter = (path: string) => Promise<string>;

/** A RawGetter through real kubectl with the given kubeconfig. */
export function kubectlGetter(kubectl: string, kubeconfig: string): RawGetter {
  return async (path) => (await run(kubectl, ['--kubeconfig', kubeconfig, 'get', '--raw', path], { maxBuffer: 64 << 20 })).stdout;
}

/** Fetches every served group version's discovery document and merges them into a catalog. */
export async function discoverCatalog(get: RawGetter): Promise<Catalog> {
  const version = JSON.parse(await get('/version')) as { gitVersion: string };
  const docs: DiscoveryDocument[] = [JSON.parse(await get('/api/v1')) as DiscoveryDocument];
  const groups = JSON.parse(await get('/apis')) as { groups: { versions: { groupVersion: string }[] }[] };
  for (const g of groups.groups) {
    for (const v of g.versions) docs.push(JSON.parse(await get(`/apis/${v.groupVersion}`)) as DiscoveryDocument);
  }
  return catalogFromDiscovery(version.gitVersion, docs);
}

/** The rules of the built-in view/edit/admin roles. */
export interface BootstrapRoles {
  readonly kubernetesVersion: string;
  readonly view: readonly PolicyRule[];
  readonly edit: readonly PolicyRule[];
  readonly admin: readonly PolicyRule[];
}

interface ClusterRoleJson {
  metadata: { name: string; labels?: Record<string, string> };
  rules?: PolicyRule[];
  aggregationRule?: { clusterRoleSelectors?: { matchLabels?: Record<string, string> }[] };
}

/**
 * The rules view, edit and admin end up with, computed as the ClusterRole
 * aggregation controller does (the union of the roles their selectors match,
 * in name order, without duplicates) — so it needs no controller-manager.
 */
export function aggregateBootstrapRoles(kubernetesVersion: string, roles: readonly ClusterRoleJson[]): BootstrapRoles {
  const byName = new Map(roles.map((r) => [r.metadata.name, r]));
  const rulesOf = (name: string, seen: ReadonlySet<string>): PolicyRule[] => {
    const role = byName.get(name);
    if (!role || seen.has(name)) return [];
    if (!role.aggregationRule) return role.rules ?? [];
    const out: PolicyRule[] = [];
    for (const sel of role.aggregationRule.clusterRoleSelectors ?? []) {
      const labels = Object.entries(sel.matchLabels ?? {});
      for (const r of [...byName.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))) {
        if (r.metadata.name === name || !labels.every(([k, v]) => r.metadata.labels?.[k] === v)) continue;
        for (const rule of rulesOf(r.metadata.name, new Set([...seen, name]))) {
          if (!out.some((x) => JSON.stringify(x) === JSON.stringify(rule))) out.push(rule);
        }
      }
    }
    return out;
  };
  return { kubernetesVersion, view: rulesOf('view', new Set()), edit: rulesOf('edit', new Set()), admin: rulesOf('admin', new Set()) };
}

/** Fetches the bootstrap ClusterRoles from a live cluster and aggregates view, edit and admin. */
export async function discoverBootstrapRoles(get: RawGetter): Promise<BootstrapRoles> {
  const version = JSON.parse(await get('/version')) as { gitVersion: string };
  const list = JSON.parse(await get('/apis/rbac.authorization.k8s.io/v1/clusterroles')) as { items: ClusterRoleJson[] };
  return aggregateBootstrapRoles(version.gitVersion, list.items);
}
