// SECURITY rules 13 and 14 at the unit level: verify before parsing, no rollback, last good kept, atomic swap.
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyIdOf, sha256, signStatement, type BundleStatement } from '../../core/bundle.ts';
import { canonicalJson } from '../../core/canonical-json.ts';
import { decide } from '../../core/decide.ts';
import type { RuleSet } from '../../core/rule-set.ts';
import { BundleStore } from '../../runtime-proxy/bundle-store.ts';
import { signedExampleGenerated } from '../support/example-bundles.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const KEYS = new Map([[keyIdOf(publicKey), publicKey]]);
const NOW = Date.parse('2026-06-01T00:00:00Z');
const RS: RuleSet = { apiVersion: 'portcullis.dev/v1', kind: 'RuleSet', cluster: 'dev', grants: [], denies: [], impersonable: { users: [], groups: [] } };

function bundle(revision: number, o: { rules?: string; cluster?: string; notAfter?: string } = {}): Map<string, Uint8Array> {
  const files: Record<string, string> = { 'rules.json': o.rules ?? canonicalJson(RS), 'rbac.yaml': `# r${revision}\n` };
  const st: BundleStatement = {
    _type: 'https://portcullis.dev/bundle/v1',
    cluster: o.cluster ?? 'dev',
    revision,
    notAfter: o.notAfter ?? '2026-07-01T00:00:00Z',
    sourceDigest: 'd',
    keyId: keyIdOf(publicKey),
    files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])),
  };
  return new Map(Object.entries({ ...files, 'bundle.sig.json': signStatement(st, privateKey) }).map(([k, v]) => [k, Buffer.from(v)]));
}

describe('BundleStore', () => {
  it('GIVEN no bundle yet WHEN asked THEN there is none (fail closed)', () => {
    assert.equal(new BundleStore('dev', KEYS).current(NOW), undefined);
  });

  it('GIVEN a good bundle WHEN offered THEN it is active with its revision, and identical bytes again are a no-op', () => {
    const s = new BundleStore('dev', KEYS);
    const r = s.offer(bundle(3), NOW);
    assert.equal(r.result, 'accepted');
    assert.equal(s.current(NOW)?.revision, 3);
    assert.equal(s.offer(bundle(3), NOW).result, 'unchanged');
  });

  it('GIVEN an active bundle WHEN the same files are delivered under another commit, then none THEN it stays the same bundle naming the latest delivery', () => {
    const s = new BundleStore('dev', KEYS);
    const [c1, c2] = ['a'.repeat(40), 'b'.repeat(40)];
    assert.equal(s.offer(bundle(3), NOW, c1).result, 'accepted');
    const first = s.current(NOW);
    assert.equal(first?.commit, c1);
    assert.equal(s.offer(bundle(3), NOW, c2).result, 'unchanged');
    assert.equal(s.current(NOW)?.commit, c2);
    assert.equal(s.current(NOW)?.index, first?.index, 'the same parsed bundle, not a reload');
    assert.equal(s.offer(bundle(3), NOW).result, 'unchanged');
    assert.equal(s.current(NOW)?.commit, undefined);
  });

  it('GIVEN an active revision WHEN an older or equal revision is offered THEN BUNDLE_ROLLBACK and the active one stays', () => {
    const s = new BundleStore('dev', KEYS);
    s.offer(bundle(3), NOW);
    const a = s.current(NOW);
    for (const rev of [2, 3]) {
      const r = s.offer(bundle(rev, { rules: canonicalJson({ ...RS, denies: [] }).replace('\n', ' \n') }), NOW);
      assert.equal(r.result === 'rejected' && r.code, 'BUNDLE_ROLLBACK');
    }
    assert.equal(s.current(NOW), a);
  });

  it('GIVEN rules.json replaced by bytes that are not even JSON WHEN offered THEN the digest check refuses it before anything is parsed', () => {
    const s = new BundleStore('dev', KEYS);
    const b = bundle(1);
    b.set('rules.json', Buffer.from('{not json'));
    const r = s.offer(b, NOW);
    assert.equal(r.result === 'rejected' && r.code, 'BUNDLE_DIGEST');
  });

  it('GIVEN a signed bundle with a malformed rule set WHEN offered THEN it is refused after verification', () => {
    const r = new BundleStore('dev', KEYS).offer(bundle(1, { rules: '{"apiVersion":"x"}' }), NOW);
    assert.equal(r.result === 'rejected' && r.code, 'BUNDLE_RULES');
  });

  it('GIVEN another cluster\'s or an expired bundle WHEN offered THEN it is refused', () => {
    assert.equal(((r) => r.result === 'rejected' && r.code)(new BundleStore('dev', KEYS).offer(bundle(1, { cluster: 'prod' }), NOW)), 'BUNDLE_CLUSTER');
    assert.equal(((r) => r.result === 'rejected' && r.code)(new BundleStore('dev', KEYS).offer(bundle(1, { notAfter: '2026-05-01T00:00:00Z' }), NOW)), 'BUNDLE_EXPIRED');
  });

  it('GIVEN an active bundle WHEN its notAfter passes THEN the store has no current bundle (requests deny) but remembers the last accepted', () => {
    const s = new BundleStore('dev', KEYS);
    s.offer(bundle(1), NOW);
    const later = Date.parse('2026-07-01T00:00:00Z');
    assert.equal(s.current(later), undefined);
    assert.equal(s.lastAccepted()?.revision, 1);
  });

  it('GIVEN a swap WHEN a request captured the old bundle THEN it keeps that object (one reference swap)', () => {
    const s = new BundleStore('dev', KEYS);
    s.offer(bundle(1), NOW);
    const captured = s.current(NOW);
    s.offer(bundle(2), NOW);
    assert.equal(captured?.revision, 1);
    assert.equal(s.current(NOW)?.revision, 2);
  });
});

