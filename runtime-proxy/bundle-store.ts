import { BundleError } from '../core/bundle-error.ts';
import { ENVELOPE_FILE, sha256, verifyBundle, type BundleStatement, type TrustedKeys } from '../core/bundle.ts';
import { indexRuleSet, type RuleIndex } from '../core/rule-index.ts';
import type { RuleSet } from '../core/rule-set.ts';
import { decodeRuleSet } from '../core/rule-set-codec.ts';
import { ALL_AUTHENTICATED, DISCOVERY_GRANT } from './discovery.ts';
import type { RevisionFloor } from './revision-floor.ts';

/** A verified, parsed bundle: what a request captures once and uses throughout. */
export interface ActiveBundle {
  readonly cluster: string;
  readonly revision: number;
  readonly notAfter: number;
  readonly sourceDigest: string;
  /** The git commit the delivery named (unsigned; see POLICY_COMMIT_ANNOTATION), if any. */
  readonly commit?: string;
  readonly ruleSet: RuleSet;
  /** The rule set plus the built-in discovery grant, indexed. */
  readonly index: RuleIndex;
  readonly fingerprint: string;
  /** sha256 hex of the envelope: what the revision floor records. */
  readonly envelopeSha256: string;
}

/** What happened to an offered bundle. */
export type OfferResult =
  | { readonly result: 'accepted'; readonly bundle: ActiveBundle; readonly previous?: ActiveBundle }
  | { readonly result: 'unchanged' }
  | { readonly result: 'rejected'; readonly code: string; readonly message: string };

/**
 * The bundle of one cluster: verifies before parsing (SECURITY rule 13), keeps
 * the last good one on failure, swaps atomically (one reference assignment)
 * and refuses rollback: a revision below the last accepted + 1, or below the
 * floor the replicas share (what any of them accepted before, across restarts),
 * or the floor's own revision with other bytes. Pure apart from the clock passed in.
 */
export class BundleStore {
  #current: ActiveBundle | undefined;
  #floor: RevisionFloor | undefined;

  constructor(
    readonly cluster: string,
    private readonly keys: TrustedKeys,
  ) {}

  /** Raises the floor below which no bundle is accepted (never lowers it). */
  raiseFloor(floor: RevisionFloor): void {
    if (this.#floor === undefined || floor.revision > this.#floor.revision) this.#floor = floor;
  }

  /** The floor in force: the shared record or the last accepted bundle, whichever is higher. */
  floor(): RevisionFloor | undefined {
    const b = this.#current;
    const f = this.#floor;
    return b !== undefined && (f === undefined || b.revision >= f.revision) ? { revision: b.revision, envelopeSha256: b.envelopeSha256 } : f;
  }

  /** The active bundle, or undefined before the first good one or after it expired (fail closed). */
  current(now: number): ActiveBundle | undefined {
    const b = this.#current;
    return b !== undefined && now < b.notAfter ? b : undefined;
  }

  /** The last accepted bundle, even if expired (for metrics and status). */
  lastAccepted(): ActiveBundle | undefined {
    return this.#current;
  }

  /**
   * Offers the files of a bundle (the envelope included), with the commit its delivery named.
   * The same files delivered again under another commit stay the same bundle, now naming that
   * commit (as a replica that starts now would); both commits carry it.
   */
  offer(files: ReadonlyMap<string, Uint8Array>, now: number, commit?: string): OfferResult {
    const prev = this.#current;
    const fingerprint = fingerprintOf(files);
    if (prev !== undefined && prev.fingerprint === fingerprint) {
      if (prev.commit !== commit) {
        const { commit: _old, ...rest } = prev;
        this.#current = commit === undefined ? rest : { ...rest, commit };
      }
      return { result: 'unchanged' };
    }
    try {
      const envelope = files.get(ENVELOPE_FILE);
      if (envelope === undefined) throw new BundleError('BUNDLE_FILE_MISSING', `${ENVELOPE_FILE} is missing`);
      const rest = new Map([...files].filter(([n]) => n !== ENVELOPE_FILE));
      // Verification first; nothing of the bundle is parsed before it passes.
      const floor = this.#floor;
      const minRevision = Math.max(prev === undefined ? 0 : prev.revision + 1, floor?.revision ?? 0);
      const st = verifyBundle(envelope, rest, this.keys, { cluster: this.cluster, now, minRevision });
      const envelopeSha256 = sha256(envelope);
      if (floor !== undefined && st.revision === floor.revision && envelopeSha256 !== floor.envelopeSha256) {
        throw new BundleError('BUNDLE_ROLLBACK', `revision ${st.revision} was accepted before with other content`);
      }
      const ruleSet = parseRuleSet(rest.get('rules.json'), this.cluster);
      const bundle = toActive(st, ruleSet, fingerprint, envelopeSha256, commit);
      this.#current = bundle; // the atomic swap
      return prev === undefined ? { result: 'accepted', bundle } : { result: 'accepted', bundle, previous: prev };
    } catch (err) {
      if (err instanceof BundleError) return { result: 'rejected', code: err.code, message: err.message };
      return { result: 'rejected', code: 'BUNDLE_RULES', message: (err as Error).message };
    }
  }
}

/**
 * The index the proxy decides on for a cluster's rule set: its grants and the built-in discovery
 * grant, which names system:authenticated, a group every identity carries for authorization
 * (never impersonated: kube-apiserver adds it upstream by itself).
 */
export function decisionIndex(ruleSet: RuleSet): RuleIndex {
  return indexRuleSet({
    ...ruleSet,
    grants: [...ruleSet.grants, DISCOVERY_GRANT],
    impersonable: { users: ruleSet.impersonable.users, groups: [...ruleSet.impersonable.groups, ALL_AUTHENTICATED] },
  });
}

function toActive(st: BundleStatement, ruleSet: RuleSet, fingerprint: string, envelopeSha256: string, commit: string | undefined): ActiveBundle {
  return {
    cluster: st.cluster,
    revision: st.revision,
    notAfter: Date.parse(st.notAfter),
    sourceDigest: st.sourceDigest,
    ...(commit !== undefined ? { commit } : {}),
    ruleSet,
    index: decisionIndex(ruleSet),
    fingerprint,
    envelopeSha256,
  };
}

function fingerprintOf(files: ReadonlyMap<string, Uint8Array>): string {
  const parts: string[] = [];
  for (const name of [...files.keys()].sort()) parts.push(`${name}\0${sha256(files.get(name) ?? new Uint8Array())}`);
  return parts.join('\0');
}

/** Parses the (already verified) rules.json with the shared codec, and binds it to this cluster. */
function parseRuleSet(bytes: Uint8Array | undefined, cluster: string): RuleSet {
  if (bytes === undefined) throw new Error('the bundle has no rules.json');
  const v = decodeRuleSet(Buffer.from(bytes).toString('utf8'));
  if (v.cluster !== cluster) throw new Error(`rules.json is for cluster ${v.cluster}, not ${cluster}`);
  return v;
}
