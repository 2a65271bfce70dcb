import { relative, resolve } from 'node:path';
import { BundleError } from '../core/index.ts';
import { readClusterBundle, readGenerated, verifyGeneratedBundle } from '../gitops/generated.ts';
import { GitopsError } from '../gitops/gitops-error.ts';
import { checkClaims, describeClaim, type ClusterUnderTest } from './assertions.ts';
import { CompilerError } from './compiler-error.ts';
import { takeClaims } from './lang/assertion.ts';
import { ASSERTION_SUFFIX, importPolicyModule, readTree } from './load.ts';
import { formatProblem, type Problem } from './problem.ts';
import { setSourceRoot } from './private/source-location.ts';

/**
 * `portcullis test`: imports every `*.assert.ts` under the policies, checks each claim against
 * the signed bundles in generated/ (verified first: what is checked is what the proxies load),
 * prints `file:line` with `ok` or `FAIL` and why, and exits 1 if any claim fails or a file
 * cannot load. Offline: no cluster is contacted.
 */
export async function runTest(o: { policies: string; generated: string; now?: string }, out: (s: string) => void = (s) => process.stdout.write(`${s}\n`)): Promise<void> {
  const now = o.now ? Date.parse(o.now) : Date.now();
  if (Number.isNaN(now)) throw new CompilerError('BAD_ARGUMENT', `--now '${o.now}' is not an RFC 3339 time`);
  const repoRoot = process.cwd();
  const policiesDir = resolve(o.policies);
  const files = [...readTree(policiesDir, (rel) => rel === 'node_modules' || rel.startsWith('demo-keys/')).keys()].filter((p) => p.endsWith(ASSERTION_SUFFIX));
  if (files.length === 0) {
    out(`no assertions: no ${relative(repoRoot, policiesDir) || '.'}/**/*${ASSERTION_SUFFIX} files`);
    return;
  }
  const clusters = await clustersUnderTest(o.generated, now);

  setSourceRoot(repoRoot);
  takeClaims(); // nothing left over from an earlier run in this process
  const problems: Problem[] = [];
  for (const f of files) {
    const loaded = await importPolicyModule(resolve(policiesDir, f), policiesDir, repoRoot);
    if ('problem' in loaded) problems.push(loaded.problem);
  }
  const { claims, unfinished } = takeClaims();
  for (const at of unfinished) problems.push({ severity: 'error', code: 'UNFINISHED_CLAIM', source: at, path: '', message: 'this claim never says where: end it with .on(clusters)' });

  const results = checkClaims(claims, clusters, now);
  const failed = results.filter((r) => r.failures.length > 0);
  for (const r of results) {
    const at = `${r.claim.source.file}:${r.claim.source.line}`;
    if (r.failures.length === 0) out(`${at}: ok   ${describeClaim(r.claim)}`);
    else {
      out(`${at}: FAIL ${describeClaim(r.claim)}`);
      for (const f of r.failures) out(`    ${f}`);
    }
  }
  for (const p of problems) out(formatProblem(p));
  out(`${results.length} claims on ${clusters.length} clusters: ${results.length - failed.length} hold, ${failed.length} fail${problems.length ? `; ${problems.length} problems` : ''}`);
  if (failed.length || problems.length) process.exitCode = 1;
}

/** Every cluster of generated/fleet.json with its bundle's rule set, once the bundle verifies. */
async function clustersUnderTest(generated: string, now: number): Promise<ClusterUnderTest[]> {
  try {
    const gen = await readGenerated(generated);
    const out: ClusterUnderTest[] = [];
    for (const c of gen.clusters) {
      const b = await readClusterBundle(gen.dir, c.name);
      try {
        verifyGeneratedBundle(b, c.name, gen.keys, { revision: null, envelope: undefined }, now);
      } catch (e) {
        if (e instanceof BundleError) throw new CompilerError('BUNDLE_INVALID', `${generated}/${c.name}: ${e.message}; run 'portcullis compile'`);
        throw e;
      }
      out.push({ name: c.name, labels: c.labels, ruleSet: b.desired.ruleSet });
    }
    return out;
  } catch (e) {
    if (e instanceof GitopsError) throw new CompilerError('NOT_FOUND', e.message);
    throw e;
  }
}
