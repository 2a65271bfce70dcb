// The request lifecycle (exchange.ts): every outcome, a bug of the proxy's own included, ends in
// exactly one ResponseComplete record, with drain accounting, and an internal error is reported
// as the proxy's (500 INTERNAL), never as the cluster being unreachable.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import type { Authenticator } from '../../runtime-proxy/identity.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from './harness.ts';

const NS = 'proxy-lifecycle';
const READ = [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }];
const RULES = ruleSet('dev', [grant('dev-read', [group('oidc:developers')], READ, ns(NS))], { users: ['oidc:alice'] });

describe('the request lifecycle', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: manifestsYaml(upstreamRole(NS, 'dev-read', [group('oidc:developers')], READ)), impersonable: RULES.impersonable, ruleSet: RULES });
  });
  after(async () => {
    await h?.stop();
  });

  const records = (file: string): AuditEvent[] => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEvent);

  it('GIVEN a bug in a stage (an authenticator that throws) WHEN a request arrives THEN 500 INTERNAL as a Status, one audit record that says so, and shutdown is not held up', async () => {
    const broken: Authenticator = {
      authenticate: () => {
        throw new TypeError('boom: a bug, not a refusal');
      },
    };
    const file = join(h.dir, 'audit-internal.log');
    const x = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, audit: { ...c.audit, file: { path: file, maxBytes: 1e6, maxFiles: 1 } } }), broken);
    const r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', 'Bearer x']], undefined, x.port);
    assert.equal(r.status, 500);
    const body = JSON.parse(r.body) as { kind: string; reason: string; message: string };
    assert.deepEqual([body.kind, body.reason], ['Status', 'InternalError']);
    assert.doesNotMatch(body.message, /could not be reached|boom/, 'neither blamed on the cluster nor leaking the detail');
    const t0 = Date.now();
    await x.proxy.stop();
    assert.ok(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms: the failed request still counted as in flight`);
    const recs = records(file).filter((e) => e.auditID === r.headers['audit-id']);
    assert.equal(recs.length, 1);
    assert.equal(recs[0]?.stage, 'ResponseComplete');
    assert.equal(recs[0]?.responseStatus?.code, 500);
    assert.equal(recs[0]?.annotations?.['portcullis.dev/error'], 'INTERNAL');
    assert.match(recs[0]?.annotations?.['portcullis.dev/detail'] ?? '', /boom: a bug/);
    assert.ok(x.logs().some((l) => l['msg'] === 'request handler failed' && String(l['err']).includes('boom')));
  });

  it('GIVEN requests that end every way (served, unauthenticated, no route, unknown cluster, forbidden, non-canonical, watch) THEN each has exactly one ResponseComplete record, and a watch one ResponseStarted too', async () => {
    const alice = await h.token('alice', ['developers']);
    const auth: [string, string][] = [['Authorization', `Bearer ${alice}`]];
    const cases: [string, readonly (readonly [string, string])[], number][] = [
      [`/clusters/dev/api/v1/namespaces/${NS}/configmaps`, auth, 200],
      [`/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [], 401],
      ['/nowhere', auth, 404],
      ['/clusters/nope/api', auth, 404],
      [`/clusters/dev/api/v1/namespaces/${NS}/secrets`, auth, 403],
      [`/clusters/dev/api/v1/namespaces/${NS}//configmaps`, auth, 400],
      [`/clusters/dev/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=1`, auth, 200],
    ];
    const ids: string[] = [];
    for (const [path, headers, want] of cases) {
      const r = await h.request('GET', path, headers);
      assert.equal(r.status, want, `${path}: ${r.body}`);
      ids.push(String(r.headers['audit-id']));
    }
    const events = h.auditEvents();
    for (const [i, id] of ids.entries()) {
      const mine = events.filter((e) => e.auditID === id);
      assert.equal(mine.filter((e) => e.stage === 'ResponseComplete').length, 1, `${cases[i]?.[0]}: ${JSON.stringify(mine)}`);
      assert.equal(mine.filter((e) => e.stage === 'ResponseStarted').length, i === cases.length - 1 ? 1 : 0, `${cases[i]?.[0]}`);
      assert.equal(mine.find((e) => e.stage === 'ResponseComplete')?.responseStatus?.code, cases[i]?.[2]);
    }
  });
});
