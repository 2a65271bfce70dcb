// Break-glass activations: the pure check and the store shared through a directory.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RuleSet } from '../../core/rule-set.ts';
import { ActivationStore, checkBreakGlass, DirectoryActivations } from '../../runtime-proxy/break-glass.ts';

const RS: RuleSet = {
  apiVersion: 'portcullis.dev/v1',
  kind: 'RuleSet',
  cluster: 'dev',
  grants: [
    { id: 'bg', source: { file: 'p.ts', line: 1 }, subjects: [{ kind: 'Group', name: 'oidc:sre' }], rules: [], scope: { kind: 'cluster' }, conditions: { breakGlass: { maxDurationSeconds: 600, notify: [] } }, activationGroup: 'portcullis:grant:bg' },
    { id: 'plain', source: { file: 'p.ts', line: 2 }, subjects: [{ kind: 'Group', name: 'oidc:sre' }], rules: [], scope: { kind: 'cluster' }, conditions: {} },
  ],
  denies: [],
  impersonable: { users: ['oidc:a'], groups: ['oidc:sre', 'portcullis:grant:bg'] },
};

describe('checkBreakGlass', () => {
  const cases: [string, unknown, readonly string[], string][] = [
    ['a member with a reason', { grant: 'bg', reason: 'INC-1' }, ['oidc:sre'], 'ok 600'],
    ['a shorter duration', { grant: 'bg', reason: 'INC-1', durationSeconds: 60 }, ['oidc:sre'], 'ok 60'],
    ['too long', { grant: 'bg', reason: 'INC-1', durationSeconds: 601 }, ['oidc:sre'], '400'],
    ['zero', { grant: 'bg', reason: 'INC-1', durationSeconds: 0 }, ['oidc:sre'], '400'],
    ['fractional', { grant: 'bg', reason: 'INC-1', durationSeconds: 1.5 }, ['oidc:sre'], '400'],
    ['no reason', { grant: 'bg', reason: ' ' }, ['oidc:sre'], '400'],
    ['not a subject', { grant: 'bg', reason: 'x' }, ['oidc:dev'], '403'],
    ['not break-glass', { grant: 'plain', reason: 'x' }, ['oidc:sre'], '403'],
    ['unknown grant', { grant: 'nope', reason: 'x' }, ['oidc:sre'], '403'],
    ['no body', null, ['oidc:sre'], '400'],
  ];
  for (const [name, body, groups, want] of cases) {
    it(`GIVEN ${name} WHEN checked THEN ${want}`, () => {
      const r = checkBreakGlass(body, RS, 'oidc:a', groups);
      assert.equal(r.ok ? `ok ${r.durationSeconds}` : String(r.status), want);
    });
  }
});

describe('ActivationStore', () => {
  it('GIVEN two stores on one directory WHEN one records an activation THEN the other sees it after a refresh until it expires, per user and cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bg-'));
    let now = 1_000_000;
    const a = new ActivationStore(new DirectoryActivations(dir), () => now);
    const b = new ActivationStore(new DirectoryActivations(dir), () => now);
    await a.add({ cluster: 'dev', user: 'oidc:a', grant: 'bg', reason: 'r', activatedAt: now, expiresAt: now + 60_000 });
    assert.deepEqual([...a.active('dev', 'oidc:a').keys()], ['bg']);
    assert.equal(b.active('dev', 'oidc:a').size, 0, 'not before b refreshes');
    await b.refresh();
    assert.deepEqual([...b.active('dev', 'oidc:a').keys()], ['bg']);
    assert.equal(b.active('prod', 'oidc:a').size, 0);
    assert.equal(b.active('dev', 'oidc:b').size, 0);
    now += 61_000;
    assert.equal(b.active('dev', 'oidc:a').size, 0);
    now += 120_000;
    await b.refresh();
    assert.deepEqual(readdirSync(dir), [], 'long-expired activations are removed');
    assert.ok(existsSync(dir));
  });
});
