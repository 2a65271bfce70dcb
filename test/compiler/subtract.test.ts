import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CatalogIndex, type Catalog } from '../../compiler/catalog.ts';
import { subtractDenies } from '../../compiler/private/subtract.ts';
import { widenStreamDenies } from '../../compiler/resolve.ts';
import { ruleAllows, type PolicyRule, type RequestAttributes } from '../../core/index.ts';

const cat = new CatalogIndex(JSON.parse(readFileSync('generated/catalog/dev.json', 'utf8')) as Catalog);
const allows = (rules: readonly PolicyRule[], a: RequestAttributes) => rules.some((r) => ruleAllows(a, r));
const req = (verb: string, apiGroup: string, resource: string, subresource = '', name = ''): RequestAttributes => ({
  user: 'u', groups: [], verb, isResourceRequest: true, path: '', apiGroup, apiVersion: 'v1', resource, subresource, namespace: 'ns', name,
});

// Every (group, resource, verb Kubernetes checks on it), with and without a name: the space RBAC decisions live in.
const atoms = cat.catalog.resources.flatMap((r) => {
  const [resource = '', sub = ''] = r.resource.split('/');
  return cat.verbsOf(r.group, r.resource).flatMap((v) => ['', 'a'].map((n) => req(v, r.group, resource, sub, n)));
});

describe('deny subtraction: RBAC never grants what a deny forbids, and keeps the rest', () => {
  const ruleArb: fc.Arbitrary<PolicyRule> = fc.record({
    verbs: fc.subarray(['get', 'list', 'watch', 'create', 'delete', '*'], { minLength: 1 }),
    apiGroups: fc.subarray(['', 'apps', 'batch', '*'], { minLength: 1 }),
    resources: fc.subarray(['pods', 'pods/log', 'pods/exec', 'secrets', 'deployments', 'deployments/scale', '*', '*/scale'], { minLength: 1 }),
    resourceNames: fc.subarray(['a', 'b'], { maxLength: 1 }),
  });
  it('GIVEN random grants and denies THEN no atom the deny matches survives, and every other atom the grant allowed survives (unless lossy)', () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 3 }), fc.array(ruleArb, { minLength: 1, maxLength: 2 }), (grant, deny) => {
        const out = subtractDenies(grant, deny, cat);
        for (const a of atoms) {
          const denied = allows(deny, a);
          if (denied) assert.equal(allows(out.rules, a), false, `${JSON.stringify(a)} denied but kept`);
          else if (!out.lossy && allows(grant, a)) assert.equal(allows(out.rules, a), true, `${JSON.stringify(a)} lost`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('GIVEN edit minus reading secrets THEN secrets keep create/update but lose get/list/watch, and pods are untouched', () => {
    const edit = [{ verbs: ['*'], apiGroups: [''], resources: ['*'] }];
    const out = subtractDenies(edit, [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['secrets'] }], cat).rules;
    assert.equal(allows(out, req('get', '', 'secrets')), false);
    assert.equal(allows(out, req('create', '', 'secrets')), true);
    assert.equal(allows(out, req('get', '', 'pods')), true);
    assert.equal(allows(out, req('get', '', 'pods', 'log')), true);
  });

  it('GIVEN a deny of create on pods/exec THEN get on pods/exec goes too (WebSocket exec on v1.34 needs only get)', () => {
    const out = subtractDenies([{ verbs: ['get', 'create'], apiGroups: [''], resources: ['pods/exec', 'pods'] }], widenStreamDenies([{ verbs: ['create'], apiGroups: [''], resources: ['pods/exec'] }]), cat).rules;
    assert.equal(allows(out, req('get', '', 'pods', 'exec')), false);
    assert.equal(allows(out, req('create', '', 'pods', 'exec')), false);
    assert.equal(allows(out, req('get', '', 'pods')), true);
  });
});
