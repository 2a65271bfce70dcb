/**
 * `portcullis audit-trace`: audit records back to the commit and policy line, in a real git
 * repository whose generated/ the real compiler wrote, one commit per policy change.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeRuleSet } from '../../core/index.ts';
import { historyOf, recordFacts, traceRecord } from '../../gitops/audit-trace.ts';
import { readStatement } from '../../gitops/generated.ts';
import { toAuditEvent, type AuditFacts } from '../../runtime-proxy/audit/event.ts';
import { appendToLastFunction, makeWorkspace, repoRoot, type Workspace } from './workspace.ts';

const EDIT = `new Grant(fleet, 'trace-contractor-configmaps', { to: [id.contractor], role: new Role(fleet, 'trace-configmap-reader').allow(['get', 'list'], ['configmaps']), clusters: { names: ['dev'] }, namespaces: ['search'] });`;
const EDIT2 = `new Grant(fleet, 'trace-contractor-secrets', { to: [id.contractor], role: new Role(fleet, 'trace-secret-lister').allow(['list'], ['secrets']), clusters: { names: ['dev'] }, namespaces: ['search'] });`;

let ws: Workspace;
const commits: string[] = [];

const git = (...args: string[]): string => ws.git(...args);
const commitAll = (subject: string): string => ws.commitAll(subject);

/** What the dev bundle at HEAD says: revision, digest, and where a grant is defined. */
function devBundle(grantId: string): { revision: number; digest: string; source: string } {
  const st = readStatement(ws.read('generated/dev/bundle.sig.json'));
  assert.ok(st);
  const g = decodeRuleSet(ws.read('generated/dev/rules.json')).grants.find((x) => x.id === grantId);
  assert.ok(g, grantId);
  return { revision: st.revision, digest: st.sourceDigest, source: `${g.source.file}:${g.source.line}` };
}

function record(auditId: string, extra: Partial<AuditFacts>): string {
  const facts: AuditFacts = {
    auditId,
    stage: 'ResponseComplete',
    requestURI: '/api/v1/namespaces/search/configmaps',
    method: 'GET',
    receivedAt: Date.parse('2026-11-22T10:00:00Z'),
    at: Date.parse('2026-11-22T10:00:00Z'),
    sourceIP: '127.0.0.1',
    transport: 'http1',
    decision: 'allow',
    reason: 'allowed',
    code: 200,
    cluster: 'dev',
    user: { name: 'oidc:zoe@contractor.example', groups: [], issuer: 'https://idp.example' },
    ...extra,
  };
  return JSON.stringify(toAuditEvent(facts));
}

