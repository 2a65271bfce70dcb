/**
 * `portcullis audit-trace`: audit records back to the commit and policy line, in a real git
 * repository whose generated/ the real compiler wrote, one commit per policy change.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeRuleSet } from '../../core/index.ts';
import { historyOf, recordFacts, traceRecord } from '../../gitops/audit-trace.ts';
import { readStatement } from '../../gitops/generated.ts';
import { toAuditEvent, type AuditFacts } from '../../runtime-proxy/audit/event.ts';
import { appendToLastFunction, makeWorkspace, type Workspace } from './workspace.ts';

const EDIT = `new Grant(fleet, 'trace-contractor-configmaps', { to: [id.contractor], role: new Role(fleet, 'trace-configmap-reader').allow(['get', 'list'], ['configmaps']), clusters: { names: ['dev'] }, namespaces: ['search'] });`;

let ws: Workspace;
const commits: string[] = [];

function git(...args: string[]): string {
  const r = spawnSync('git', ['-C', ws.dir, '-c', 'user.name=Pat Auditor', '-c', 'user.email=pat@example.com', '-c', 'commit.gpgsign=false', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function commitAll(subject: string): string {
  git('add', 'policies', 'generated');
  git('commit', '-q', '-m', subject);
  return git('rev-parse', 'HEAD');
}

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

before(async () => {
  ws = makeWorkspace();
  git('init', '-q');
  commits.push(commitAll('Initial policy'));
  before1 = devBundle('checkout.edit');
  ws.edit('policies/access.ts', (t) => appendToLastFunction(t, EDIT));
  const c = await ws.cli(['compile', '--no-typecheck']);
  assert.equal(c.code, 0, c.stderr);
  commits.push(commitAll('Let contractors read configmaps in search'));
  after2 = devBundle('trace-contractor-configmaps');
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
    assert.match(second ?? '', /delivered commit: matches/);
    assert.match(third ?? '', /skipped: no cluster or bundle revision/);
    assert.match(r.stderr, /3 records: 2 traced, 0 not traceable, 1 skipped, 0 with problems/);
  });

  it('GIVEN a record whose delivered commit or digest contradicts git, or whose revision was never committed WHEN traced THEN each is a PROBLEM and the exit status is 1', async () => {
    const [c1] = commits as [string, string];
    const log = [
      record('00000000-0000-4000-8000-000000000004', { grantId: 'trace-contractor-configmaps', source: after2.source, bundleRevision: after2.revision, policyDigest: after2.digest, policyCommit: c1 }),
      record('00000000-0000-4000-8000-000000000005', { grantId: 'checkout.edit', source: before1.source, bundleRevision: before1.revision, policyDigest: `sha256:${'0'.repeat(64)}` }),
      record('00000000-0000-4000-8000-000000000006', { grantId: 'checkout.edit', source: before1.source, bundleRevision: 9999 }),
      'not json',
    ].join('\n');
    const r = await trace(log);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`PROBLEM: the bundle was delivered as commit ${c1}, but revision ${after2.revision} entered git in ${commits[1]}`));
    assert.match(r.stdout, /PROBLEM: policy digest sha256:0{64} differs from the committed bundle's sha256:/);
    assert.match(r.stdout, /PROBLEM: revision 9999 of dev's bundle was never committed here/);
    assert.match(r.stderr, /3 records: 2 traced, 1 not traceable, 0 skipped, 3 with problems; 1 lines were not audit Events/);
    const json = await trace(log, '--format', 'json');
    const traces = JSON.parse(json.stdout) as { status: string; problems: string[] }[];
    assert.deepEqual(traces.map((t) => `${t.status} ${t.problems.length}`), ['traced 1', 'traced 1', 'untraced 1']);
  });

  it('GIVEN input that is not an audit log, or a directory that is not a git repository WHEN traced THEN it says so and exits 1', async () => {
    const r = await ws.cli(['audit-trace', '--repo', ws.dir, join(ws.dir, 'package.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no audit Events in the input/);
    const r2 = await trace(record('00000000-0000-4000-8000-000000000007', { bundleRevision: 1 }), '--repo', '/');
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /GIT_FAILED: git log/);
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
    assert.deepEqual([...history].map(([r, c]) => `${r}:${c.commit}`), ['1:c1', '2:c2', '3:c4']);
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
