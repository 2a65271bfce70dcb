// The audit record's own formatting, which every request pays for: kube's timestamps, and the
// chain's annotations spliced into the serialized Event whatever else the record holds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Chain, CHAIN, GENESIS, lineHash } from '../../runtime-proxy/audit/chain.ts';
import { toAuditEvent, type AuditFacts } from '../../runtime-proxy/audit/event.ts';

const facts = (over: Partial<AuditFacts>): AuditFacts => ({
  auditId: 'a',
  stage: 'ResponseComplete',
  requestURI: '/api/v1/namespaces/n/configmaps/c',
  method: 'GET',
  receivedAt: 0,
  at: 0,
  sourceIP: '127.0.0.1',
  transport: 'http1',
  decision: 'allow',
  reason: 'grant',
  code: 200,
  ...over,
});

/** kube's audit timestamp of an instant: RFC 3339 UTC with microseconds. */
const kubeTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

describe('audit Event formatting', () => {
  it('GIVEN any instant from 1970 to 9999, in any order WHEN recorded THEN both timestamps are exactly what Date formats, with microseconds', () => {
    // Arbitrary order matters: the formatter reuses the last second it formatted.
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 253402300799999 - 999 }), { minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 999 }), (instants, later) => {
        for (const ms of instants) {
          const e = toAuditEvent(facts({ receivedAt: ms, at: ms + later }));
          assert.equal(e.requestReceivedTimestamp, kubeTime(ms));
          assert.equal(e.stageTimestamp, kubeTime(ms + later));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('GIVEN records with and without bodies, nested objects and annotations WHEN chained THEN every line is the Event plus exactly the two chain annotations, its bodies intact', () => {
    const chain = new Chain({ seq: 0, prev: GENESIS });
    let prev = GENESIS;
    let withBodies = 0;
    fc.assert(
      fc.property(fc.option(fc.jsonValue(), { nil: undefined }), fc.option(fc.jsonValue(), { nil: undefined }), fc.boolean(), (requestObject, responseObject, refused) => {
        const f = facts({
          ...(requestObject !== undefined ? { requestObject, level: 'Request' as const } : {}),
          ...(responseObject !== undefined ? { responseObject, level: 'RequestResponse' as const } : {}),
          ...(refused ? { code: 403, decision: 'deny' as const, reason: 'forbidden', errorCode: 'FORBIDDEN', detail: 'no grant' } : {}),
        });
        const e = toAuditEvent(f);
        const seq = chain.nextSeq;
        const line = chain.link(e);
        const parsed = JSON.parse(line) as Record<string, unknown> & { annotations: Record<string, string> };
        const { [CHAIN.seq]: s, [CHAIN.prev]: p, ...annotations } = parsed.annotations;
        assert.equal(s, String(seq));
        assert.equal(p, prev);
        assert.deepEqual({ ...parsed, annotations }, JSON.parse(JSON.stringify(e)));
        // Annotations are the record's last field, as kube writes them (the splice relies on it).
        assert.equal(Object.keys(parsed).at(-1), 'annotations');
        if (requestObject !== undefined || responseObject !== undefined) withBodies++;
        prev = lineHash(line);
      }),
      { numRuns: 300 },
    );
    assert.ok(withBodies > 50, `only ${withBodies} records with bodies were checked`);
  });
});
