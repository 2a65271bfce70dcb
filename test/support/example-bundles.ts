/**
 * The example policy's compiled output as the tests use it: the committed generated/,
 * copied and signed again now (`portcullis compile --renew` with the example's demo
 * key), so that no test depends on the wall clock against the committed signatures.
 * rbac.yaml and rules.json are the committed bytes; only the envelopes are new.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
let signed: string | undefined;

/** A directory laid out like generated/, its bundles valid from now; one per test process, removed at exit. */
export function signedExampleGenerated(): string {
  if (signed !== undefined) return signed;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-example-'));
  const out = join(dir, 'generated');
  cpSync(join(ROOT, 'generated'), out, { recursive: true });
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'compile', '--renew', '--no-typecheck', '--out', out], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`signing the example's bundles failed (exit ${r.status}): ${r.stderr}`);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  signed = out;
  return out;
}
