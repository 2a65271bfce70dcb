import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CompilerError } from './compiler-error.ts';
import { BundleError, ENVELOPE_FILE, canonicalJson, describeExpiry, parseDuration, verifyBundle } from '../core/index.ts';
import { compileFleet, verifyGeneratedTree } from './compile.ts';
import { discoverBootstrapRoles, discoverCatalog, kubectlGetter } from './discover.ts';
import { digestSources, generateKeyFiles, loadPolicy, readCatalogs, readSigningKey, readTree, readTrustedKeys, typecheckPolicies, writeGenerated } from './load.ts';
import { formatProblem, type Problem } from './problem.ts';

/** How far ahead of `notAfter` the scheduled renewal re-signs a bundle (with a 30-day validity: every ~16 days). */
export const DEFAULT_RENEW_WITHIN = '14d';

/** Options of `portcullis compile`. */
export interface CompileOptions {
  readonly policies: string;
  readonly out: string;
  readonly check?: boolean;
  readonly renew?: boolean;
  /** Renew bundles that expire within this duration (`14d`); with --check, the window that counts as expiring soon. */
  readonly renewWithin?: string;
  readonly now?: string;
  readonly typecheck?: boolean;
}

/**
 * `portcullis compile`: load, type-check and validate the policy, then write
 * generated/ — or, with --check, only compare. Any error: every problem
 * printed with file:line, exit 1, nothing written.
 */