function trace(input: string, ...args: string[]) {
  const file = join(ws.dir, `audit-${commits.length}-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(file, input);
  return ws.cli(['audit-trace', '--repo', ws.dir, ...args, file]);
}

let before1: { revision: number; digest: string; source: string };
let after2: { revision: number; digest: string; source: string };
let merged3: { revision: number; digest: string; source: string };
let featureCommit: string;
let mergeCommit: string;
let laterCommit: string;

before(async () => {
  ws = makeWorkspace();
  git('init', '-q', '-b', 'main');
  commits.push(commitAll('Initial policy'));
  before1 = devBundle('checkout.edit');
  ws.edit('policies/access.ts', (t) => appendToLastFunction(t, EDIT));
  const c = await ws.cli(['compile', '--no-typecheck']);
  assert.equal(c.code, 0, c.stderr);
  commits.push(commitAll('Let contractors read configmaps in search'));
  after2 = devBundle('trace-contractor-configmaps');
  // A pull request merged with a merge commit, as GitHub does: $GITHUB_SHA on main is the merge.
  git('checkout', '-q', '-b', 'feature');
  ws.edit('policies/access.ts', (t) => appendToLastFunction(t, EDIT2));
  const c2 = await ws.cli(['compile', '--no-typecheck']);
  assert.equal(c2.code, 0, c2.stderr);
  featureCommit = commitAll('Let contractors list secrets in search');
  merged3 = devBundle('trace-contractor-secrets');
  git('checkout', '-q', 'main');
  git('merge', '-q', '--no-ff', 'feature', '-m', 'Merge pull request #7 from feature');
  mergeCommit = git('rev-parse', 'HEAD');
  // Then a push that changes no bundle (a re-run of apply would deliver its commit).
  writeFileSync(join(ws.dir, 'policies', 'NOTES.md'), 'notes\n');
  laterCommit = commitAll('Notes');
});

after(() => ws?.remove());

describe('audit-trace', () => {
  it('GIVEN records of two bundle revisions WHEN traced THEN each names the commit its revision entered git in and the deciding policy line at that commit', async () => {
    const [c1, c2] = commits as [string, string];
    assert.equal(after2.revision, before1.revision + 1);
    const log = [
      record('00000000-0000-4000-8000-000000000001', { grantId: 'checkout.edit', source: before1.source, bundleRevision: before1.revision, policyDigest: before1.digest }),
      record('00000000-0000-4000-8000-000000000002', { grantId: 'trace-contractor-configmaps', source: after2.source, bundleRevision: after2.revision, policyDigest: after2.digest, policyCommit: c2 }),
      // Refused before any bundle was consulted: nothing to trace.
      JSON.stringify(toAuditEvent({ auditId: '00000000-0000-4000-8000-000000000003', stage: 'ResponseComplete', requestURI: '/clusters/dev/api', method: 'GET', receivedAt: 0, at: 0, sourceIP: '127.0.0.1', transport: 'http1', decision: 'deny', reason: 'unauthenticated', code: 401 })),
    ].join('\n');
    const r = await trace(`${log}\n`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [first, second, third] = r.stdout.split(/\n(?=\S)/);
    assert.match(first ?? '', new RegExp(`dev bundle revision ${before1.revision}: commit ${c1} \\(.+, Pat Auditor: "Initial policy"\\)`));
    const line1 = ws.read(before1.source.split(':')[0] ?? '').split('\n')[Number(before1.source.split(':')[1]) - 1]?.trim() ?? '';
    assert.ok(line1.length > 0);
    assert.ok((first ?? '').includes(`${before1.source} at ${c1.slice(0, 12)}: ${line1}`), first);
    assert.match(second ?? '', new RegExp(`dev bundle revision ${after2.revision}: commit ${c2} \\(.+"Let contractors read configmaps in search"\\)`));
    assert.match(second ?? '', new RegExp(`${after2.source} at ${c2.slice(0, 12)}: new Grant\\(fleet, 'trace-contractor-configmaps'`));
    assert.match(second ?? '', /delivered commit: the same/);
    assert.match(third ?? '', /skipped: no cluster or bundle revision/);
    assert.match(r.stderr, /3 records: 2 traced, 0 not traceable, 1 skipped, 0 with problems/);
  });

  it('GIVEN a record whose delivered commit or digest contradicts git, or whose revision was never committed WHEN traced THEN each is a PROBLEM and the exit status is 1', async () => {
    const [c1] = commits as [string, string];
    const pwned = join(ws.dir, 'pwned');
    const written = `${pwned}:generated/dev/bundle.sig.json`;
    mkdirSync(dirname(written), { recursive: true });
    const log = [
      record('00000000-0000-4000-8000-000000000004', { grantId: 'trace-contractor-configmaps', source: after2.source, bundleRevision: after2.revision, policyDigest: after2.digest, policyCommit: c1 }),
      record('00000000-0000-4000-8000-000000000005', { grantId: 'checkout.edit', source: before1.source, bundleRevision: before1.revision, policyDigest: `sha256:${'0'.repeat(64)}` }),
      record('00000000-0000-4000-8000-000000000006', { grantId: 'checkout.edit', source: before1.source, bundleRevision: 9999 }),
      // A delivered commit that is no commit id never reaches git as an argument (as an option, this one would write a file).
      record('00000000-0000-4000-8000-00000000000d', { grantId: 'checkout.edit', source: before1.source, bundleRevision: before1.revision, policyDigest: before1.digest, policyCommit: `--output=${pwned}` }),
      'not json',
    ].join('\n');
    const r = await trace(log);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`PROBLEM: the bundle was delivered as commit ${c1}, which does not carry revision ${after2.revision} of dev's bundle \\(it entered git in ${commits[1]}\\)`));
    assert.match(r.stdout, new RegExp(`PROBLEM: policy digest sha256:0{64} matches no committed bundle of revision ${before1.revision} \\(${c1} has sha256:`));
    assert.match(r.stdout, /PROBLEM: revision 9999 of dev's bundle was never committed on this branch/);
    assert.ok(r.stdout.includes(`PROBLEM: the bundle was delivered as commit --output=${pwned}, which does not carry revision`), r.stdout);
    assert.equal(existsSync(written), false, 'git was never handed the record\'s value as an option');
    assert.match(r.stderr, /4 records: 3 traced, 1 not traceable, 0 skipped, 4 with problems; 1 lines were not audit Events/);
    const json = await trace(log, '--format', 'json');
    const traces = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { status: string; problems: string[] });
    assert.deepEqual(traces.map((t) => `${t.status} ${t.problems.length}`), ['traced 1', 'traced 1', 'untraced 1', 'traced 1']);
  });

  it('GIVEN input that is not an audit log, or a directory that is not a git repository WHEN traced THEN it says so and exits 1', async () => {
    const r = await ws.cli(['audit-trace', '--repo', ws.dir, join(ws.dir, 'package.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no audit Events in the input/);
    const missing = await ws.cli(['audit-trace', '--repo', ws.dir, join(ws.dir, 'no-such.log')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*no-such\.log: ENOENT/);
    // Files are read in turn: a missing later file is the same clear error, after the earlier ones were traced.
    const good = join(ws.dir, 'good.log');
    writeFileSync(good, record('00000000-0000-4000-8000-00000000000c', { grantId: 'checkout.edit', source: before1.source, bundleRevision: before1.revision, policyDigest: before1.digest }));
    const laterMissing = await ws.cli(['audit-trace', '--repo', ws.dir, good, join(ws.dir, 'no-such-2.log')]);
    assert.equal(laterMissing.code, 1);
    assert.match(laterMissing.stderr, /cannot read .*no-such-2\.log: ENOENT/);
    assert.match(laterMissing.stdout, new RegExp(`dev bundle revision ${before1.revision}: commit`));
    const r2 = await trace(record('00000000-0000-4000-8000-000000000007', { bundleRevision: 1 }), '--repo', '/');
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /GIT_FAILED: git rev-parse/);
  });

  it('GIVEN a bundle merged from a pull request WHEN traced THEN it names the merge commit on the branch, and any later commit that carries the same bundle is a consistent delivery', async () => {
    const rec = (id: string, commit: string) =>
      record(id, { grantId: 'trace-contractor-secrets', source: merged3.source, bundleRevision: merged3.revision, policyDigest: merged3.digest, policyCommit: commit });
    const r = await trace([rec('00000000-0000-4000-8000-000000000008', mergeCommit), rec('00000000-0000-4000-8000-000000000009', laterCommit), rec('00000000-0000-4000-8000-00000000000a', featureCommit)].join('\n'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [viaMerge, viaLater, viaFeature] = r.stdout.split(/\n(?=\S)/);
    assert.match(viaMerge ?? '', new RegExp(`revision ${merged3.revision}: commit ${mergeCommit} .*"Merge pull request #7 from feature"`));
    assert.match(viaMerge ?? '', /delivered commit: the same/);
    assert.match(viaLater ?? '', new RegExp(`delivered commit: ${laterCommit}, which carries the same bundle`));
    // The feature branch's own commit carries the same bundle too (it is what was merged).
    assert.match(viaFeature ?? '', /which carries the same bundle/);
    assert.match(viaMerge ?? '', new RegExp(`${merged3.source} at ${mergeCommit.slice(0, 12)}: new Grant\\(fleet, 'trace-contractor-secrets'`));
  });

  it('GIVEN a record with control characters WHEN traced THEN they are escaped, so a record cannot forge output lines', async () => {
    const forged = record('00000000-0000-4000-8000-00000000000b', { bundleRevision: before1.revision, policyDigest: before1.digest, grantId: 'x\n  delivered commit: the same' });
    const r = await trace(forged);
    assert.doesNotMatch(r.stdout, /\n {2}delivered commit/);
    assert.match(r.stdout, /by grant x\\u000a {2}delivered commit: the same/);
  });
});

describe('audit-trace | head', () => {
  it('GIVEN a reader that stops early WHEN tracing a long log THEN the command ends quietly, without an EPIPE stack trace', async () => {
    const one = record('00000000-0000-4000-8000-00000000000c', { grantId: 'checkout.edit', source: before1.source, bundleRevision: before1.revision, policyDigest: before1.digest });
    const file = join(ws.dir, 'long.log');
    writeFileSync(file, `${one}\n`.repeat(20_000));
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'portcullis.js'), 'audit-trace', '--repo', ws.dir, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.doesNotMatch(err, /EPIPE|Unhandled/);
    assert.equal(code, 0);
  });
});

describe('traceRecord (pure)', () => {
  const v = (commit: string, revision: number) => ({
    commit: { commit, author: 'a', date: 'd', subject: 's' },
    envelope: JSON.stringify({ payload: Buffer.from(JSON.stringify({ revision, sourceDigest: `digest-${revision}` })).toString('base64') }),
  });
  const history = historyOf([v('c1', 1), v('c2', 2), v('c3', 2), v('c4', 3)]);
  const facts = (ann: Record<string, string>) => recordFacts({ kind: 'Event', auditID: 'x', annotations: { 'portcullis.dev/cluster': 'dev', ...ann } });

  it('maps a revision to the first commit that carried it', () => {
    assert.deepEqual([...history.byRevision].map(([r, c]) => `${r}:${c.commit}`), ['1:c1', '2:c2', '3:c4']);
    const t = traceRecord(facts({ 'portcullis.dev/bundle-revision': '2', 'portcullis.dev/policy-digest': 'digest-2', 'portcullis.dev/policy-commit': 'c2' }) ?? assert.fail(), history);
    assert.equal(t.status === 'traced' && t.commit.commit, 'c2');
    assert.deepEqual(t.status === 'traced' && t.problems, []);
  });

  it('reads only audit Events, and only numeric revisions', () => {
    assert.equal(recordFacts({ kind: 'Pod' }), undefined);
    assert.equal(recordFacts('x'), undefined);
    assert.equal(traceRecord(facts({ 'portcullis.dev/bundle-revision': '2a' }) ?? assert.fail(), history).status, 'skipped');
  });
});
