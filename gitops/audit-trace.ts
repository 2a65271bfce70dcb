/**
 * `portcullis audit-trace`: from the proxy's audit records back to git.
 *
 * A record names its cluster, the bundle revision that decided it, the policy digest, the
 * deciding grant's or deny's `file:line`, and (when `apply` delivered the bundle) the commit.
 * Revision and digest are signed; the first-parent history of the deployed branch says which
 * commit first carried that bundle in `generated/<cluster>/bundle.sig.json`. This resolves every
 * record to that commit, shows the policy line as of it, and checks the delivered commit: it
 * must carry the same bundle (a merge commit, a later push or a re-run that delivered it does).
 *
 * Pure functions first (`traceRecord`, `renderTrace`); git and files at the end.
 */
import { posix } from 'node:path';
import { AUDIT_ANNOTATION as A, ENVELOPE_FILE, isCommitId } from '../core/index.ts';
import { readStatement } from './generated.ts';
import { git } from './git.ts';

/** One commit that changed a cluster's bundle envelope, oldest first. */
export interface BundleCommit {
  readonly commit: string;
  readonly author: string;
  readonly date: string;
  readonly subject: string;
  readonly revision: number;
  readonly sourceDigest: string;
}

/**
 * Where each bundle of a cluster entered git: `revision\0digest` → the first commit carrying it,
 * plus the first commit per bare revision for records without a digest.
 */
export interface BundleHistory {
  readonly byBundle: ReadonlyMap<string, BundleCommit>;
  readonly byRevision: ReadonlyMap<number, BundleCommit>;
}

const bundleKey = (revision: number, digest: string): string => `${revision}\0${digest}`;

/** What an audit record says about its policy (the fields this tool reads). */
interface RecordFacts {
  readonly auditID: string;
  readonly stage: string;
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
  const e = v as { kind?: unknown; auditID?: unknown; stage?: unknown; verb?: unknown; requestURI?: unknown; user?: { username?: unknown }; responseStatus?: { code?: unknown }; annotations?: Record<string, unknown> };
  if (e.kind !== 'Event' || typeof e.auditID !== 'string' || typeof e.annotations !== 'object' || e.annotations === null) return undefined;
  const a = e.annotations;
  const str = (k: string) => (typeof a[k] === 'string' ? (a[k] as string) : undefined);
  const rev = str(A.bundleRevision);
  const src = /^(.+):(\d+)$/.exec(str(A.source) ?? '');
  const out: RecordFacts = {
    auditID: e.auditID,
    stage: typeof e.stage === 'string' ? e.stage : '?',
    verb: typeof e.verb === 'string' ? e.verb : '?',
    requestURI: typeof e.requestURI === 'string' ? e.requestURI : '?',
    user: typeof e.user?.username === 'string' ? e.user.username : '?',
    code: typeof e.responseStatus?.code === 'number' ? e.responseStatus.code : 0,
    decision: str(A.decision) ?? '?',
    ...opt('cluster', str(A.cluster)),
    ...opt('revision', rev !== undefined && /^\d+$/.test(rev) ? Number(rev) : undefined),
    ...opt('digest', str(A.policyDigest)),
    ...opt('deliveredCommit', str(A.policyCommit)),
    ...opt('source', src?.[1] !== undefined && src[2] !== undefined ? { file: src[1], line: Number(src[2]) } : undefined),
    ...opt('grant', str(A.grant)),
    ...opt('deny', str(A.deny)),
  };
  return out;
}

function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

/**
 * Resolves one record against its cluster's bundle history; pure. `deliveredCarries` says whether
 * the commit the record names as delivered carries the same bundle (undefined: not checked).
 */