export async function runCompile(o: CompileOptions, log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<void> {
  const repoRoot = process.cwd();
  const now = o.now ? Date.parse(o.now) : Date.now();
  if (Number.isNaN(now)) throw new CompilerError('BAD_ARGUMENT', `--now '${o.now}' is not an RFC 3339 time`);
  const renewWithin = o.renewWithin ?? DEFAULT_RENEW_WITHIN;
  const renewWithinSeconds = parseDuration(renewWithin);
  if (renewWithinSeconds === undefined) throw new CompilerError('BAD_ARGUMENT', `--renew-within '${renewWithin}' is not a duration (e.g. 14d, 36h)`);
  const problems: Problem[] = [];
  const loaded = await loadPolicy(resolve(o.policies), repoRoot);
  problems.push(...loaded.problems);
  if (o.typecheck !== false) problems.push(...(await typecheckPolicies(resolve(o.policies), repoRoot)));
  if (!loaded.fleet || problems.length) fail(problems, log);
  const fleet = loaded.fleet;
  if (!fleet) return;

  const previous = readTree(o.out, (rel) => rel.startsWith('catalog/'));
  let signingKey;
  if (!o.check) {
    try {
      signingKey = readSigningKey(repoRoot, fleet.props.signingKeyFile);
    } catch (e) {
      throw new CompilerError('SIGNING_KEY', `cannot read the signing key: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const out = compileFleet({
    fleet,
    catalogs: readCatalogs(o.out),
    now,
    sourceDigest: digestSources(resolve(o.policies)),
    previous,
    ...(signingKey ? { signingKey } : {}),
    ...(o.renew ? { renew: true } : {}),
    // Only an explicit --renew-within renews; --check uses the window to tell what is due.
    ...(o.renewWithin !== undefined && !o.check ? { renewWithinMs: renewWithinSeconds * 1000 } : {}),
  });
  const errors = out.problems.filter((p) => p.severity === 'error');
  for (const w of out.problems.filter((p) => p.severity === 'warning')) log(formatProblem(w));
  if (errors.length) fail(out.problems.filter((p) => p.severity === 'error'), log);

  if (o.check) {
    const stale = [...out.needsSigning.map((c) => `${c}/${ENVELOPE_FILE} (content changed; needs a new signed revision)`)];
    for (const [path, text] of out.files) {
      const prev = previous.get(path);
      if (!prev || Buffer.compare(Buffer.from(prev), Buffer.from(text)) !== 0) stale.push(path);
    }
    for (const path of previous.keys()) if (!out.files.has(path) && !out.needsSigning.some((c) => path.startsWith(`${c}/`))) stale.push(`${path} (should not exist)`);
    const keys = readTrustedKeys([...previous.keys()].filter((p) => p.startsWith('keys/')).map((p) => join(o.out, p)));
    const checks = verifyGeneratedTree(previous, out.resolution.clusters.map((c) => c.name), keys, now, renewWithinSeconds * 1000);
    const bad = checks.flatMap((c) => (c.ok ? [] : [`${c.cluster}: ${c.problem}`]));
    if (stale.length || bad.length) {
      throw new CompilerError('GENERATED_STALE', [`${o.out}/ is stale or does not verify; run 'portcullis compile' and commit the result:`, ...[...new Set(stale)].map((s) => `  stale: ${s}`), ...bad.map((b) => `  verify: ${b}`)].join('\n'));
    }
    const fresh = checks.flatMap((c) => (c.ok ? [c] : []));
    const renewHint = `run 'portcullis compile --renew-within ${renewWithin}' and commit (the renew workflow does this on schedule)`;
    const expired = fresh.filter((c) => c.expiry.state === 'expired');
    if (expired.length) {
      throw new CompilerError('BUNDLE_EXPIRED', [`${o.out}/ matches policies/, but bundles have expired and every proxy refuses them; ${renewHint}:`, ...expired.map((c) => `  expired: ${c.cluster} revision ${c.revision} ${describeExpiry(c.expiry)}`)].join('\n'));
    }
    for (const c of fresh.filter((x) => x.expiry.state === 'expiring')) log(`warning: expiring: ${c.cluster} revision ${c.revision} ${describeExpiry(c.expiry)}, within the ${renewWithin} renewal window; ${renewHint}`);
    const first = fresh.map((c) => c.expiry).sort((a, b) => a.notAfter - b.notAfter)[0];
    log(`${o.out}/ is up to date (${out.resolution.clusters.length} clusters${first ? `; the first bundle ${describeExpiry(first)}` : ''})`);
    return;
  }
  if (out.needsSigning.length) {
    throw new CompilerError('SIGNING_KEY', `no signing key for the changed bundles of ${out.needsSigning.join(', ')}: set PORTCULLIS_SIGNING_KEY to an Ed25519 PEM file (portcullis keygen --out FILE)`);
  }
  writeGenerated(o.out, out.files);
  for (const c of out.resolution.clusters) {
    const conditional = c.ruleSet.grants.filter((g) => g.activationGroup).map((g) => g.id);
    log(`${c.name}: ${c.ruleSet.grants.length} grants, ${c.ruleSet.denies.length} denies${conditional.length ? `; proxy-enforced conditions: ${conditional.join(', ')}` : ''}`);
  }
}

function fail(problems: readonly Problem[], log: (s: string) => void): never {
  for (const p of problems) log(formatProblem(p));
  throw new CompilerError('POLICY_PROBLEMS', `${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was written`);
}

/** `portcullis keygen`. */
export function runKeygen(o: { out: string }): void {
  if (/(^|\/)generated(\/|$)/.test(resolve(o.out))) throw new CompilerError('KEY_REFUSED', 'refusing to write a private key under generated/: it is committed');
  if (existsSync(o.out)) throw new CompilerError('KEY_REFUSED', `${o.out} exists; refusing to overwrite a key`);
  const { keyId, publicPath } = generateKeyFiles(o.out);
  process.stdout.write(`key ${keyId}\nprivate: ${o.out}\npublic:  ${publicPath}\n`);
}

/** `portcullis verify`: exit 0 and the statement, or exit 1 and the error code. */
export function runVerify(o: { cluster: string; generated: string; dir?: string; key?: string[]; minRevision: string; now?: string }): void {
  const now = o.now !== undefined ? Date.parse(o.now) : Date.now();
  if (Number.isNaN(now)) throw new CompilerError('BAD_ARGUMENT', `--now '${o.now}' is not an RFC 3339 time`);
  const dir = o.dir ?? join(o.generated, o.cluster);
  const keyFiles = o.key ?? (existsSync(join(o.generated, 'keys')) ? readdirSync(join(o.generated, 'keys')).map((f) => join(o.generated, 'keys', f)) : []);
  const tree = readTree(dir);
  const env = tree.get(ENVELOPE_FILE);
  tree.delete(ENVELOPE_FILE);
  try {
    if (!env) throw new BundleError('BUNDLE_FILE_MISSING', `${dir}/${ENVELOPE_FILE} is missing`);
    const st = verifyBundle(env, tree, readTrustedKeys(keyFiles), { cluster: o.cluster, now, minRevision: Number(o.minRevision) });
    process.stdout.write(`verified ${o.cluster} revision ${st.revision} (key ${st.keyId}, until ${st.notAfter})\n`);
  } catch (e) {
    if (e instanceof BundleError) throw new CompilerError('BUNDLE_INVALID', e.message);
    throw e;
  }
}

/** `portcullis discover`. */
export async function runDiscover(o: { kubeconfig: string; cluster?: string; generated: string; kubectl: string; bootstrapRoles?: string }): Promise<void> {
  const get = kubectlGetter(o.kubectl, o.kubeconfig);
  const catalog = await discoverCatalog(get);
  if (o.cluster) {
    const path = join(o.generated, 'catalog', `${o.cluster}.json`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, canonicalJson(catalog));
    process.stdout.write(`wrote ${path}: ${catalog.resources.length} resources (${catalog.kubernetesVersion})\n`);
  } else process.stdout.write(canonicalJson(catalog));
  if (o.bootstrapRoles) {
    const roles = await discoverBootstrapRoles(get);
    writeFileSync(
      o.bootstrapRoles,
      canonicalJson({
        _generated: `by \`portcullis discover --bootstrap-roles\` from kube-apiserver ${roles.kubernetesVersion}: the rules the ClusterRole aggregation controller gives view, edit and admin. Do not edit.`,
        ...roles,
      }),
    );
    process.stdout.write(`wrote ${o.bootstrapRoles}\n`);
  }
}
