// SECURITY rule 12 and the per-identity limit of rule 15, at the unit level.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RequestAttributes } from '../../core/attributes.ts';
import { StreamRegistry, type LiveStream, type StreamEndReason } from '../../runtime-proxy/streams.ts';

const ATTRS: RequestAttributes = { user: 'oidc:a', groups: [], verb: 'watch', isResourceRequest: true, path: '/api/v1/pods', apiGroup: '', apiVersion: 'v1', resource: 'pods', subresource: '', namespace: 'n', name: '' };

function stream(id: string, at: number, reason: StreamEndReason, closed: string[], who = 'idp oidc:a'): LiveStream {
  return { id, cluster: 'dev', identityKey: who, identity: { user: 'oidc:a', groups: [], issuer: 'idp', method: 'oidc' }, attributes: ATTRS, grantId: 'g', deadline: { at, reason }, close: (r) => closed.push(`${id}:${r}`) };
}

describe('StreamRegistry', () => {
  it('GIVEN streams with deadlines WHEN the time comes THEN each closes with its reason', async () => {
    const closed: string[] = [];
    const r = new StreamRegistry(10);
    r.register(stream('a', Date.now() + 50, 'token-expired', closed));
    r.register(stream('b', Date.now() + 80, 'window-ended', closed));
    r.register(stream('c', Number.POSITIVE_INFINITY, 'window-ended', closed));
    await new Promise((res) => setTimeout(res, 150));
    assert.deepEqual(closed, ['a:token-expired', 'b:window-ended']);
    assert.equal(r.count('dev'), 1);
  });

  it('GIVEN a deadline already past WHEN registered THEN the stream closes at once', async () => {
    const closed: string[] = [];
    new StreamRegistry(10).register(stream('a', Date.now() - 1, 'break-glass-ended', closed));
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(closed, ['a:break-glass-ended']);
  });

  it('GIVEN live streams WHEN a recheck revokes one THEN only that one closes, as revoked, and the other gets its new deadline', async () => {
    const closed: string[] = [];
    const r = new StreamRegistry(10);
    r.register(stream('keep', Number.POSITIVE_INFINITY, 'window-ended', closed));
    r.register(stream('drop', Number.POSITIVE_INFINITY, 'window-ended', closed));
    const n = r.recheck('dev', (s) => (s.id === 'drop' ? { allowed: false } : { allowed: true, grantId: 'g2', deadline: { at: Date.now() + 30, reason: 'window-ended' } }));
    assert.equal(n, 1);
    assert.deepEqual(closed, ['drop:revoked']);
    await new Promise((res) => setTimeout(res, 80));
    assert.deepEqual(closed, ['drop:revoked', 'keep:window-ended']);
  });

  it('GIVEN the per-identity limit WHEN one more stream registers THEN it is refused, other identities are not, and a slot frees on unregister', () => {
    const r = new StreamRegistry(2);
    const c: string[] = [];
    assert.ok(r.register(stream('1', Infinity, 'revoked', c)));
    assert.ok(r.register(stream('2', Infinity, 'revoked', c)));
    assert.equal(r.register(stream('3', Infinity, 'revoked', c)), false);
    assert.ok(r.register(stream('4', Infinity, 'revoked', c, 'idp oidc:b')));
    r.unregister('1');
    assert.ok(r.register(stream('5', Infinity, 'revoked', c)));
  });
});
