import { spawn } from 'node:child_process';
import { BUNDLE_CONFIGMAP, decodeRuleSet, ENVELOPE_FILE, MANAGED_BY, POLICY_COMMIT_ANNOTATION, PROXY_NAMESPACE, type RuleSet } from '../core/index.ts';
import { readStatement } from './generated.ts';
import { GitopsError } from './gitops-error.ts';
import { FIELD_MANAGER, MANAGED_KINDS, kindRank, type KubeObject } from './objects.ts';
import type { BundleFiles, LiveCluster } from './plan.ts';

/** Where the proxy reads its bundle from (docs/design.md): the ConfigMap holding the bundle's three files, keyed by file name. */
export const BUNDLE_NAMESPACE = PROXY_NAMESPACE;
export { BUNDLE_CONFIGMAP };
/** Objects per kubectl process below which a kind is applied by one process. */
const CHUNK = 100;

/** The field manager for the bundle delivery, so it never takes over fields of the managed objects. */
export const BUNDLE_FIELD_MANAGER = 'portcullis-bundle';

/** A cluster's live bundle as read from the ConfigMap. */
export interface LiveBundle {
  readonly revision: number | null;
  readonly files: BundleFiles;
  readonly ruleSet: RuleSet | undefined;
  readonly envelope: string | undefined;
}

/** How a bundle is delivered. */
export interface DeliverOptions {
  readonly dryRun: boolean;
  /** The git commit generated/ is applied from; the proxy copies it into its audit records. */
  readonly commit?: string;
}

/** The side effects plan and apply need from one cluster. */
export interface ClusterClient {
  readonly name: string;
  /** Every object of a managed kind carrying the managed-by label. */
  listManaged(): Promise<KubeObject[]>;
  /** The bundle the cluster's proxy serves, or null. */
  readBundle(): Promise<LiveBundle | null>;
  /** Server-side apply with the fixed field manager, forcing conflicts so drift is reverted. */
  apply(objects: readonly KubeObject[], opts: { readonly dryRun: boolean }): Promise<void>;
  /** Deletes the given objects (in the given order). */
  delete(objects: readonly KubeObject[], opts: { readonly dryRun: boolean }): Promise<void>;
  /** Writes the bundle files to the ConfigMap, creating the namespace if needed, annotated with the commit if given. */
  deliverBundle(files: BundleFiles, opts: DeliverOptions): Promise<void>;
  /** Whether a namespace exists (for dry runs, where a namespace to be created is not there yet). */
  namespaceExists(name: string): Promise<boolean>;
}

/** Reads a cluster's live state through a client. */
export async function readLive(client: ClusterClient): Promise<LiveCluster & { readonly bundle: LiveBundle | null }> {
  const [objects, bundle] = await Promise.all([client.listManaged(), client.readBundle()]);
  // An object being deleted (a Terminating namespace) is already on its way out.
  return { name: client.name, objects: objects.filter((o) => o.metadata['deletionTimestamp'] === undefined), bundle };
}

/** Runs kubectl as the cluster's admin. Thin: every decision is made elsewhere. */
export class KubectlClient implements ClusterClient {
  constructor(
    readonly name: string,
    private readonly kubeconfig: string,
    private readonly kubectl = 'kubectl',
    private readonly timeoutSeconds = 20,
    /** kubectl processes at once per kind while applying. */
    private readonly parallel = 3,
  ) {}

  async listManaged(): Promise<KubeObject[]> {
    const kinds = MANAGED_KINDS.map((k) => (k.group ? `${k.resource}.${k.group}` : k.resource)).join(',');
    const out = await this.run(['get', kinds, '--all-namespaces', '-l', `${MANAGED_BY.key}=${MANAGED_BY.value}`, '-o', 'json', '--show-managed-fields=true']);
    const list = JSON.parse(out) as { items?: KubeObject[] };
    return list.items ?? [];
  }

  async readBundle(): Promise<LiveBundle | null> {
    const out = await this.run(['get', 'configmap', BUNDLE_CONFIGMAP, '-n', BUNDLE_NAMESPACE, '-o', 'json', '--ignore-not-found']);
    if (out.trim() === '') return null;
    const cm = JSON.parse(out) as { data?: Record<string, string> };
    const files = { ...(cm.data ?? {}) };
    const envelope = files[ENVELOPE_FILE];
    let ruleSet: RuleSet | undefined;
    try {
      ruleSet = files['rules.json'] === undefined ? undefined : decodeRuleSet(files['rules.json']);
    } catch {
      ruleSet = undefined;
    }
    return { revision: envelope === undefined ? null : (readStatement(envelope)?.revision ?? null), files, ruleSet, envelope };
  }