export function traceRecord(r: RecordFacts, history: BundleHistory | undefined, deliveredCarries?: boolean): Trace {
  if (r.cluster === undefined || r.revision === undefined) return { status: 'skipped', record: r, why: 'no cluster or bundle revision (refused before a bundle was consulted)' };
  if (history === undefined) return { status: 'untraced', record: r, problems: [`no history of ${r.cluster}'s bundle in this repository`] };
  const exact = r.digest === undefined ? undefined : history.byBundle.get(bundleKey(r.revision, r.digest));
  const c = exact ?? history.byRevision.get(r.revision);
  if (c === undefined) return { status: 'untraced', record: r, problems: [`revision ${r.revision} of ${r.cluster}'s bundle was never committed on this branch`] };
  const problems: string[] = [];
  if (r.digest !== undefined && exact === undefined) problems.push(`policy digest ${r.digest} matches no committed bundle of revision ${r.revision} (${c.commit} has ${c.sourceDigest})`);
  if (r.deliveredCommit !== undefined && r.deliveredCommit !== c.commit && deliveredCarries === false) {
    problems.push(`the bundle was delivered as commit ${r.deliveredCommit}, which does not carry revision ${r.revision} of ${r.cluster}'s bundle (it entered git in ${c.commit})`);
  }
  return { status: 'traced', record: r, commit: c, problems };
}

/** Builds a cluster's history from the envelope at each commit that touched it (oldest first); pure. */
export function historyOf(versions: readonly { readonly commit: Omit<BundleCommit, 'revision' | 'sourceDigest'>; readonly envelope: string }[]): BundleHistory {
  const byBundle = new Map<string, BundleCommit>();
  const byRevision = new Map<number, BundleCommit>();
  for (const v of versions) {
    const st = readStatement(v.envelope);
    if (st === undefined) continue;
    const c = { ...v.commit, revision: st.revision, sourceDigest: st.sourceDigest };
    const k = bundleKey(st.revision, st.sourceDigest);
    if (!byBundle.has(k)) byBundle.set(k, c);
    if (!byRevision.has(st.revision)) byRevision.set(st.revision, c);
  }
  return { byBundle, byRevision };
}

