// The compiler's committed output for dev, end to end: its rbac.yaml applied to
// the sandbox cluster, its bundle (signed again now: signedExampleGenerated) loaded with its pinned key, its
// impersonate-only ServiceAccount as the proxy's credential. For a grid of
// identities and requests, `kubectl auth can-i` through the proxy must say
// exactly what core/decide says — and "yes" comes from upstream RBAC, so the
// cluster agrees with the proxy.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decide } from '../../core/decide.ts';
import { indexRuleSet } from '../../core/rule-index.ts';
import { decodeRuleSet } from '../../core/rule-set-codec.ts';
import { signedExampleGenerated } from '../support/example-bundles.ts';
import { startHarness, type Harness } from './harness.ts';

const GEN = signedExampleGenerated();
const RULES = decodeRuleSet(readFileSync(join(GEN, 'dev', 'rules.json'), 'utf8'));

const IDENTITIES: readonly [string, readonly string[]][] = [
  ['carol@acme.example', ['team-checkout']],
  ['dave@acme.example', ['sre']],
  ['erin@acme.example', ['platform']],
  ['bob@acme.example', ['team-payments', 'not-in-policy']],
  ['mallory@evil.example', ['team-checkout']],
];
const PROBES: readonly [string, string, string][] = [
  ['get', 'pods', 'checkout'],
  ['delete', 'pods', 'checkout'],
  ['get', 'secrets', 'payments'],
  ['create', 'deployments.apps', 'payments'],
  ['create', 'pods/exec', 'checkout'],
  ['list', 'pods', 'search'],
];

describe('the compiled dev policy through the proxy', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      rbac: readFileSync(join(GEN, 'dev', 'rbac.yaml'), 'utf8'),
      impersonable: RULES.impersonable,
      compiled: {
        bundleDir: join(GEN, 'dev'),
        trustedKeyFiles: readdirSync(join(GEN, 'keys')).map((f) => join(GEN, 'keys', f)),
        serviceAccount: 'portcullis-proxy',
      },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN generated/dev WHEN the proxy starts THEN it verifies and serves that bundle', () => {
    assert.equal(h.proxy.ready().ok, true, h.proxy.ready().problems.join());
    const st = JSON.parse(Buffer.from((JSON.parse(readFileSync(join(GEN, 'dev', 'bundle.sig.json'), 'utf8')) as { payload: string }).payload, 'base64').toString('utf8')) as { revision: number };
    assert.equal(h.proxy.store('dev')?.current(Date.now())?.revision, st.revision);
  });

  it('GIVEN identities and requests WHEN kubectl auth can-i asks through the proxy THEN every answer matches core/decide, and every yes is upstream RBAC agreeing', async () => {
    const index = indexRuleSet(RULES);
    let yes = 0;
    let no = 0;
    for (const [sub, groups] of IDENTITIES) {
      const kc = h.kubeconfig(await h.token(sub, groups));
      for (const [verb, res, ns] of PROBES) {
        const [resource = '', subresource = ''] = res.replace('.apps', '').split('/');
        const apiGroup = res.endsWith('.apps') ? 'apps' : '';
        const attrs = { user: `oidc:${sub}`, groups: [...groups.map((g) => `oidc:${g}`), 'system:authenticated'], verb, isResourceRequest: true, path: '', apiGroup, apiVersion: '', resource, subresource, namespace: ns, name: '' };
        const expected = decide(attrs, index, { now: Date.now() }).decision.allowed;
        const r = await h.kubectl(kc, ['auth', 'can-i', verb, res, '-n', ns]);
        const got = r.stdout.trim().startsWith('yes');
        assert.equal(got, expected, `${sub} ${groups.join(',')}: ${verb} ${res} in ${ns}: kubectl said ${r.stdout.trim()} ${r.stderr.trim()}`);
        if (got) yes++;
        else no++;
      }
    }
    assert.ok(yes > 3 && no > 3, `a grid with both answers (yes ${yes}, no ${no})`);
  });

  it('GIVEN a team member WHEN reading its own namespace and another team\'s secrets THEN the first works and the second is refused by the proxy', async () => {
    const kc = h.kubeconfig(await h.token('carol@acme.example', ['team-checkout']));
    const ok = await h.kubectl(kc, ['get', 'pods', '-n', 'checkout']);
    assert.equal(ok.status, 0, ok.stderr);
    const no = await h.kubectl(kc, ['get', 'secrets', '-n', 'payments']);
    assert.notEqual(no.status, 0);
    assert.match(no.stderr, /\(portcullis\)/);
    const ev = h.auditEvents().filter((e) => e.user.username === 'oidc:carol@acme.example' && e.objectRef?.namespace === 'checkout' && e.responseStatus.code === 200).at(-1);
    assert.match(ev?.annotations['portcullis.dev/source'] ?? '', /^policies\/.+\.ts:\d+$/);
  });
});

describe('group members the policy does not name, through the compiled policy', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      rbac: readFileSync(join(GEN, 'dev', 'rbac.yaml'), 'utf8'),
      impersonable: RULES.impersonable,
      compiled: { bundleDir: join(GEN, 'dev'), trustedKeyFiles: readdirSync(join(GEN, 'keys')).map((f) => join(GEN, 'keys', f)), serviceAccount: 'portcullis-proxy' },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN a new member of sre no grant names as a person WHEN listing pods with real kubectl THEN a grant to sre lets them, upstream sees portcullis:member in oidc:sre with their name as an extra, and whoami shows who they are', async () => {
    assert.ok(!RULES.impersonable.users.includes('oidc:newhire@acme.example'), 'the test needs a user the policy does not name');
    const kc = h.kubeconfig(await h.token('newhire@acme.example', ['sre', 'coffee-club']));
    const pods = await h.kubectl(kc, ['get', 'pods', '-n', 'payments']);
    assert.equal(pods.status, 0, pods.stderr);
    const ev = h.auditEvents().filter((e) => e.user.username === 'oidc:newhire@acme.example' && e.objectRef?.resource === 'pods').at(-1);
    assert.deepEqual(ev?.impersonatedUser, { username: 'portcullis:member', groups: ['oidc:sre'] });
    const by = RULES.grants.find((g) => g.id === ev?.annotations['portcullis.dev/grant']);
    assert.ok(by?.subjects.some((x) => x.kind === 'Group' && x.name === 'oidc:sre'), `allowed by ${by?.id}, a grant to sre`);
    // Upstream RBAC agrees and only what sre is granted: sre-view is read-only.
    const write = await h.kubectl(kc, ['create', 'configmap', 'x', '-n', 'payments', '--dry-run=server']);
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /forbidden/);
    const who = await h.kubectl(kc, ['auth', 'whoami', '-o', 'json']);
    assert.equal(who.status, 0, who.stderr);
    const ui = (JSON.parse(who.stdout) as { status: { userInfo: { username: string; groups: string[] } } }).status.userInfo;
    assert.equal(ui.username, 'oidc:newhire@acme.example');
    assert.deepEqual([...ui.groups].sort(), ['oidc:coffee-club', 'oidc:sre', 'system:authenticated']);
    // Someone in no granted group gets nothing, as before.
    const stranger = h.kubeconfig(await h.token('stranger@evil.example', ['coffee-club']));
    assert.notEqual((await h.kubectl(stranger, ['get', 'pods', '-n', 'payments'])).status, 0);
  });
});
