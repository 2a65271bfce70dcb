import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { decodeRuleSet, ENVELOPE_FILE, trustedKeysOf, verifyBundle, type BundleStatement, type RuleSet, type TrustedKeys } from '../core/index.ts';
import type { KubeObject } from './objects.ts';
import { GitopsError } from './gitops-error.ts';
import type { DesiredCluster } from './plan.ts';

/** A cluster as `generated/fleet.json` lists it. */
export interface FleetCluster {
  readonly name: string;
  readonly server: string;
  readonly proxyUrl: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The compiler's output directory, read: the fleet and the trusted keys. */
export interface Generated {
  readonly dir: string;
  readonly clusters: readonly FleetCluster[];
  readonly keys: TrustedKeys;
}

/** A cluster's bundle as found in `generated/<cluster>/`: every file's bytes and the (not yet verified) statement. */
export interface GeneratedBundle {
  readonly files: ReadonlyMap<string, Buffer>;
  readonly envelope: Buffer;
  readonly statement: BundleStatement;
  readonly desired: DesiredCluster;
}

/** Reads `fleet.json` and the trusted keys from `keys/*.pub.pem` (key id computed from the key, never trusted from a name). */
export async function readGenerated(dir: string, fleetFile?: string): Promise<Generated> {
  const fleetPath = fleetFile ?? join(dir, 'fleet.json');
  let fleet: unknown;
  try {
    fleet = JSON.parse(await readFile(fleetPath, 'utf8'));
  } catch (e) {
    throw new GitopsError('GENERATED_MISSING', `cannot read ${fleetPath} (${(e as Error).message}); run \`portcullis compile\` first`);
  }
  const list = (fleet as { clusters?: unknown }).clusters;
  if (!Array.isArray(list)) throw new GitopsError('GENERATED_MALFORMED', `${fleetPath} has no clusters list`);
  const clusters = list.map((c: Partial<FleetCluster>) => {
    if (typeof c?.name !== 'string') throw new GitopsError('GENERATED_MALFORMED', `${fleetPath}: a cluster without a name`);
    return { name: c.name, server: String(c.server ?? ''), proxyUrl: String(c.proxyUrl ?? ''), labels: { ...(c.labels ?? {}) } };
  });
  const keyDir = join(dir, 'keys');
  let names: string[] = [];
  try {
    names = (await readdir(keyDir)).filter((n) => n.endsWith('.pub.pem')).sort();
  } catch {
    // no keys: every bundle will fail verification with BUNDLE_UNKNOWN_KEY
  }
  const keys = trustedKeysOf(await Promise.all(names.map((n) => readFile(join(keyDir, n)))));
  return { dir, clusters, keys };
}

/** Reads `generated/<cluster>/`: the bundle files, the envelope and the desired objects and rule set. */
export async function readClusterBundle(dir: string, cluster: string): Promise<GeneratedBundle> {
  const cdir = join(dir, cluster);
  let names: string[];
  try {
    names = (await readdir(cdir)).sort();
  } catch {
    throw new GitopsError('GENERATED_MISSING', `${cdir} does not exist; run \`portcullis compile\``);
  }
  const files = new Map<string, Buffer>();
  let envelope: Buffer | undefined;
  for (const n of names) {
    const bytes = await readFile(join(cdir, n));
    if (n === ENVELOPE_FILE) envelope = bytes;
    else files.set(n, bytes);
  }
  if (!envelope) throw new GitopsError('GENERATED_MISSING', `${cdir}/${ENVELOPE_FILE} is missing; run \`portcullis compile\``);
  const statement = readStatement(envelope);
  if (!statement) throw new GitopsError('GENERATED_MALFORMED', `${cdir}/${ENVELOPE_FILE} is not a bundle envelope`);
  const rbac = files.get('rbac.yaml');
  const rules = files.get('rules.json');
  if (!rbac || !rules) throw new GitopsError('GENERATED_MISSING', `${cdir} lacks rbac.yaml or rules.json`);
  const objects = parseManifests(rbac.toString('utf8'), `${cdir}/rbac.yaml`);
  let ruleSet: RuleSet;
  try {
    ruleSet = decodeRuleSet(rules.toString('utf8'));
  } catch (e) {
    throw new GitopsError('GENERATED_MALFORMED', `${cdir}/rules.json: ${e instanceof Error ? e.message : String(e)}`);
  }
  const bundleFiles: Record<string, string> = {};
  for (const [n, b] of files) bundleFiles[n] = b.toString('utf8');
  bundleFiles[ENVELOPE_FILE] = envelope.toString('utf8');
  return { files, envelope, statement, desired: { name: cluster, objects, ruleSet, bundle: { revision: statement.revision, files: bundleFiles } } };
}

/** Reads the statement inside an envelope without verifying it (for display only), or undefined. */
export function readStatement(envelope: Uint8Array | string): BundleStatement | undefined {
  try {
    const env = JSON.parse(Buffer.from(envelope).toString('utf8')) as { payload?: unknown };
    if (typeof env.payload !== 'string') return undefined;
    const st = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as BundleStatement;
    return typeof st.revision === 'number' ? st : undefined;
  } catch {
    return undefined;
  }
}

/** Parses multi-document YAML into objects, skipping empty documents. */
export function parseManifests(text: string, where: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new GitopsError('GENERATED_MALFORMED', `${where}: ${doc.errors[0]?.message ?? 'bad YAML'}`);
    const o = doc.toJS() as KubeObject | null;
    if (o === null) continue;
    if (typeof o?.kind !== 'string' || typeof o.apiVersion !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new GitopsError('GENERATED_MALFORMED', `${where}: a document without apiVersion, kind or metadata.name`);
    }
    out.push(o);
  }
  return out;
}

/**
 * Verifies a cluster's generated bundle before it may be applied: signature
 * with the trusted keys, bound to the cluster, not expired, and newer than
 * what is live unless it is exactly what is live (core verifyBundle).
 */
export function verifyGeneratedBundle(
  b: GeneratedBundle,
  cluster: string,
  keys: TrustedKeys,
  live: { readonly revision: number | null; readonly envelope: string | undefined },
  now: number,
): BundleStatement {
  const unchanged = live.envelope !== undefined && live.envelope === b.envelope.toString('utf8');
  const minRevision = live.revision === null ? 0 : unchanged ? live.revision : live.revision + 1;
  return verifyBundle(b.envelope, b.files, keys, { cluster, now, minRevision });
}
