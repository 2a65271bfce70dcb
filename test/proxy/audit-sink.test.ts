// The audit sink and Event shape (SECURITY rule 17, unit level).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { toAuditEvent, type AuditFacts } from '../../runtime-proxy/audit/event.ts';
import { AuditSink } from '../../runtime-proxy/audit/sink.ts';

const FACTS: AuditFacts = {
  auditId: 'a1',
  stage: 'ResponseComplete',
  requestURI: '/clusters/dev/api/v1/namespaces/n/pods/p',
  method: 'GET',
  receivedAt: Date.parse('2026-01-01T00:00:00.123Z'),
  at: Date.parse('2026-01-01T00:00:00.456Z'),
  sourceIP: '127.0.0.1',
  userAgent: 'kubectl',
  cluster: 'dev',
  transport: 'http2',
  user: { name: 'oidc:a', groups: ['oidc:g'], issuer: 'https://idp' },
  impersonated: { user: 'oidc:a', groups: ['oidc:g'] },
  attributes: { user: 'oidc:a', groups: ['oidc:g'], verb: 'get', isResourceRequest: true, path: '/api/v1/namespaces/n/pods/p', apiGroup: '', apiVersion: 'v1', resource: 'pods', subresource: '', namespace: 'n', name: 'p' },
  decision: 'allow',
  reason: 'grant',
  grantId: 'g1',
  source: 'policies/x.ts:7',
  bundleRevision: 4,
  policyDigest: 'abc',
  code: 200,
};

/** The auditIDs of the request records among `lines` (checkpoint lines are the proxy's own). */
function requestIds(lines: readonly string[]): string[] {
  return lines.map((l) => JSON.parse(l) as { auditID: string; verb: string }).filter((e) => e.verb !== 'checkpoint').map((e) => e.auditID);
}

describe('audit', () => {
  it('GIVEN the facts of a request WHEN turned into an Event THEN it has the audit.k8s.io/v1 shape and the decision annotations', () => {
    assert.deepEqual(toAuditEvent(FACTS), {
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      level: 'Metadata',
      auditID: 'a1',
      stage: 'ResponseComplete',
      requestURI: '/clusters/dev/api/v1/namespaces/n/pods/p',
      verb: 'get',
      user: { username: 'oidc:a', groups: ['oidc:g'], extra: { 'portcullis.dev/authenticated-by': ['https://idp'] } },
      impersonatedUser: { username: 'oidc:a', groups: ['oidc:g'] },
      sourceIPs: ['127.0.0.1'],
      userAgent: 'kubectl',
      objectRef: { resource: 'pods', namespace: 'n', name: 'p', apiGroup: '', apiVersion: 'v1' },
      responseStatus: { metadata: {}, code: 200 },
      requestReceivedTimestamp: '2026-01-01T00:00:00.123000Z',
      stageTimestamp: '2026-01-01T00:00:00.456000Z',
      annotations: {
        'portcullis.dev/decision': 'allow',
        'portcullis.dev/reason': 'grant',
        'portcullis.dev/transport': 'http2',
        'portcullis.dev/cluster': 'dev',
        'portcullis.dev/grant': 'g1',
        'portcullis.dev/source': 'policies/x.ts:7',
        'portcullis.dev/bundle-revision': '4',
        'portcullis.dev/policy-digest': 'abc',
      },
    });
  });

  it('GIVEN a size limit WHEN more than it is written THEN the file rotates and no line is lost or split', () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const path = join(dir, 'audit.log');
    const sink = new AuditSink({ file: { path, maxBytes: 4000, maxFiles: 3 }, stdout: false, flushIntervalMs: 60_000 });
    for (let i = 0; i < 30; i++) {
      sink.write(toAuditEvent({ ...FACTS, auditId: `id-${i}` }));
      sink.flush();
    }
    sink.close();
    const files = [path, `${path}.1`, `${path}.2`, `${path}.3`].filter(existsSync);
    assert.ok(files.length >= 3, files.join());
    const ids = files.flatMap((f) => requestIds(readFileSync(f, 'utf8').trim().split('\n')));
    // oldest files beyond maxFiles are dropped by design; what is kept is whole and in order
    const nums = ids.map((x) => Number(x.slice(3))).sort((a, b) => a - b);
    assert.equal(nums.at(-1), 29);
    assert.deepEqual(nums, [...new Set(nums)]);
    for (const f of files) assert.ok(readFileSync(f).length <= 4000 + 1000);
  });

  it('GIVEN stdout WHEN flushed THEN each Event is one line', () => {
    const out: string[] = [];
    const sink = new AuditSink({ stdout: true, flushIntervalMs: 60_000, stdoutWrite: (c) => out.push(c) });
    sink.write(toAuditEvent(FACTS));
    sink.write(toAuditEvent({ ...FACTS, auditId: 'a2' }));
    assert.equal(out.length, 0, 'buffered until flush');
    sink.close();
    assert.deepEqual(requestIds(out.join('').trim().split('\n')), ['a1', 'a2']);
  });

  it('GIVEN a failing file WHEN flushed THEN the sink is unhealthy and keeps the lines', () => {
    const sink = new AuditSink({ file: { path: '/dev/full', maxBytes: 1e12, maxFiles: 1 }, stdout: false, flushIntervalMs: 60_000 });
    sink.write(toAuditEvent(FACTS));
    assert.equal(sink.flush(), false);
    assert.equal(sink.healthy, false);
    assert.equal(sink.written, 0);
  });
});

describe('audit on a full file system', () => {
  it('GIVEN a 256 KiB tmpfs that fills up WHEN a chunk is written part-way THEN the part is cut off, and after space is freed every record is in the file once, whole and in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-full-'));
    const script = fileURLToPath(new URL('../support/audit-full-disk.ts', import.meta.url));
    const runTs = fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url));
    // A mount namespace of the test's own: the tmpfs exists only for this child.
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=256k tmpfs "$1" && "$2" "$3" "$4" "$1" && cat "$1/audit.log" > "$1.out"`, 'sh', dir, process.execPath, runTs, script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const seen = JSON.parse(r.stdout) as { failure?: { freeBefore: number; sizeBefore: number; sizeAfter: number }; retriedWhileFull: boolean; recovered: boolean; queued: number };
    assert.ok(seen.failure, 'a flush failed');
    // Some bytes fitted, fewer than a chunk (50 records of ~1 KiB): the write was short.
    assert.ok(seen.failure.freeBefore > 0 && seen.failure.freeBefore < 40_000, `free before the failing flush: ${seen.failure.freeBefore}`);
    assert.equal(seen.failure.sizeAfter, seen.failure.sizeBefore, 'the short write was cut off');
    assert.equal(seen.retriedWhileFull, false);
    assert.equal(seen.recovered, true);
    const lines = readFileSync(`${dir}.out`, 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'the file ends with a whole line');
    const ids = requestIds(lines);
    assert.deepEqual(ids, Array.from({ length: seen.queued }, (_, i) => `id-${i}`));
  });
});
