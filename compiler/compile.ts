import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  BundleError,
  bundleExpiry,
  ENVELOPE_FILE,
  canonicalJson,
  encodeRuleSet,
  keyIdOf,
  sha256,
  signStatement,
  verifyBundle,
  type BundleExpiry,
  type BundleStatement,
  type TrustedKeys,
} from '../core/index.ts';
import type { Catalog } from './catalog.ts';
import type { Fleet } from './lang/fleet.ts';
import type { Problem } from './problem.ts';
import { resolveFleet, type Resolution } from './resolve.ts';
import { synthCluster } from './synth.ts';

/** The bundle files of a cluster, besides the envelope. */
export const BUNDLE_FILES = ['rbac.yaml', 'rules.json'] as const;

/** Everything `compile` needs; the clock, keys and the previous output are passed in. */
export interface CompileInput {
  readonly fleet: Fleet;
  readonly catalogs: ReadonlyMap<string, Catalog>;
  readonly now: number;
  /** sha256 over the policy sources. */
  readonly sourceDigest: string;
  /** The current `generated/` tree (path → bytes), to keep revisions and unchanged signatures. */
  readonly previous: ReadonlyMap<string, Uint8Array>;
  /** Signs changed bundles; without it only unchanged bundles can be produced. */
  readonly signingKey?: KeyObject;
  /** Start a new revision with a fresh expiry even where nothing changed. */
  readonly renew?: boolean;
  /**
   * Start a new revision with a fresh expiry where the previous bundle expires within this
   * many milliseconds of `now` (the scheduled renewal); bundles further from expiry keep their bytes.
   * @default none: only content changes (and `renew`) make new revisions
   */
  readonly renewWithinMs?: number;
}

/** What `compile` produced: the whole generated tree (but the catalogs), or problems. */
export interface CompileOutput {
  readonly resolution: Resolution;
  readonly files: ReadonlyMap<string, string>;
  readonly problems: readonly Problem[];
  /** Clusters whose bundle changed and needs a signature. */
  readonly needsSigning: readonly string[];
}

/**
 * Pure: resolves the policy and renders `generated/`. An unchanged cluster
 * keeps its previous envelope byte for byte (Ed25519 is deterministic, and
 * revision and expiry move only when the content does), so the same policy
 * gives the same bytes.
 */
export function compileFleet(input: CompileInput): CompileOutput {
  const resolution = resolveFleet(input.fleet, input.catalogs, input.now);
  const problems = [...resolution.problems];
  const files = new Map<string, string>();
  const needsSigning: string[] = [];
  if (problems.some((p) => p.severity === 'error')) return { resolution, files, problems, needsSigning };

  const validityDays = input.fleet.props.bundleValidityDays ?? 30;
  const keyId = input.signingKey ? keyIdOf(createPublicKey(input.signingKey)) : undefined;
  for (const rc of resolution.clusters) {
    const content: Record<string, string> = { 'rbac.yaml': synthCluster(rc), 'rules.json': encodeRuleSet(rc.ruleSet) };
    const digests = Object.fromEntries(BUNDLE_FILES.map((f) => [f, sha256(content[f] ?? '')]));
    const prevBytes = input.previous.get(`${rc.name}/${ENVELOPE_FILE}`);
    const prev = prevBytes ? readStatement(prevBytes) : undefined;
    const due = input.renew === true || (prev !== undefined && input.renewWithinMs !== undefined && Date.parse(prev.notAfter) - input.now <= input.renewWithinMs);
    const unchanged =
      prev !== undefined &&
      prevBytes !== undefined &&
      !due &&
      prev.sourceDigest === input.sourceDigest &&
      (keyId === undefined || prev.keyId === keyId) &&
      canonicalJson(prev.files) === canonicalJson(digests);
    for (const f of BUNDLE_FILES) files.set(`${rc.name}/${f}`, content[f] ?? '');
    if (unchanged) {
      files.set(`${rc.name}/${ENVELOPE_FILE}`, Buffer.from(prevBytes).toString('utf8'));
      continue;
    }
    if (!input.signingKey || keyId === undefined) {
      needsSigning.push(rc.name);
      continue;
    }
    const statement: BundleStatement = {
      _type: 'https://portcullis.dev/bundle/v1',
      cluster: rc.name,
      revision: (prev?.revision ?? 0) + 1,
      notAfter: new Date(input.now + validityDays * 86_400_000).toISOString(),
      sourceDigest: input.sourceDigest,
      keyId,
      files: digests,
    };
    files.set(`${rc.name}/${ENVELOPE_FILE}`, signStatement(statement, input.signingKey));
  }
  if (input.signingKey && keyId) {
    files.set(`keys/${keyId}.pub.pem`, createPublicKey(input.signingKey).export({ type: 'spki', format: 'pem' }).toString());
  } else {
    for (const [path, bytes] of input.previous) if (path.startsWith('keys/')) files.set(path, Buffer.from(bytes).toString('utf8'));
  }
  files.set(
    'fleet.json',
    canonicalJson({
      apiVersion: 'portcullis.dev/v1',
      kind: 'Fleet',
      name: resolution.fleet,
      clusters: resolution.clusters.map((c) => ({ name: c.name, server: c.server, proxyUrl: c.proxyUrl, labels: c.labels, agent: c.agent })),
      identityProviders: resolution.identityProviders,
      keys: [...files.keys()].filter((p) => p.startsWith('keys/')).sort(),
    }),
  );
  return { resolution, files, problems, needsSigning };
}

/** Reads a previous envelope's statement without trusting it: only to carry the revision forward. */
function readStatement(bytes: Uint8Array): BundleStatement | undefined {
  try {
    const env = JSON.parse(Buffer.from(bytes).toString('utf8')) as { payload?: unknown };
    if (typeof env.payload !== 'string') return undefined;
    return JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as BundleStatement;
  } catch {
    return undefined;
  }
}

/** What `verifyGeneratedTree` found for one cluster. */
export type TreeBundleCheck =
  | { readonly cluster: string; readonly ok: true; readonly revision: number; readonly expiry: BundleExpiry }
  | { readonly cluster: string; readonly ok: false; readonly problem: string };

/**
 * Verifies every cluster's bundle in a generated tree: signature, cluster binding and files,
 * which do not depend on the time, then classifies its expiry at `now` against `marginMs`
 * (core `bundleExpiry`), so a caller can tell a broken bundle from an old one.
 */
export function verifyGeneratedTree(tree: ReadonlyMap<string, Uint8Array>, clusters: readonly string[], keys: TrustedKeys, now: number, marginMs: number): TreeBundleCheck[] {
  return clusters.map((c): TreeBundleCheck => {
    const env = tree.get(`${c}/${ENVELOPE_FILE}`);
    if (!env) return { cluster: c, ok: false, problem: `no ${ENVELOPE_FILE}` };
    const files = new Map<string, Uint8Array>();
    for (const [p, b] of tree) if (p.startsWith(`${c}/`) && p !== `${c}/${ENVELOPE_FILE}`) files.set(p.slice(c.length + 1), b);
    try {
      // Every check but expiry (a time before any notAfter); expiry is classified on its own below.
      const st = verifyBundle(env, files, keys, { cluster: c, now: Number.NEGATIVE_INFINITY, minRevision: 0 });
      return { cluster: c, ok: true, revision: st.revision, expiry: bundleExpiry(Date.parse(st.notAfter), now, marginMs) };
    } catch (e) {
      return { cluster: c, ok: false, problem: e instanceof BundleError ? e.message : String(e) };
    }
  });
}
