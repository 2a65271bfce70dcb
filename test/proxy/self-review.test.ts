// The SelfSubjectAccessReview reader: JSON and kubectl's Kubernetes protobuf.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readReviewSpec, reviewAttributes } from '../../runtime-proxy/self-review.ts';

function ld(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}
const s = (x: string) => Buffer.from(x);

describe('self-review', () => {
  it('GIVEN kubectl\'s protobuf review WHEN read THEN the resource attributes come out', () => {
    const ra = Buffer.concat([ld(1, s('team-a')), ld(2, s('delete')), ld(5, s('configmaps')), ld(7, s('protected'))]);
    const review = Buffer.concat([ld(1, Buffer.alloc(0)), ld(2, ld(1, ra))]);
    const unknown = Buffer.concat([ld(1, s('x')), ld(2, review)]);
    const spec = readReviewSpec('application/vnd.kubernetes.protobuf', Buffer.concat([Buffer.from('k8s\0', 'latin1'), unknown]));
    assert.deepEqual(spec, { resourceAttributes: { namespace: 'team-a', verb: 'delete', resource: 'configmaps', name: 'protected' } });
    assert.deepEqual(reviewAttributes(spec, 'u', ['g']), { user: 'u', groups: ['g'], verb: 'delete', isResourceRequest: true, path: '', apiGroup: '', apiVersion: '', resource: 'configmaps', subresource: '', namespace: 'team-a', name: 'protected' });
  });

  it('GIVEN a JSON non-resource review WHEN read THEN the path and verb come out', () => {
    const spec = readReviewSpec('application/json', Buffer.from(JSON.stringify({ spec: { nonResourceAttributes: { path: '/metrics', verb: 'get' } } })));
    assert.equal(reviewAttributes(spec, 'u', [])?.path, '/metrics');
  });

  it('GIVEN garbage, truncated protobuf or another content type WHEN read THEN nothing is understood (the proxy then answers no)', () => {
    assert.equal(readReviewSpec('application/json', Buffer.from('{')), undefined);
    assert.equal(readReviewSpec('application/vnd.kubernetes.protobuf', Buffer.from('k8s\0\x12\x7f', 'latin1')), undefined);
    assert.equal(readReviewSpec('application/cbor', Buffer.from('x')), undefined);
    assert.equal(reviewAttributes(undefined, 'u', []), undefined);
  });
});
