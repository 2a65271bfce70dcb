import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { BundleError, keyIdOf, sha256, signStatement, verifyBundle, type BundleErrorCode, type BundleStatement } from '../../core/index.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const keys = new Map([[keyIdOf(publicKey), publicKey]]);
const NOW = Date.parse('2026-11-22T12:00:00Z');
const files = new Map<string, Uint8Array>([
  ['rules.json', Buffer.from('{"grants":[]}\n')],
  ['rbac.yaml', Buffer.from('kind: ClusterRole\n')],
]);
const statement = (over: Partial<BundleStatement> = {}): BundleStatement => ({
  _type: 'https://portcullis.dev/bundle/v1',
  cluster: 'prod-eu',
  revision: 7,
  notAfter: '2026-12-01T00:00:00Z',
  sourceDigest: 'sha256:x',
  keyId: keyIdOf(publicKey),
  files: Object.fromEntries([...files].map(([n, b]) => [n, sha256(b)])),
  ...over,
});
const expect = { cluster: 'prod-eu', now: NOW, minRevision: 1 };
const code = (f: () => unknown): BundleErrorCode | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof BundleError, String(e));
    return e.code;
  }
};

describe('bundle verification', () => {
  const env = Buffer.from(signStatement(statement(), privateKey));

  it('GIVEN an intact bundle THEN it verifies and returns the statement', () => {
    assert.equal(verifyBundle(env, files, keys, expect).revision, 7);
  });
  it('GIVEN the same statement and key THEN the envelope is byte-identical (deterministic)', () => {
    assert.equal(signStatement(statement(), privateKey), env.toString());
  });

  const tamper: [string, () => unknown, BundleErrorCode][] = [
    ['a changed byte in a file', () => verifyBundle(env, new Map([...files, ['rules.json', Buffer.from('{"grants":[1]}\n')]]), keys, expect), 'BUNDLE_DIGEST'],
    ['a changed byte in the payload', () => {
      const e = JSON.parse(env.toString());
      const p = Buffer.from(e.payload, 'base64');
      p.writeUInt8(p.readUInt8(p.length - 3) ^ 1, p.length - 3);
      e.payload = p.toString('base64');
      return verifyBundle(Buffer.from(JSON.stringify(e)), files, keys, expect);
    }, 'BUNDLE_SIGNATURE'],
    ['a changed signature', () => {
      const e = JSON.parse(env.toString());
      const s = Buffer.from(e.signatures[0].sig, 'base64');
      s.writeUInt8(s.readUInt8(0) ^ 1, 0);
      e.signatures[0].sig = s.toString('base64');
      return verifyBundle(Buffer.from(JSON.stringify(e)), files, keys, expect);
    }, 'BUNDLE_SIGNATURE'],
    ['another key', () => verifyBundle(Buffer.from(signStatement(statement(), other.privateKey)), files, keys, expect), 'BUNDLE_UNKNOWN_KEY'],
    ['another key claiming the trusted key id', () => {
      const e = JSON.parse(signStatement(statement(), other.privateKey));
      e.signatures[0].keyid = keyIdOf(publicKey);
      return verifyBundle(Buffer.from(JSON.stringify(e)), files, keys, expect);
    }, 'BUNDLE_SIGNATURE'],
    ['the wrong cluster', () => verifyBundle(env, files, keys, { ...expect, cluster: 'dev' }), 'BUNDLE_CLUSTER'],
    ['expired', () => verifyBundle(env, files, keys, { ...expect, now: Date.parse('2026-12-01T00:00:00Z') }), 'BUNDLE_EXPIRED'],
    ['an unlisted file', () => verifyBundle(env, new Map([...files, ['extra.yaml', Buffer.from('x')]]), keys, expect), 'BUNDLE_FILE_UNLISTED'],
    ['a missing file', () => verifyBundle(env, new Map([...files].filter(([n]) => n !== 'rbac.yaml')), keys, expect), 'BUNDLE_FILE_MISSING'],
    ['an older revision (rollback)', () => verifyBundle(env, files, keys, { ...expect, minRevision: 8 }), 'BUNDLE_ROLLBACK'],
    ['not JSON', () => verifyBundle(Buffer.from('nope'), files, keys, expect), 'BUNDLE_MALFORMED'],
    ['a payload type swapped after signing', () => {
      const e = JSON.parse(env.toString());
      e.payloadType = 'text/plain';
      return verifyBundle(Buffer.from(JSON.stringify(e)), files, keys, expect);
    }, 'BUNDLE_SIGNATURE'],
  ];
  for (const [name, f, want] of tamper) {
    it(`GIVEN ${name} THEN it is refused with ${want}`, () => assert.equal(code(f), want));
  }
});