  async apply(objects: readonly KubeObject[], opts: { readonly dryRun: boolean }): Promise<void> {
    if (objects.length === 0) return;
    // Kinds strictly in order (namespaces, then service accounts and roles, then bindings);
    // within a kind, up to `parallel` kubectl processes on chunks of at least CHUNK objects.
    const byRank = new Map<number, KubeObject[]>();
    for (const o of objects) {
      const r = kindRank(o.kind);
      byRank.set(r, [...(byRank.get(r) ?? []), o]);
    }
    const args = ['apply', '--server-side', `--field-manager=${FIELD_MANAGER}`, '--force-conflicts', ...(opts.dryRun ? ['--dry-run=server'] : []), '-o', 'name', '-f', '-'];
    for (const rank of [...byRank.keys()].sort((a, b) => a - b)) {
      const list = byRank.get(rank) ?? [];
      const n = Math.max(1, Math.min(this.parallel, Math.ceil(list.length / CHUNK)));
      const size = Math.ceil(list.length / n);
      const chunks = Array.from({ length: n }, (_, i) => list.slice(i * size, (i + 1) * size)).filter((c) => c.length);
      await Promise.all(chunks.map((c) => this.run(args, documents(c))));
    }
  }

  async delete(objects: readonly KubeObject[], opts: { readonly dryRun: boolean }): Promise<void> {
    if (objects.length === 0) return;
    for (const o of objects) {
      if (!MANAGED_KINDS.some((m) => m.kind === o.kind)) throw new GitopsError('KUBECTL_FAILED', `refusing to delete ${o.kind} ${o.metadata.name}: not a managed kind`);
    }
    // One kubectl call; it deletes in the order given (bindings before roles before namespaces).
    // The objects come from the managed-by listing, so only managed objects are ever deleted.
    const refs = objects.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) } }));
    await this.run(['delete', '--ignore-not-found', '--wait=false', ...(opts.dryRun ? ['--dry-run=server'] : []), '-f', '-'], documents(refs));
  }

  async deliverBundle(files: BundleFiles, opts: DeliverOptions): Promise<void> {
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: BUNDLE_NAMESPACE } };
    // Server-side apply: a delivery without a commit also drops the previous one's annotation.
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: BUNDLE_CONFIGMAP,
        namespace: BUNDLE_NAMESPACE,
        labels: { 'app.kubernetes.io/part-of': 'portcullis' },
        ...(opts.commit !== undefined ? { annotations: { [POLICY_COMMIT_ANNOTATION]: opts.commit } } : {}),
      },
      data: files,
    };
    const dry = opts.dryRun ? ['--dry-run=server'] : [];
    const base = ['apply', '--server-side', `--field-manager=${BUNDLE_FIELD_MANAGER}`, '--force-conflicts', ...dry, '-o', 'name', '-f', '-'];
    if (!(await this.namespaceExists(BUNDLE_NAMESPACE))) {
      await this.run(base, documents([ns]));
      if (opts.dryRun) return; // the ConfigMap cannot be dry-run into a namespace that does not exist yet
    }
    await this.run(base, documents([cm]));
  }

  async namespaceExists(name: string): Promise<boolean> {
    const out = await this.run(['get', 'namespace', name, '--ignore-not-found', '-o', 'name']);
    return out.trim() !== '';
  }

  /** Runs kubectl; an error names the cluster and says whether it could not be reached. */
  run(args: readonly string[], stdin?: string): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(this.kubectl, ['--kubeconfig', this.kubeconfig, `--request-timeout=${this.timeoutSeconds}s`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => reject(new GitopsError('KUBECTL_FAILED', `${this.name}: cannot run ${this.kubectl}: ${e.message}`)));
      child.on('close', (code) => {
        const stderr = Buffer.concat(err).toString('utf8').trim();
        if (code === 0) return resolvePromise(Buffer.concat(out).toString('utf8'));
        const unreachable = /connection refused|no such host|i\/o timeout|Unable to connect to the server|dial tcp|context deadline exceeded|TLS handshake timeout|connect: /i.test(stderr);
        reject(new GitopsError(unreachable ? 'CLUSTER_UNREACHABLE' : 'KUBECTL_FAILED', `${this.name}: kubectl ${args[0] ?? ''} failed: ${stderr.split('\n').slice(-5).join(' | ')}`));
      });
      child.stdin.on('error', () => {});
      child.stdin.end(stdin ?? '');
    });
  }
}

/**
 * Objects as kubectl reads them: one JSON document each. kubectl parses YAML 1.1, where an
 * unquoted `y`, `no` or `on` is a boolean; in JSON every string is quoted, so a label value such
 * as `on` reaches the cluster as the string it is.
 */
function documents(objects: readonly object[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n---\n');
}