/** A log field for a terminal: control characters escaped, so a record cannot forge output lines. */
function safe(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text for one trace; `line` is the policy line at the commit, when it could be read. */
function renderTrace(t: Trace, line: string | undefined): string {
  const r = t.record;
  const head = safe(`${r.auditID} ${r.stage} ${r.user} ${r.verb} ${r.requestURI} → ${r.code} ${r.decision}${r.grant ? ` by grant ${r.grant}` : ''}${r.deny ? ` by deny ${r.deny}` : ''}`);
  if (t.status === 'skipped') return `${head}\n  skipped: ${t.why}\n`;
  const lines = [head];
  if (t.status === 'traced') {
    const c = t.commit;
    lines.push(safe(`  ${r.cluster} bundle revision ${r.revision}: commit ${c.commit} (${c.date}, ${c.author}: ${JSON.stringify(c.subject)})`));
    if (r.source) lines.push(safe(`  ${r.source.file}:${r.source.line} at ${c.commit.slice(0, 12)}: ${line === undefined ? '(not found in that commit)' : line.trim()}`));
    if (r.deliveredCommit !== undefined && t.problems.length === 0) {
      lines.push(r.deliveredCommit === c.commit ? '  delivered commit: the same' : safe(`  delivered commit: ${r.deliveredCommit}, which carries the same bundle`));
    }
  }
  for (const p of t.problems) lines.push(safe(`  PROBLEM: ${p}`));
  return `${lines.join('\n')}\n`;
}

// ---- git -----------------------------------------------------------------------------

/** The envelope of a cluster's bundle at a commit, or undefined if that commit has none. */
function envelopeAt(top: string, commit: string, path: string): Promise<string | undefined> {
  return git(top, ['show', `${commit}:${path}`]).catch(() => undefined);
}

/**
 * Reads the history of `generatedDir/<cluster>/bundle.sig.json` (generatedDir relative to the
 * repository's top) along the first parents of HEAD: the deployed branch's own commits, merge
 * commits included, not the commits of the branches merged into it.
 */
async function readBundleHistory(top: string, generatedDir: string, cluster: string): Promise<BundleHistory> {
  const path = posix.join(generatedDir, cluster, ENVELOPE_FILE);
  const log = await git(top, ['log', '--first-parent', '--reverse', '--format=%H%x1f%an%x1f%aI%x1f%s', 'HEAD', '--', path]);
  const versions = [];
  for (const row of log.split('\n').filter(Boolean)) {
    const [commit = '', author = '', date = '', subject = ''] = row.split('\x1f');
    const envelope = await envelopeAt(top, commit, path); // undefined: deleted in that commit
    if (envelope !== undefined) versions.push({ commit: { commit, author, date, subject }, envelope });
  }
  return historyOf(versions);
}

/** How many records of each outcome. */
export interface TraceCounts {
  readonly traced: number;
  readonly untraced: number;
  readonly skipped: number;
  readonly withProblems: number;
  readonly unreadable: number;
}

/**
 * Traces every line of an audit log as it streams by, handing each trace and its text to `emit`
 * (nothing is kept, so rotated logs of any size go through); reads git once per cluster, per
 * (commit, file) and per delivered commit.
 */
export async function traceAuditLog(lines: AsyncIterable<string>, repo: string, generatedDir: string, emit: (t: Trace, text: string) => void): Promise<TraceCounts> {
  const top = (await git(repo, ['rev-parse', '--show-toplevel'])).trim();
  const histories = new Map<string, Promise<BundleHistory | undefined>>();
  const files = new Map<string, Promise<string[] | undefined>>();
  const delivered = new Map<string, Promise<boolean>>();
  const n = { traced: 0, untraced: 0, skipped: 0, withProblems: 0, unreadable: 0 };
  for await (const raw of lines) {
    if (raw.trim() === '') continue;
    let facts: RecordFacts | undefined;
    try {
      facts = recordFacts(JSON.parse(raw));
    } catch {
      facts = undefined;
    }
    if (facts === undefined) {
      n.unreadable++;
      continue;
    }
    const cluster = facts.cluster;
    if (cluster !== undefined && !histories.has(cluster)) {
      histories.set(cluster, readBundleHistory(top, generatedDir, cluster).then((h) => (h.byRevision.size ? h : undefined)));
    }
    let carries: boolean | undefined;
    if (cluster !== undefined && facts.deliveredCommit !== undefined && facts.revision !== undefined) {
      // Does the delivered commit carry the bundle the record names (same revision and digest)?
      const { deliveredCommit: dc, revision, digest } = facts;
      const key = `${dc}\0${cluster}\0${revision}\0${digest ?? ''}`;
      // Only a full commit id goes to git: the field comes from a log line, and anything else names no commit.
      if (!isCommitId(dc)) delivered.set(key, Promise.resolve(false));
      else if (!delivered.has(key)) {
        delivered.set(
          key,
          envelopeAt(top, dc, posix.join(generatedDir, cluster, ENVELOPE_FILE)).then((e) => {
            const st = e === undefined ? undefined : readStatement(e);
            return st !== undefined && st.revision === revision && (digest === undefined || st.sourceDigest === digest);
          }),
        );
      }
      carries = await delivered.get(key);
    }
    const t = traceRecord(facts, cluster === undefined ? undefined : await histories.get(cluster), carries);
    let line: string | undefined;
    if (t.status === 'traced' && facts.source) {
      const key = `${t.commit.commit}:${facts.source.file}`;
      if (!files.has(key)) files.set(key, git(top, ['show', key]).then((s) => s.split('\n'), () => undefined));
      line = (await files.get(key))?.[facts.source.line - 1];
    }
    n[t.status]++;
    if (t.status !== 'skipped' && t.problems.length > 0) n.withProblems++;
    emit(t, renderTrace(t, line));
  }
  return n;
}
