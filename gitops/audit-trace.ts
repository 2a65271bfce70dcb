/**
 * `portcullis audit-trace`: from the proxy's audit records back to git.
 *
 * A record names its cluster, the bundle revision that decided it, the policy digest, the
 * deciding grant's or deny's `file:line`, and (when `apply` delivered the bundle) the commit.
 * The revision is signed; git history says which commit first committed that revision of
 * `generated/<cluster>/bundle.sig.json`. This resolves every record to that commit, checks the
 * signed digest and the delivered commit against it, and shows the policy line as of the commit.
 *
 * Pure functions first (`traceRecord`, `renderTrace`); git and files at the end.
 */
import { spawn } from 'node:child_process';
import { posix } from 'node:path';
import { ENVELOPE_FILE } from '../core/index.ts';
import { readStatement } from './generated.ts';
import { GitopsError } from './gitops-error.ts';

/** One commit that changed a cluster's bundle envelope, oldest first. */
export interface BundleCommit {
  readonly commit: string;
  readonly author: string;
  readonly date: string;
  readonly subject: string;
  readonly revision: number;
  readonly sourceDigest: string;
}

/** Where each revision of a cluster's bundle entered git: revision → the first commit carrying it. */
export type BundleHistory = ReadonlyMap<number, BundleCommit>;

/** What an audit record says about its policy (the fields this tool reads). */
interface RecordFacts {
  readonly auditID: string;
  readonly verb: string;
  readonly requestURI: string;
  readonly user: string;
  readonly code: number;
  readonly decision: string;
  readonly cluster?: string;
  readonly revision?: number;
  readonly digest?: string;
  readonly deliveredCommit?: string;
  readonly source?: { readonly file: string; readonly line: number };
  readonly grant?: string;
  readonly deny?: string;
}

/** The outcome for one record. */
export type Trace =
  | { readonly status: 'traced'; readonly record: RecordFacts; readonly commit: BundleCommit; readonly problems: readonly string[] }
  | { readonly status: 'untraced'; readonly record: RecordFacts; readonly problems: readonly string[] }
  | { readonly status: 'skipped'; readonly record: RecordFacts; readonly why: string };

/** Reads the fields this tool needs from a parsed audit line; undefined if it is not a Portcullis audit Event. */
export function recordFacts(v: unknown): RecordFacts | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as { kind?: unknown; auditID?: unknown; verb?: unknown; requestURI?: unknown; user?: { username?: unknown }; responseStatus?: { code?: unknown }; annotations?: Record<string, unknown> };
  if (e.kind !== 'Event' || typeof e.auditID !== 'string' || typeof e.annotations !== 'object' || e.annotations === null) return undefined;
  const a = e.annotations;
  const str = (k: string) => (typeof a[k] === 'string' ? (a[k] as string) : undefined);
  const rev = str('portcullis.dev/bundle-revision');
  const src = /^(.+):(\d+)$/.exec(str('portcullis.dev/source') ?? '');
  const out: RecordFacts = {
    auditID: e.auditID,
    verb: typeof e.verb === 'string' ? e.verb : '?',
    requestURI: typeof e.requestURI === 'string' ? e.requestURI : '?',
    user: typeof e.user?.username === 'string' ? e.user.username : '?',
    code: typeof e.responseStatus?.code === 'number' ? e.responseStatus.code : 0,
    decision: str('portcullis.dev/decision') ?? '?',
    ...opt('cluster', str('portcullis.dev/cluster')),
    ...opt('revision', rev !== undefined && /^\d+$/.test(rev) ? Number(rev) : undefined),
    ...opt('digest', str('portcullis.dev/policy-digest')),
    ...opt('deliveredCommit', str('portcullis.dev/policy-commit')),
    ...opt('source', src?.[1] !== undefined && src[2] !== undefined ? { file: src[1], line: Number(src[2]) } : undefined),
    ...opt('grant', str('portcullis.dev/grant')),
    ...opt('deny', str('portcullis.dev/deny')),
  };
  return out;
}

function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

/** Resolves one record against its cluster's bundle history; pure. */
export function traceRecord(r: RecordFacts, history: BundleHistory | undefined): Trace {
  if (r.cluster === undefined || r.revision === undefined) return { status: 'skipped', record: r, why: 'no cluster or bundle revision (refused before a bundle was consulted)' };
  if (history === undefined) return { status: 'untraced', record: r, problems: [`no history of ${r.cluster}'s bundle in this repository`] };
  const c = history.get(r.revision);
  if (c === undefined) return { status: 'untraced', record: r, problems: [`revision ${r.revision} of ${r.cluster}'s bundle was never committed here`] };
  const problems: string[] = [];
  if (r.digest !== undefined && r.digest !== c.sourceDigest) problems.push(`policy digest ${r.digest} differs from the committed bundle's ${c.sourceDigest}`);
  if (r.deliveredCommit !== undefined && r.deliveredCommit !== c.commit) {
    problems.push(`the bundle was delivered as commit ${r.deliveredCommit}, but revision ${r.revision} entered git in ${c.commit}`);
  }
  return { status: 'traced', record: r, commit: c, problems };
}

