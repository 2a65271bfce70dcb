import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { FleetCluster } from './generated.ts';
import { GitopsError } from './gitops-error.ts';

/**
 * Selects clusters: a comma-separated list of cluster names and label
 * requirements over fleet.json labels (`env=prod`, `env!=prod`, `region`).
 * A cluster is selected if its name is listed, or if there are label terms and
 * it meets all of them (label terms AND, like a Kubernetes label selector;
 * names OR). No selector selects every cluster. Pure.
 */
export function selectClusters(clusters: readonly FleetCluster[], selector: string | undefined): FleetCluster[] {
  if (selector === undefined || selector.trim() === '') return [...clusters];
  const names = new Set<string>();
  const reqs: { key: string; op: '=' | '!=' | 'exists'; value: string }[] = [];
  for (const raw of selector.split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    const m = /^([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(t);
    if (m) reqs.push({ key: m[1] ?? '', op: m[2] === '!=' ? '!=' : '=', value: m[3] ?? '' });
    else if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(t) && clusters.some((c) => c.name === t)) names.add(t);
    else if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(t)) {
      const near = clusters.map((c) => c.name).filter((n) => n.startsWith(t.slice(0, 2)));
      throw new GitopsError('SELECTOR_UNKNOWN_CLUSTER', `no cluster named ${t} in fleet.json${near.length ? `; did you mean ${near.join(' or ')}?` : ''} (clusters: ${clusters.map((c) => c.name).join(', ')})`);
    } else throw new GitopsError('SELECTOR_INVALID', `cannot read selector term "${t}"; use cluster names and key=value or key!=value labels`);
  }
  const picked = clusters.filter(
    (c) =>
      names.has(c.name) ||
      (reqs.length > 0 && reqs.every((r) => (r.op === '=' ? c.labels[r.key] === r.value : c.labels[r.key] !== r.value))),
  );
  if (picked.length === 0) throw new GitopsError('SELECTOR_EMPTY', `selector "${selector}" matches no cluster`);
  return picked;
}

/** Where to find a cluster's admin kubeconfig. */
export type Credentials = ReadonlyMap<string, { readonly kubeconfig: string }>;

/**
 * Reads a fleet credentials file: cluster name → kubeconfig path. Accepts
 * `{ "dev": "/path" }`, `{ "dev": { "kubeconfig": "/path" } }`, and the
 * sandbox's fleet file (`{ "clusters": [ { "name", "kubeconfig" | "adminKubeconfig" } ] }`
 * or the same keyed by name). Relative paths are relative to the file.
 */
export async function readCredentials(file: string): Promise<{ readonly credentials: Credentials; readonly kubectl?: string }> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new GitopsError('CREDENTIALS_MISSING', `cannot read the fleet credentials file ${file}: ${(e as Error).message}`);
  }
  // The sandbox's fleet file also names the kubectl it built.
  const kubectl = (data as { bin?: { kubectl?: unknown } } | null)?.bin?.kubectl;
  return { credentials: parseCredentials(data, dirname(resolve(file))), ...(typeof kubectl === 'string' ? { kubectl } : {}) };
}

/** Pure part of readCredentials. */
export function parseCredentials(data: unknown, baseDir: string): Credentials {
  const out = new Map<string, { kubeconfig: string }>();
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const pathOf = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      for (const k of ['kubeconfig', 'adminKubeconfig', 'kubeconfigPath']) if (typeof o[k] === 'string') return o[k] as string;
    }
    return undefined;
  };
  const root = data && typeof data === 'object' ? (data as Record<string, unknown>) : {};
  const list = root['clusters'] ?? root;
  if (Array.isArray(list)) {
    for (const e of list) {
      const name = (e as { name?: unknown })?.name;
      const p = pathOf(e);
      if (typeof name === 'string' && p) out.set(name, { kubeconfig: abs(p) });
    }
  } else if (list && typeof list === 'object') {
    for (const [name, v] of Object.entries(list as Record<string, unknown>)) {
      const p = pathOf(v);
      if (p) out.set(name, { kubeconfig: abs(p) });
    }
  }
  return out;
}

/** A kubeconfig that reaches `server` (a cluster's proxy) with a bearer token, trusting `caPem` if given. Pure. */
export function tokenKubeconfig(cluster: string, server: string, token: string, caPem: string | undefined): object {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: { server, ...(caPem?.trim() ? { 'certificate-authority-data': Buffer.from(caPem).toString('base64') } : {}) } }],
    users: [{ name: 'fleet-token', user: { token } }],
    contexts: [{ name: cluster, context: { cluster, user: 'fleet-token' } }],
    'current-context': cluster,
  };
}
