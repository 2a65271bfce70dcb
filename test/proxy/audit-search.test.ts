// `portcullis audit search` over the files of two real proxy replicas that kubectl went through:
// by user, cluster, grant, decision and time range, oldest first, checkpoints never matched.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from './harness.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const NS = 'proxy-audit-search';
const READ = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }];
const RULES = ruleSet('dev', [grant('dev-read', [group('oidc:developers')], READ, ns(NS))], { users: ['oidc:alice', 'oidc:bob'] });

describe('portcullis audit search', () => {
  let h: Harness;
  let files: string[];
  let between = 0;
  const search = (args: readonly string[]) => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'audit', 'search', ...files, '--json', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return { events: r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditEvent), summary: r.stderr };
  };

  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: manifestsYaml(upstreamRole(NS, 'dev-read', [group('oidc:developers')], READ)), impersonable: RULES.impersonable, ruleSet: RULES });
    const replicaFile = join(h.dir, 'audit-replica-b.log');
    const b = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, audit: { ...c.audit, file: { path: replicaFile, maxBytes: 1e6, maxFiles: 1 }, checkpointEvery: 2 } }));
    const alice = h.kubeconfig(await h.token('alice', ['developers']));
    const bob = h.kubeconfig(await h.token('bob', []));
    const viaB = ['--server', `https://127.0.0.1:${b.port}/clusters/dev`];
    assert.equal((await h.kubectl(alice, ['get', 'configmaps', '-n', NS])).status, 0);
    assert.notEqual((await h.kubectl(bob, ['get', 'configmaps', '-n', NS])).status, 0);
    await new Promise((r) => setTimeout(r, 50));
    between = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await h.kubectl(alice, [...viaB, 'get', 'configmaps', '-n', NS])).status, 0);
    assert.notEqual((await h.kubectl(alice, [...viaB, 'get', 'secrets', '-n', NS])).status, 0);
    await b.proxy.stop();
    h.auditEvents(); // flushes replica A
    files = [h.auditFile, replicaFile];
  });
  after(async () => {
    await h?.stop();
  });

  it("GIVEN two replicas' files WHEN searched by user THEN that person's records from both, oldest first, and no checkpoint", () => {
    const { events, summary } = search(['--user', 'oidc:alice', '--stage', 'ResponseComplete']);
    const uris = events.map((e) => e.requestURI.replace(/\?.*/, ''));
    assert.ok(uris.filter((u) => u.endsWith('/configmaps')).length >= 2, uris.join());
    assert.ok(uris.some((u) => u.endsWith('/secrets')));
    assert.ok(events.every((e) => e.user.username === 'oidc:alice' && e.verb !== 'checkpoint'));
    const times = events.map((e) => Date.parse(e.requestReceivedTimestamp));
    assert.deepEqual(times, [...times].sort((a, b) => a - b));
    assert.match(summary, /^\d+ of \d+ records in 2 files/);
    // The files hold checkpoints (replica B signs every 2 records); no search returns one.
    assert.ok(readFileSync(files[1] as string, 'utf8').includes('"verb":"checkpoint"'));
    const all = search([]).events;
    assert.ok(all.length >= 8 && all.every((e) => e.verb !== 'checkpoint'), `${all.length}`);
  });

  it('GIVEN the same files WHEN searched by decision, grant, cluster and time range THEN exactly the matching records', () => {
    const denied = search(['--decision', 'deny', '--stage', 'ResponseComplete']).events;
    assert.deepEqual(new Set(denied.map((e) => `${e.user.username} ${e.objectRef?.resource}`)), new Set(['oidc:bob configmaps', 'oidc:alice secrets']));
    const granted = search(['--grant', 'dev-read', '--cluster', 'dev']).events;
    assert.ok(granted.length >= 2 && granted.every((e) => e.annotations['portcullis.dev/grant'] === 'dev-read' && e.annotations['portcullis.dev/decision'] === 'allow'));
    const late = search(['--since', new Date(between).toISOString(), '--decision', 'deny']).events;
    assert.deepEqual(late.map((e) => e.user.username), ['oidc:alice'], 'only the deny after the mark');
    const early = search(['--until', new Date(between).toISOString(), '--decision', 'deny']).events;
    assert.deepEqual(early.map((e) => e.user.username), ['oidc:bob']);
    assert.deepEqual(search(['--cluster', 'nowhere']).events, []);
  });

  it('GIVEN a file with a line that is not JSON WHEN searched THEN the line is named by file:line and the exit code is 1', () => {
    const bad = join(h.dir, 'broken.log');
    writeFileSync(bad, '{"kind":"Event"\nnot json\n');
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'audit', 'search', bad], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not JSON, skipped: .*broken\.log:1, .*broken\.log:2/);
    const t = spawnSync(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'audit', 'search', bad, '--since', 'yesterday'], { encoding: 'utf8' });
    assert.notEqual(t.status, 0);
    assert.match(t.stderr, /yesterday: neither a duration/);
  });
});
