// SECURITY rules 13 and 14 at the unit level: verify before parsing, no rollback, last good kept, atomic swap.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyIdOf, sha256, signStatement, type BundleStatement } from '../../core/bundle.ts';
import { canonicalJson } from '../../core/canonical-json.ts';
import type { RuleSet } from '../../core/rule-set.ts';
import { BundleStore } from '../../runtime-proxy/bundle-store.ts';

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
