// Client certificates through the proxy: the TLS layer verifies against the
// configured client CA, the authenticator maps CN/O to prefixed names, and the
// request is impersonated like any other.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalCa, type LocalCa } from '../../sandbox/local-ca.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from './harness.ts';

const NS = 'proxy-client-cert';
const RULES = ruleSet('dev', [grant('ops-read', [group('x509:ops')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }], ns(NS))], { users: ['x509:carl', 'x509:eve'] });
const RBAC = manifestsYaml(upstreamRole(NS, 'ops-read', [group('x509:ops')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }]));

describe('client certificates through the proxy', () => {
  let h: Harness;
  let clientCa: LocalCa;
  let otherCa: LocalCa;
  before(async () => {
    clientCa = createLocalCa('portcullis client CA');
    otherCa = createLocalCa('someone else');
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES, clientCa });
  });
  after(async () => {
    await h?.stop();
    clientCa?.remove();
    otherCa?.remove();
  });

  it('GIVEN a certificate from the client CA with O=ops WHEN kubectl lists THEN it is x509:carl in x509:ops upstream', async () => {
    const kc = h.kubeconfig(clientCa.issue({ cn: 'carl', o: ['ops'], usage: 'clientAuth' }));
    const r = await h.kubectl(kc, ['get', 'configmaps', '-n', NS, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    const who = await h.kubectl(kc, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.groups}']);
    assert.equal(who.stdout, 'x509:carl ["x509:ops","system:authenticated"]');
  });

  it('GIVEN a certificate without the granted group WHEN kubectl lists THEN 403', async () => {
    const r = await h.kubectl(h.kubeconfig(clientCa.issue({ cn: 'eve', o: ['dev'], usage: 'clientAuth' })), ['get', 'configmaps', '-n', NS]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Forbidden/);
  });

  it('GIVEN a certificate from another CA WHEN kubectl lists THEN 401', async () => {
    const r = await h.kubectl(h.kubeconfig(otherCa.issue({ cn: 'carl', o: ['ops'], usage: 'clientAuth' })), ['get', 'configmaps', '-n', NS]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Unauthorized|provide credentials/);
  });
});