/** Builds a cluster's history from the envelope at each commit that touched it (oldest first); pure. */
export function historyOf(versions: readonly { readonly commit: Omit<BundleCommit, 'revision' | 'sourceDigest'>; readonly envelope: string }[]): BundleHistory {
  const out = new Map<number, BundleCommit>();
  for (const v of versions) {
    const st = readStatement(v.envelope);
    if (st === undefined || out.has(st.revision)) continue;
    out.set(st.revision, { ...v.commit, revision: st.revision, sourceDigest: st.sourceDigest });
  }
  return out;
}

/** Text for one trace; `line` is the policy line at the commit, when it could be read. */
export function renderTrace(t: Trace, line: string | undefined): string {
  const r = t.record;
  const head = `${r.auditID} ${r.user} ${r.verb} ${r.requestURI} → ${r.code} ${r.decision}${r.grant ? ` by grant ${r.grant}` : ''}${r.deny ? ` by deny ${r.deny}` : ''}`;
  if (t.status === 'skipped') return `${head}\n  skipped: ${t.why}\n`;
  const lines = [head];
  if (t.status === 'traced') {
    const c = t.commit;
    lines.push(`  ${r.cluster} bundle revision ${r.revision}: commit ${c.commit} (${c.date}, ${c.author}: ${JSON.stringify(c.subject)})`);
    if (r.source) lines.push(`  ${r.source.file}:${r.source.line} at ${c.commit.slice(0, 12)}: ${line === undefined ? '(not found in that commit)' : line.trim()}`);
    if (r.deliveredCommit !== undefined && r.deliveredCommit === c.commit) lines.push('  delivered commit: matches');
  }
  for (const p of t.problems) lines.push(`  PROBLEM: ${p}`);
  return `${lines.join('\n')}\n`;
}

// ---- git -----------------------------------------------------------------------------

function git(repo: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', repo, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new GitopsError('GIT_FAILED', `git: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new GitopsError('GIT_FAILED', `git ${args.join(' ')}: ${Buffer.concat(err).toString('utf8').trim() || `exit ${code}`}`));
    });
  });
}

/** Reads the history of `generatedDir/<cluster>/bundle.sig.json` (generatedDir relative to the repository's top). */
export async function readBundleHistory(repo: string, generatedDir: string, cluster: string): Promise<BundleHistory> {
  const path = posix.join(generatedDir, cluster, ENVELOPE_FILE);
  const log = await git(repo, ['log', '--reverse', '--format=%H%x1f%an%x1f%aI%x1f%s', '--', path]);
  const versions = [];
  for (const row of log.split('\n').filter(Boolean)) {
    const [commit = '', author = '', date = '', subject = ''] = row.split('\x1f');
    const envelope = await git(repo, ['show', `${commit}:${path}`]).catch(() => undefined); // deleted in that commit
    if (envelope !== undefined) versions.push({ commit: { commit, author, date, subject }, envelope });
  }
  return historyOf(versions);
}

/** Traces every record of an audit log's text; reads git once per cluster and once per (commit, file). */
export async function traceAuditLog(text: string, repo: string, generatedDir: string): Promise<{ readonly text: string; readonly traces: readonly Trace[]; readonly unreadable: number }> {
  const histories = new Map<string, Promise<BundleHistory | undefined>>();
  const files = new Map<string, Promise<string[] | undefined>>();
  const traces: Trace[] = [];
  const out: string[] = [];
  let unreadable = 0;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    let facts: RecordFacts | undefined;
    try {
      facts = recordFacts(JSON.parse(raw));
    } catch {
      facts = undefined;
    }
    if (facts === undefined) {
      unreadable++;
      continue;
    }
    const cluster = facts.cluster;
    if (cluster !== undefined && !histories.has(cluster)) {
      histories.set(cluster, readBundleHistory(repo, generatedDir, cluster).then((h) => (h.size ? h : undefined)));
    }
    const t = traceRecord(facts, cluster === undefined ? undefined : await histories.get(cluster));
    let line: string | undefined;
    if (t.status === 'traced' && facts.source) {
      const key = `${t.commit.commit}:${facts.source.file}`;
      if (!files.has(key)) files.set(key, git(repo, ['show', key]).then((s) => s.split('\n'), () => undefined));
      line = (await files.get(key))?.[facts.source.line - 1];
    }
    traces.push(t);
    out.push(renderTrace(t, line));
  }
  return { text: out.join(''), traces, unreadable };
}
