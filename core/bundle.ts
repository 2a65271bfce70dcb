import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { BundleError } from './bundle-error.ts';
import { canonicalJson } from './canonical-json.ts';

/** The DSSE payload type of a Portcullis bundle statement. */
export const PAYLOAD_TYPE = 'application/vnd.portcullis.bundle.v1+json';
/** The file in a cluster's output directory that holds the signature envelope. */
export const ENVELOPE_FILE = 'bundle.sig.json';

/**
 * The annotation `apply` puts on the delivered bundle (the ConfigMap): the git commit generated/
 * was applied from. Not signed (the bundle is signed before its commit exists); the proxy copies
 * it into audit records as delivered, and `portcullis audit-trace` checks it against git history,
 * where the signed revision says which commit introduced the bundle.
 */
export const POLICY_COMMIT_ANNOTATION = 'portcullis.dev/policy-commit';

/** A full git object id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits. */
export function isCommitId(s: unknown): s is string {
  return typeof s === 'string' && /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(s);
}

/** What a bundle's signature vouches for. */
export interface BundleStatement {
  readonly _type: 'https://portcullis.dev/bundle/v1';
  readonly cluster: string;
  readonly revision: number;
  readonly notAfter: string;
  /** sha256 over the policy sources this bundle was compiled from. */
  readonly sourceDigest: string;
  readonly keyId: string;
  /** Every file of the bundle (not the envelope itself), name → sha256 hex. */
  readonly files: Readonly<Record<string, string>>;
}

/** A DSSE envelope with one Ed25519 signature. */
export interface Envelope {
  readonly payloadType: string;
  readonly payload: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
}

/** Trust material: Ed25519 public keys by key id. The algorithm is fixed here, never read from an envelope. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>;

/** What the verifier expects of the bundle. */
export interface VerifyExpectations {
  readonly cluster: string;
  readonly now: number;
  /** Revisions below this are a rollback. */
  readonly minRevision: number;
}

/** sha256 hex of bytes. */
export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The key id of an Ed25519 public key: sha256 of its raw 32 bytes, first 16 hex digits. */
export function keyIdOf(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new BundleError('BUNDLE_UNKNOWN_KEY', 'only Ed25519 keys are supported');
  }
  return sha256(Buffer.from(jwk.x, 'base64url')).slice(0, 16);
}

/** Trusted keys by key id, from public keys in PEM (or DER SPKI) form, one per item; throws on anything else. */
export function trustedKeysOf(publicKeys: readonly (string | Buffer)[]): TrustedKeys {
  const keys = new Map<string, KeyObject>();
  for (const pem of publicKeys) {
    const k = createPublicKey(pem);
    keys.set(keyIdOf(k), k);
  }
  return keys;
}

/** DSSE pre-authentication encoding: what is actually signed. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const t = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${payload.length} `), payload]);
}

/** Signs a statement. Ed25519 is deterministic, so the same statement and key give the same bytes. */
export function signStatement(statement: BundleStatement, privateKey: KeyObject): string {
  const payload = Buffer.from(canonicalJson(statement), 'utf8');
  const sig = sign(null, pae(PAYLOAD_TYPE, payload), privateKey);
  const env: Envelope = {
    payloadType: PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: keyIdOf(createPublicKey(privateKey)), sig: sig.toString('base64') }],
  };
  return canonicalJson(env);
}

/**
 * Verifies a bundle before anything in it is used: the signature over the
 * exact payload bytes with a pinned key, then the cluster binding, expiry,
 * rollback, and that the listed files are exactly the files present with the
 * listed digests. Throws BundleError; returns the statement when all hold.
 */
export function verifyBundle(
  envelopeBytes: Uint8Array,
  files: ReadonlyMap<string, Uint8Array>,
  keys: TrustedKeys,
  expect: VerifyExpectations,
): BundleStatement {
  const env = parseEnvelope(envelopeBytes);
  const payload = Buffer.from(env.payload, 'base64');
  if (payload.toString('base64') !== env.payload) throw new BundleError('BUNDLE_MALFORMED', 'payload is not canonical base64');
  const signed = pae(env.payloadType, payload);
  const good = env.signatures.some((s) => {
    const key = keys.get(s.keyid);
    return key !== undefined && verify(null, signed, key, Buffer.from(s.sig, 'base64'));
  });
  if (!good) {
    const known = env.signatures.some((s) => keys.has(s.keyid));
    throw known
      ? new BundleError('BUNDLE_SIGNATURE', 'signature does not verify')
      : new BundleError('BUNDLE_UNKNOWN_KEY', `signed by ${env.signatures.map((s) => s.keyid).join(', ') || 'nobody'}, which is not trusted`);
  }
  if (env.payloadType !== PAYLOAD_TYPE) throw new BundleError('BUNDLE_MALFORMED', `payload type ${env.payloadType}`);
  const st = parseStatement(payload);
  if (st.cluster !== expect.cluster) throw new BundleError('BUNDLE_CLUSTER', `bundle is for cluster ${st.cluster}, not ${expect.cluster}`);
  if (!(expect.now < Date.parse(st.notAfter))) throw new BundleError('BUNDLE_EXPIRED', `bundle expired at ${st.notAfter}`);
  if (st.revision < expect.minRevision) {
    throw new BundleError('BUNDLE_ROLLBACK', `revision ${st.revision} is older than ${expect.minRevision}`);
  }
  for (const name of Object.keys(st.files).sort()) {
    const bytes = files.get(name);
    if (bytes === undefined) throw new BundleError('BUNDLE_FILE_MISSING', `listed file ${name} is missing`);
    if (sha256(bytes) !== st.files[name]) throw new BundleError('BUNDLE_DIGEST', `file ${name} does not match its digest`);
  }
  for (const name of [...files.keys()].sort()) {
    if (!Object.hasOwn(st.files, name)) throw new BundleError('BUNDLE_FILE_UNLISTED', `file ${name} is not listed in the bundle`);
  }
  return st;
}

function parseEnvelope(bytes: Uint8Array): Envelope {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new BundleError('BUNDLE_MALFORMED', 'envelope is not JSON');
  }
  const o = v as Partial<Envelope> | null;
  if (
    !o ||
    typeof o.payloadType !== 'string' ||
    typeof o.payload !== 'string' ||
    !Array.isArray(o.signatures) ||
    !o.signatures.every((s) => s && typeof s.keyid === 'string' && typeof s.sig === 'string')
  ) {
    throw new BundleError('BUNDLE_MALFORMED', 'envelope lacks payloadType, payload or signatures');
  }
  return o as Envelope;
}

function parseStatement(payload: Buffer): BundleStatement {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new BundleError('BUNDLE_MALFORMED', 'statement is not JSON');
  }
  const s = v as Partial<BundleStatement> | null;
  const filesOk =
    !!s && typeof s.files === 'object' && s.files !== null && Object.values(s.files).every((d) => typeof d === 'string' && /^[0-9a-f]{64}$/.test(d));
  if (
    !s ||
    s._type !== 'https://portcullis.dev/bundle/v1' ||
    typeof s.cluster !== 'string' ||
    !Number.isSafeInteger(s.revision) ||
    typeof s.notAfter !== 'string' ||
    Number.isNaN(Date.parse(s.notAfter)) ||
    typeof s.sourceDigest !== 'string' ||
    typeof s.keyId !== 'string' ||
    !filesOk
  ) {
    throw new BundleError('BUNDLE_MALFORMED', 'statement is incomplete');
  }
  return s as BundleStatement;
}
