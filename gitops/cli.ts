import type { KeyObject } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { isCommitId, trustedKeysOf, type TrustedKeys } from '../core/index.ts';
import { renderApplySummary } from './apply.ts';
import { traceAuditLog } from './audit-trace.ts';
import { readCredentials, tokenKubeconfig, type Credentials } from './fleet.ts';
import { readGenerated } from './generated.ts';
import { GitopsError } from './gitops-error.ts';
import { octokitFor, publishPlan, pullRequestFromEnv } from './github.ts';
import { planExitCode } from './plan.ts';
import { renderJson, renderMarkdown, renderText } from './render.ts';
import { compilerFreshnessCheck, runApply, runPlan, type FleetOptions } from './run.ts';

interface FleetFlags {
  clusters?: string;
  generated: string;
  fleet?: string;
  kubeconfigs?: string;
  tokenFile?: string;
  proxyCa?: string;
  kubectl?: string;
  concurrency: string;
  pruneNamespaces?: boolean;
  trustedKey?: string[];
}

function fleetOptions(cmd: Command): Command {
  return cmd
    .option('--clusters <selector>', 'cluster names and/or label selectors over fleet.json labels, comma-separated (e.g. "dev,env=prod")')
    .option('--generated <dir>', 'the compiler output directory', 'generated')
    .option('--fleet <file>', 'fleet.json to read clusters from (default: <generated>/fleet.json)')
    .addOption(new Option('--kubeconfigs <file>', 'JSON file mapping cluster name → admin kubeconfig path (the sandbox fleet file works)').env('PORTCULLIS_KUBECONFIGS'))
    .addOption(new Option('--token-file <file>', "a bearer token (e.g. GitHub's OIDC token) used against each cluster's proxyUrl instead of kubeconfigs").env('PORTCULLIS_TOKEN_FILE'))
    .addOption(new Option('--proxy-ca <file>', 'CA bundle that signed the proxies\' serving certificates (with --token-file)').env('PORTCULLIS_PROXY_CA'))
    .addOption(new Option('--kubectl <path>', 'the kubectl binary (default: the sandbox fleet file\'s, else kubectl on PATH)').env('PORTCULLIS_KUBECTL'))
    .option('--trusted-key <pem...>', 'public keys bundles must be signed with (default: <generated>/keys/*.pub.pem)')
    .option('--concurrency <n>', 'clusters at once', '4')
    .option('--prune-namespaces', 'delete managed namespaces that are no longer generated, WITH EVERYTHING IN THEM (default: keep them and stop managing them)');
}

async function credentialsFor(f: FleetFlags): Promise<{ readonly credentials: Credentials; readonly kubectl?: string }> {
  if (f.kubeconfigs) return readCredentials(f.kubeconfigs);
  if (f.tokenFile) return { credentials: await tokenCredentials(f) };
  throw new GitopsError('CREDENTIALS_MISSING', 'no fleet credentials: pass --kubeconfigs FILE (or PORTCULLIS_KUBECONFIGS), or --token-file FILE to go through each cluster\'s proxy');
}

/** Kubeconfigs that reach each cluster's proxyUrl with a bearer token (written 0600 to a fresh temp dir, removed at exit). */
async function tokenCredentials(f: FleetFlags): Promise<Credentials> {
  const gen = await readGenerated(f.generated, f.fleet);
  const token = (await readFile(f.tokenFile ?? '', 'utf8')).trim();
  const caPem = f.proxyCa ? await readFile(f.proxyCa, 'utf8') : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-kube-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = new Map<string, { kubeconfig: string }>();
  for (const c of gen.clusters) {
    if (!c.proxyUrl) continue;
    const path = join(dir, `${c.name}.kubeconfig`);
    await writeFile(path, JSON.stringify(tokenKubeconfig(c.name, c.proxyUrl, token, caPem)), { mode: 0o600 });
    out.set(c.name, { kubeconfig: path });
  }
  return out;
}

