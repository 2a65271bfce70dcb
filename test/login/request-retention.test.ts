// The request store does not grow without end: requests leave it 30 days after their last event,
// activations a minute after they end; against a real redis-server shared by two store clients
// (two replicas).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createClient } from '@redis/client';
import type { Activation } from '../../runtime-proxy/break-glass.ts';
import { pastRetention, RedisRequests, REQUEST_RETENTION_MS, type AccessRequest } from '../../runtime-proxy/requests/access-requests.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-07T12:00:00Z');

const request = (id: string, over: Partial<AccessRequest>): AccessRequest => ({ id, cluster: 'dev', grant: 'sre-write', user: 'oidc:nina', reason: 'incident', durationSeconds: 3600, requestedAt: NOW, state: 'pending', ...over });
const activation = (grant: string, expiresAt: number): Activation => ({ cluster: 'dev', user: 'oidc:nina', grant, reason: 'incident', activatedAt: expiresAt - 3_600_000, expiresAt });

describe('request store retention', () => {
  let redis: TestRedis;
  const replicas: RedisRequests[] = [];
  let raw: ReturnType<typeof createClient>;

  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < 2; i++) {
      const r = new RedisRequests(redis.url, () => undefined);
      await r.start();
      replicas.push(r);
    }
    raw = createClient({ url: redis.url });
    await raw.connect();
  });
  after(async () => {
    await raw?.close();
    for (const r of replicas) await r.stop();
    await redis?.stop();
  });

  it('GIVEN any request WHEN judged THEN it is kept exactly until 30 days after its last event (its asking while pending, else its decision or the end of its access)', () => {
    fc.assert(
      fc.property(fc.constantFrom<AccessRequest['state']>('pending', 'approved', 'denied'), fc.integer({ min: 0, max: 90 * DAY }), fc.integer({ min: 0, max: 10 * DAY }), fc.integer({ min: 0, max: 10 * DAY }), (state, age, decidedAfter, accessFor) => {
        const requestedAt = NOW - age;
        const decided = state === 'pending' ? {} : { decidedAt: requestedAt + decidedAfter, ...(state === 'approved' ? { expiresAt: requestedAt + decidedAfter + accessFor } : {}) };
        const r = request('req-x', { state, requestedAt, ...decided });
        const last = state === 'pending' ? requestedAt : state === 'approved' ? requestedAt + decidedAfter + accessFor : requestedAt + decidedAfter;
        assert.equal(pastRetention(r, NOW), last + REQUEST_RETENTION_MS <= NOW);
      }),
      { numRuns: 500 },
    );
  });

  it('GIVEN old and current requests and activations in the store WHEN one replica lists them THEN it gets the current ones only, and the old ones are gone from the store for every replica', async () => {
    const [a, b] = replicas as [RedisRequests, RedisRequests];
    await a.put(request('req-000000000001', { requestedAt: NOW - 31 * DAY })); // pending, never decided
    await a.put(request('req-000000000002', { requestedAt: NOW - 40 * DAY, state: 'denied', decidedAt: NOW - 40 * DAY + 60_000, decidedBy: 'oidc:sam' }));
    await a.put(request('req-000000000003', { requestedAt: NOW - 35 * DAY, state: 'approved', decidedAt: NOW - 35 * DAY, decidedBy: 'oidc:sam', expiresAt: NOW - 25 * DAY })); // its access ended 25 days ago: kept
    await a.put(request('req-000000000004', { requestedAt: NOW - DAY }));
    await a.save(activation('ended-long-ago', NOW - DAY));
    await a.save(activation('ended-just-now', NOW - 10_000)); // within the minute: no longer in force, not yet removed
    await a.save(activation('in-force', NOW + 3_600_000));
    assert.equal(Object.keys(await raw.hGetAll('portcullis:requests')).length, 4);

    assert.deepEqual((await b.list(NOW)).map((r) => r.id), ['req-000000000003', 'req-000000000004']);
    assert.deepEqual((await b.load(NOW)).map((x) => x.grant), ['in-force']);

    assert.deepEqual(Object.keys(await raw.hGetAll('portcullis:requests')).sort(), ['req-000000000003', 'req-000000000004']);
    const left = Object.values(await raw.hGetAll('portcullis:activations')).map((v) => (JSON.parse(v) as Activation).grant).sort();
    assert.deepEqual(left, ['ended-just-now', 'in-force']);
    assert.deepEqual((await a.list(NOW)).map((r) => r.id), ['req-000000000003', 'req-000000000004'], 'the other replica sees the same');
  });
});
