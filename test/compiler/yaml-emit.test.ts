import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { emitYamlDocuments } from '../../compiler/private/yaml-emit.ts';

// Strings that trip YAML writers: indicators, booleans of YAML 1.1, numbers, colons, quotes, unicode.
const tricky = fc.oneof(
  fc.constantFrom('', '*', '-', '?', ':', 'yes', 'No', 'on', 'OFF', 'null', '~', '0', '1e3', '0x1F', '.5', '08:00', 'a: b', 'a #b', '#x', '@x', '`x', '"q"', "'q'", '{a}', '[b]', '&a', '!tag', '%x', '|', '>', 'pods/*', 'system:masters', 'portcullis:grant:a.b', 'repo:acme/shop:ref:refs/heads/main', 'é', ' lead', 'trail ', 'new\nline', 'tab\tx'),
  fc.string(),
  fc.string({ unit: 'grapheme' }),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, tricky, fc.integer(), fc.boolean(), fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(tricky, tie('v'), { maxKeys: 4, noNullPrototype: true })),
})).v;

describe('YAML emitter', () => {
  it('GIVEN any manifest-like data THEN the yaml parser reads back exactly that data', () => {
    fc.assert(
      fc.property(fc.array(fc.dictionary(tricky, value, { minKeys: 1, maxKeys: 5, noNullPrototype: true }), { minLength: 1, maxLength: 3 }), (docs) => {
        const text = emitYamlDocuments(docs);
        const parsed = parseAllDocuments(text).map((d) => {
          assert.deepEqual(d.errors, [], text);
          return d.toJS();
        });
        assert.deepEqual(parsed, docs, text);
      }),
      { numRuns: 1000 },
    );
  });
  it('GIVEN YAML 1.1 readers (kubectl) THEN booleans and numbers stay strings', () => {
    assert.equal(emitYamlDocuments([{ a: 'yes', b: 'on', c: '08:00', d: '0x1F', e: '*' }]), 'a: "yes"\nb: "on"\nc: "08:00"\nd: "0x1F"\ne: "*"\n');
  });
});