describe('the compiler\'s committed output (signed again now)', () => {
  const root = signedExampleGenerated();
  const keys = new Map(
    (existsSync(join(root, 'keys')) ? readdirSync(join(root, 'keys')) : []).map((f) => {
      const k = createPublicKey(readFileSync(join(root, 'keys', f)));
      return [keyIdOf(k), k] as const;
    }),
  );
  const clusters = existsSync(root) ? readdirSync(root).filter((d) => existsSync(join(root, d, 'bundle.sig.json'))) : [];
  it('GIVEN generated/ has bundles WHEN listed THEN there is at least one to check', () => {
    assert.ok(clusters.length > 0, 'no generated/<cluster>/bundle.sig.json');
  });
  for (const c of clusters) {
    it(`GIVEN generated/${c} WHEN the proxy offers it to its store THEN it verifies with the committed keys and every grant's own rules authorize its subjects`, () => {
      const files = new Map(readdirSync(join(root, c)).map((f) => [f, readFileSync(join(root, c, f))]));
      const s = new BundleStore(c, keys);
      const r = s.offer(files, Date.now());
      assert.equal(r.result, 'accepted', r.result === 'rejected' ? r.message : '');
      const b = s.current(Date.now());
      assert.ok(b);
      let checked = 0;
      for (const g of b.ruleSet.grants.filter((x) => Object.keys(x.conditions).length === 0)) {
        const rule = g.rules.find((x) => x.resources?.length && !x.resources[0]?.includes('*') && !x.resources[0]?.includes('/') && x.verbs[0] !== '*' && !x.resourceNames?.length && !x.apiGroups?.[0]?.includes('*'));
        const subj = g.subjects.find((x) => (x.kind === 'User' ? b.index.impersonableUsers.has(x.name) : b.index.impersonableGroups.has(x.name)));
        const someUser = [...b.index.impersonableUsers][0];
        if (!rule || !subj || someUser === undefined) continue;
        const ns = g.scope.kind === 'namespaces' ? (g.scope.namespaces[0] ?? '') : '';
        const attrs = { user: subj.kind === 'User' ? subj.name : someUser, groups: subj.kind === 'Group' ? [subj.name] : [], verb: rule.verbs[0] ?? '', isResourceRequest: true, path: '/x', apiGroup: rule.apiGroups?.[0] ?? '', apiVersion: 'v1', resource: rule.resources?.[0] ?? '', subresource: '', namespace: ns, name: '' };
        const v = decide(attrs, b.index, { now: Date.now() });
        checked++;
        // a deny may still win; otherwise the grant (or a lower-id one) allows
        assert.ok(v.decision.allowed || v.decision.reason === 'deny', `${c}: ${g.id} for ${subj.name} ${attrs.verb} ${attrs.resource} in ${ns}: ${v.decision.reason}`);
      }
      assert.ok(checked > 0, 'no grant was checkable');
    });
  }
});
