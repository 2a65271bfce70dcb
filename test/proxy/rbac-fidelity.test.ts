// RBAC carries what the proxy allows: a grant of `create` on pods/exec alone is allowed by the
// proxy (SECURITY rule 4), and kube-apiserver 1.34 authorizes a WebSocket exec as `get` on
// pods/exec, so the compiler's RBAC must grant that too (compiler/synth.ts rbacRules).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rbacRules, streamGetGap } from '../../compiler/synth.ts';
import type { PolicyRule } from '../../core/rule-set.ts';
import { grant, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, type Harness } from './harness.ts';

const NS = 'rbac-fidelity';
const EXEC_ONLY: PolicyRule[] = [
  { verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] },
  { verbs: ['create'], apiGroups: [''], resources: ['pods/exec'] },
];
const asRbac = (rules: readonly PolicyRule[]) => rules.flatMap(rbacRules) as unknown as PolicyRule[];

describe('rbacRules', () => {
  const cases: [string, PolicyRule, string[][]][] = [
    ['create pods/exec alone', { verbs: ['create'], apiGroups: [''], resources: ['pods/exec'] }, [['pods/exec']]],
    ['create on pods/* with names', { verbs: ['create'], apiGroups: [''], resources: ['pods/*'], resourceNames: ['web-0'] }, []],
    ['create on */exec', { verbs: ['create'], apiGroups: ['*'], resources: ['*/exec'] }, [['pods/exec']]],
    ['create on everything', { verbs: ['create'], apiGroups: [''], resources: ['*'] }, [['pods/exec', 'pods/attach', 'pods/portforward']]],
    ['create and get already', { verbs: ['create', 'get'], apiGroups: [''], resources: ['pods/exec'] }, []],
    ['every verb', { verbs: ['*'], apiGroups: [''], resources: ['pods/exec'] }, []],
    ['create configmaps', { verbs: ['create'], apiGroups: [''], resources: ['configmaps', 'pods/log'] }, []],
    ['another group', { verbs: ['create'], apiGroups: ['apps'], resources: ['pods/exec'] }, []],
  ];
  it('GIVEN get without create on named streaming subresources THEN get is taken off them (a WebSocket exec upstream), the rest kept', () => {
    assert.deepEqual(rbacRules({ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods', 'pods/exec', 'pods/log'] }), [
      { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] },
      { apiGroups: [''], resources: ['pods/exec'], verbs: ['list'] },
    ]);
    assert.deepEqual(rbacRules({ verbs: ['get'], apiGroups: [''], resources: ['pods/attach'] }), []);
    assert.equal(streamGetGap({ verbs: ['get'], apiGroups: [''], resources: ['*/exec'] }), true, 'a wildcard RBAC cannot subtract from: the compiler warns');
    assert.equal(streamGetGap({ verbs: ['get'], apiGroups: ['*'], resources: ['*'] }), true);
    assert.equal(streamGetGap({ verbs: ['get'], apiGroups: [''], resources: ['pods/exec'] }), false);
    assert.equal(streamGetGap({ verbs: ['get', 'create'], apiGroups: [''], resources: ['*'] }), false);
  });
  for (const [name, rule, extra] of cases) {
    it(`GIVEN ${name} THEN the rule${extra.length ? ' and get on exactly its streaming subresources' : ' alone'}`, () => {
      const out = rbacRules(rule);
      assert.deepEqual(out.slice(1).map((r) => r['resources']), extra);
      for (const r of out.slice(1)) assert.deepEqual(r['verbs'], ['get']);
      if (rule.resourceNames) for (const r of out.slice(1)) assert.deepEqual(r['resourceNames'], rule.resourceNames);
    });
  }
});

describe('exec over WebSocket with only create on pods/exec granted', () => {
  let h: Harness;
  let pod: string;
  before(async () => {
    const rs = ruleSet('dev', [grant('ed-exec', [user('oidc:ed')], EXEC_ONLY, ns(NS)), grant('raw-exec', [user('oidc:raw')], EXEC_ONLY, ns(NS))]);
    h = await startHarness({
      namespaces: [NS],
      // ed gets the compiler's RBAC; raw the policy rules as they are, to show what the extra rule is for.
      rbac: manifestsYaml([...upstreamRole(NS, 'ed-exec', [user('oidc:ed')], asRbac(EXEC_ONLY)), ...upstreamRole(NS, 'raw-exec', [user('oidc:raw')], EXEC_ONLY)]),
      impersonable: rs.impersonable,
      ruleSet: rs,
    });
    pod = await h.fleet.createPod(h.cluster, NS);
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN the compiler\'s RBAC WHEN kubectl exec runs through the proxy THEN it goes over WebSocket; with the policy rules alone upstream refuses the WebSocket (kubectl falls back to SPDY)', async () => {
    const ok = await h.kubectl(h.kubeconfig(await h.token('ed', [])), ['exec', pod, '-n', NS, '--', 'echo', 'hi']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'hi');
    const raw = await h.kubectl(h.kubeconfig(await h.token('raw', [])), ['exec', pod, '-n', NS, '--', 'echo', 'hi']);
    assert.equal(raw.status, 0, raw.stderr);
    const events = await h.auditEventsWhen((es) => es.filter((e) => e.objectRef?.subresource === 'exec' && e.stage === 'ResponseComplete').length >= 3);
    const execs = (who: string) =>
      events
        .filter((e) => e.user.username === `oidc:${who}` && e.objectRef?.subresource === 'exec' && e.stage === 'ResponseComplete')
        .map((e) => `${e.annotations['portcullis.dev/transport']} ${e.responseStatus.code}`);
    assert.deepEqual(execs('ed'), ['websocket 101']);
    assert.deepEqual(execs('raw'), ['websocket 403', 'spdy 101'], 'upstream refused the WebSocket exec the proxy allowed');
  });
});

describe('kubectl auth can-i --list with a conditional grant', () => {
  let h: Harness;
  const NS2 = 'rbac-fidelity-list';
  const rules: PolicyRule[] = [{ verbs: ['list'], apiGroups: [''], resources: ['configmaps'] }];
  before(async () => {
    const temp = grant('tess-temp', [user('oidc:tess')], rules, ns(NS2), { conditions: { expires: new Date(Date.now() + 3600_000).toISOString() }, activationGroup: 'portcullis:grant:tess-temp' });
    const rs = ruleSet('dev', [temp]);
    h = await startHarness({ namespaces: [NS2], rbac: manifestsYaml(upstreamRole(NS2, 'tess-temp', [{ kind: 'Group', name: 'portcullis:grant:tess-temp' }], rules)), impersonable: rs.impersonable, ruleSet: rs });
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN a grant that expires in an hour WHEN its subject asks kubectl auth can-i --list through the proxy THEN the rules review carries its activation group and lists it', async () => {
    const kc = h.kubeconfig(await h.token('tess', []));
    assert.equal((await h.kubectl(kc, ['get', 'configmaps', '-n', NS2])).status, 0, 'the grant is active');
    const r = await h.kubectl(kc, ['auth', 'can-i', '--list', '-n', NS2]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^configmaps\s+\[\]\s+\[\]\s+\[list\]$/m, r.stdout);
  });
});
