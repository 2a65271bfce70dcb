import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { PRODUCT_VERSION } from '../../core/version.ts';

test('GIVEN package.json WHEN its version changes THEN core/version.ts says the same (metrics, --version)', () => {
  assert.equal(PRODUCT_VERSION, (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
});
