import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { authorize, indexRuleSet, type Grant, type RuleSet } from '../../core/index.ts';
import { grantArb, requestArb, ruleSetArb } from './arbitraries.ts';
import { referenceAuthorize } from './reference-model.ts';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const ctx = { now: NOW };
const decide = (rs: RuleSet, a: Parameters<typeof authorize>[0]) => authorize(a, indexRuleSet(rs), ctx);
const runs = { numRuns: 2000 };

describe('authorize: laws', () => {
  it('GIVEN no grants WHEN anything is asked THEN it is denied (default deny)', () => {
    fc.assert(
      fc.property(ruleSetArb, requestArb, (rs, a) => {
        assert.equal(decide({ ...rs, grants: [] }, a).allowed, false);
      }),
      runs,
    );
  });

  it('GIVEN a matching deny WHEN a grant also matches THEN the deny wins', () => {
    fc.assert(
      fc.property(ruleSetArb, requestArb, (rs, a) => {
        const ref = referenceAuthorize(a, { ...rs, grants: [] }, NOW, new Set());
        const denied = rs.denies.length > 0 && ref.by !== undefined;
        if (denied) assert.equal(decide(rs, a).allowed, false);
      }),
      runs,
    );
  });

  it('GIVEN grants in any order, duplicated THEN the decision and its grant are the same', () => {
    fc.assert(
      fc.property(ruleSetArb, requestArb, fc.integer(), (rs, a, seed) => {
        const shuffled = [...rs.grants, ...rs.grants].sort((x, y) => ((x.id.charCodeAt(1) * 31 + seed) % 7) - ((y.id.charCodeAt(1) * 31 + seed) % 7));
        const d1 = decide(rs, a);
        const d2 = decide({ ...rs, grants: shuffled, denies: [...rs.denies].reverse() }, a);
        assert.equal(d2.allowed, d1.allowed);
        assert.equal(d2.allowed && d2.grant.id, d1.allowed && d1.grant.id);
        assert.equal(!d2.allowed && d2.reason, !d1.allowed && d1.reason);
      }),
      runs,
    );
  });

  it('GIVEN an allowed request WHEN a grant is added THEN it stays allowed (monotonic)', () => {
    fc.assert(
      fc.property(ruleSetArb, requestArb, grantArb('zz-extra'), (rs, a, extra: Grant) => {
        if (decide(rs, a).allowed) assert.equal(decide({ ...rs, grants: [...rs.grants, extra] }, a).allowed, true);
      }),
      runs,
    );
  });

  it('GIVEN random rule sets THEN the indexed authorizer agrees with the naive reference model (differential)', () => {
    fc.assert(
      fc.property(ruleSetArb, requestArb, fc.boolean(), (rs, a, invoked) => {
        const bg = new Set(invoked ? rs.grants.map((g) => g.id) : []);
        const real = authorize(a, indexRuleSet(rs), { now: NOW, breakGlass: bg });
        const ref = referenceAuthorize(a, rs, NOW, bg);
        assert.equal(real.allowed, ref.allowed, JSON.stringify({ a, rs, real, ref }));
        if (!real.allowed && real.reason === 'deny') assert.equal(ref.by !== undefined, true);
      }),
      { numRuns: 5000 },
    );
  });

  it('GIVEN an allowing grant THEN the decision names it, with its source line', () => {
    const rs: RuleSet = {
      apiVersion: 'portcullis.dev/v1',
      kind: 'RuleSet',
      cluster: 'c',
      grants: [
        { id: 'b', source: { file: 'p.ts', line: 9 }, subjects: [{ kind: 'Group', name: 'g' }], rules: [{ verbs: ['get'], apiGroups: [''], resources: ['pods'] }], scope: { kind: 'cluster' }, conditions: {} },
        { id: 'a', source: { file: 'p.ts', line: 3 }, subjects: [{ kind: 'User', name: 'u' }], rules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], scope: { kind: 'namespaces', namespaces: ['x'] }, conditions: {} },
      ],
      denies: [],
      impersonable: { users: ['u'], groups: ['g'] },
    };
    const d = decide(rs, { user: 'u', groups: ['g'], verb: 'get', isResourceRequest: true, path: '', apiGroup: '', apiVersion: 'v1', resource: 'pods', subresource: '', namespace: 'x', name: '' });
    assert.deepEqual(d.allowed && { id: d.grant.id, source: d.grant.source }, { id: 'a', source: { file: 'p.ts', line: 3 } });
  });
});