/** The public keys in PEM files; a file may hold several (the variable of a key rotation). */
async function readKeys(files: readonly string[]): Promise<TrustedKeys> {
  const keys = new Map<string, KeyObject>();
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (e) {
      throw new GitopsError('BAD_INPUT', `cannot read --trusted-key ${f}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const pems = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [];
    if (pems.length === 0) throw new GitopsError('BAD_INPUT', `--trusted-key ${f} holds no PEM public key (-----BEGIN PUBLIC KEY-----)`);
    try {
      for (const [id, k] of trustedKeysOf(pems)) keys.set(id, k);
    } catch (e) {
      throw new GitopsError('BAD_INPUT', `--trusted-key ${f} holds a key that is not an Ed25519 public key: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return keys;
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw new GitopsError('BAD_INPUT', `${what} must be a positive integer, not ${s}`);
  return n;
}

async function toFleetOptions(f: FleetFlags): Promise<FleetOptions> {
  const creds = await credentialsFor(f);
  return {
    generatedDir: f.generated,
    ...(f.fleet ? { fleetFile: f.fleet } : {}),
    ...(f.clusters ? { selector: f.clusters } : {}),
    credentials: creds.credentials,
    kubectl: f.kubectl ?? creds.kubectl ?? 'kubectl',
    concurrency: positiveInt(f.concurrency, '--concurrency'),
    pruneNamespaces: f.pruneNamespaces ?? false,
    ...(f.trustedKey?.length ? { trustedKeys: await readKeys(f.trustedKey) } : {}),
  };
}

/** The lines of the given files, one after the other, or of standard input; streamed. */
async function* inputLines(files: readonly string[]): AsyncIterable<string> {
  // Each file is opened when its turn comes: one open file at a time, and a missing one fails in order.
  for (const f of files.length ? files : [undefined]) {
    const input = f === undefined ? process.stdin : createReadStream(f, 'utf8');
    try {
      yield* createInterface({ input, crlfDelay: Infinity });
    } catch (e) {
      throw new GitopsError('BAD_INPUT', `cannot read ${f ?? 'standard input'}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/** Registers `plan`, `apply` and `audit-trace`. */
export function registerGitopsCommands(program: Command): void {
  program
    .command('audit-trace')
    .description("trace the proxy's audit records back to git: the commit each record's bundle revision entered git in, and the deciding policy line at that commit. Exit 1 if a record contradicts git or cannot be traced")
    .argument('[files...]', 'audit logs, one JSON Event per line (default: standard input)')
    .option('--repo <dir>', 'the git repository of the policies', '.')
    .option('--generated <dir>', "the compiler's output directory, relative to the repository's top", 'generated')
    .addOption(new Option('--format <format>', 'output format: text, or json (one trace per line)').choices(['text', 'json']).default('text'))
    .action(async (files: string[], f: { repo: string; generated: string; format: 'text' | 'json' }) => {
      const n = await traceAuditLog(inputLines(files), f.repo, f.generated, (t, text) => process.stdout.write(f.format === 'json' ? `${JSON.stringify(t)}\n` : text));
      const records = n.traced + n.untraced + n.skipped;
      process.stderr.write(
        `${records} records: ${n.traced} traced, ${n.untraced} not traceable, ${n.skipped} skipped, ${n.withProblems} with problems` +
          `${n.unreadable ? `; ${n.unreadable} lines were not audit Events` : ''}\n`,
      );
      if (n.withProblems > 0) throw new GitopsError('REPORTED', '');
      if (records === 0 && n.unreadable > 0) throw new GitopsError('BAD_INPUT', 'no audit Events in the input (one audit.k8s.io/v1 Event per line expected)');
    });

  fleetOptions(
    program
      .command('plan')
      .description('compare generated/ with the live clusters: object diffs and effective-access changes. Exit 0 = no changes, 2 = changes, 1 = error'),
  )
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'markdown', 'json']).default('text'))
    .option('--comment', 'post the plan on the pull request as one sticky comment and set a commit status (GitHub Actions environment)')
    .action(async (f: FleetFlags & { format: 'text' | 'markdown' | 'json'; comment?: boolean }) => {
      const plan = await runPlan(await toFleetOptions(f));
      const out = f.format === 'json' ? renderJson(plan) : f.format === 'markdown' ? renderMarkdown(plan) : renderText(plan);
      process.stdout.write(out);
      if (f.comment) {
        const target = await pullRequestFromEnv(process.env);
        let comment: string;
        try {
          ({ comment } = await publishPlan(octokitFor(target), target, plan));
        } catch (e) {
          throw new GitopsError('GITHUB_POST', `could not post the plan to ${target.owner}/${target.repo}#${target.issueNumber}: ${e instanceof Error ? e.message : String(e)} (the job needs pull-requests: write and statuses: write)`);
        }
        process.stderr.write(`plan comment ${comment} on ${target.owner}/${target.repo}#${target.issueNumber}\n`);
      }
      // 0 no changes, 2 changes (as `kubectl diff`): a result, not an error.
      process.exitCode = planExitCode(plan);
    });

  fleetOptions(
    program
      .command('apply')
      .description('server-side apply generated/ to the selected clusters, prune what is no longer generated, deliver the signed bundle'),
  )
    .option('--policies <dir>', 'the policy sources generated/ must be up to date with', 'policies')
    .option('--dry-run', "use the server's dry run: nothing is changed")
    .option('--commit <sha>', 'the full git commit id generated/ is applied from (e.g. $GITHUB_SHA); each delivered bundle carries it and the proxies write it into their audit records')
    .action(async (f: FleetFlags & { policies: string; dryRun?: boolean; commit?: string }) => {
      const dryRun = f.dryRun ?? false;
      if (f.commit !== undefined && !isCommitId(f.commit)) throw new GitopsError('BAD_INPUT', `--commit must be a full commit id (40 or 64 lowercase hex digits), not ${JSON.stringify(f.commit)}`);
      const { results } = await runApply({
        ...(await toFleetOptions(f)),
        dryRun,
        ...(f.commit !== undefined ? { commit: f.commit } : {}),
        checkFresh: compilerFreshnessCheck(f.policies, f.generated),
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(renderApplySummary(results, dryRun));
      if (results.some((r) => !r.ok)) throw new GitopsError('REPORTED', '');
    });
}
