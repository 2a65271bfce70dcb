import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ExitError } from '../cli/exit-error.ts';
import { BundleError, ENVELOPE_FILE, canonicalJson, verifyBundle } from '../core/index.ts';
import { compileFleet, verifyGeneratedTree } from './compile.ts';
import { discoverBootstrapRoles, discoverCatalog, kubectlGetter } from './discover.ts';
import { digestSources, generateKeyFiles, loadPolicy, readCatalogs, readSigningKey, readTree, readTrustedKeys, typecheckPolicies, writeGenerated } from './load.ts';
import { formatProblem, type Problem } from './problem.ts';

/** Options of `portcullis compile`. */
export interface CompileOptions {
  readonly policies: string;
  readonly out: string;
  readonly check?: boolean;
  readonly renew?: boolean;
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
  if (Number.isNaN(now)) throw new ExitError(1, `--now '${o.now}' is not an RFC 3339 time`);
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
      throw new ExitError(1, `cannot read the signing key: ${e instanceof Error ? e.message : String(e)}`);
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
    const bad = verifyGeneratedTree(previous, out.resolution.clusters.map((c) => c.name), keys, now);
    if (stale.length || bad.length) {
      throw new ExitError(1, [`${o.out}/ is stale or does not verify; run 'portcullis compile' and commit the result:`, ...[...new Set(stale)].map((s) => `  stale: ${s}`), ...bad.map((b) => `  verify: ${b}`)].join('\n'));
    }
    log(`${o.out}/ is up to date (${out.resolution.clusters.length} clusters)`);
    return;
  }
  if (out.needsSigning.length) {
    throw new ExitError(1, `no signing key for the changed bundles of ${out.needsSigning.join(', ')}: set PORTCULLIS_SIGNING_KEY to an Ed25519 PEM file (portcullis keygen --out FILE)`);
  }
  writeGenerated(o.out, out.files);
  for (const c of out.resolution.clusters) {
    const conditional = c.ruleSet.grants.filter((g) => g.activationGroup).map((g) => g.id);
    log(`${c.name}: ${c.ruleSet.grants.length} grants, ${c.ruleSet.denies.length} denies${conditional.length ? `; proxy-enforced conditions: ${conditional.join(', ')}` : ''}`);
  }
}

function fail(problems: readonly Problem[], log: (s: string) => void): never {
  for (const p of problems) log(formatProblem(p));
  throw new ExitError(1, `${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was written`);
}

/** `portcullis keygen`. */
export function runKeygen(o: { out: string }): void {
  if (/(^|\/)generated(\/|$)/.test(resolve(o.out))) throw new ExitError(1, 'refusing to write a private key under generated/: it is committed');
  if (existsSync(o.out)) throw new ExitError(1, `${o.out} exists; refusing to overwrite a key`);
  const { keyId, publicPath } = generateKeyFiles(o.out);
  process.stdout.write(`key ${keyId}\nprivate: ${o.out}\npublic:  ${publicPath}\n`);
}

/** `portcullis verify`: exit 0 and the statement, or exit 1 and the error code. */
export function runVerify(o: { cluster: string; generated: string; dir?: string; key?: string[]; minRevision: string }): void {
  const dir = o.dir ?? join(o.generated, o.cluster);
  const keyFiles = o.key ?? (existsSync(join(o.generated, 'keys')) ? readdirSync(join(o.generated, 'keys')).map((f) => join(o.generated, 'keys', f)) : []);
  const tree = readTree(dir);
  const env = tree.get(ENVELOPE_FILE);
  tree.delete(ENVELOPE_FILE);
  try {
    if (!env) throw new BundleError('BUNDLE_FILE_MISSING', `${dir}/${ENVELOPE_FILE} is missing`);
    const st = verifyBundle(env, tree, readTrustedKeys(keyFiles), { cluster: o.cluster, now: Date.now(), minRevision: Number(o.minRevision) });
    process.stdout.write(`verified ${o.cluster} revision ${st.revision} (key ${st.keyId}, until ${st.notAfter})\n`);
  } catch (e) {
    if (e instanceof BundleError) throw new ExitError(1, e.message);
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
