// The two entry points as users run them: `portcullis --version`, and `kubectl portcullis …`
// through real kubectl's plugin lookup (an executable kubectl-portcullis on PATH).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { PRODUCT_VERSION } from '../../core/version.ts';
import { ensureBinaries } from '../../sandbox/build.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('entry points', () => {
  it('GIVEN portcullis --version THEN it prints the package version and exits 0', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/portcullis.js'), '--version'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${PRODUCT_VERSION}\n`);
  });

  it('GIVEN this checkout after npm install WHEN `npx --no-install portcullis` runs THEN it is the source launcher, and compile --check answers', () => {
    // npm links a dependency's bins but never the root project's own: `prepare` (tools/link-bins) does.
    const r = spawnSync('npx', ['--no-install', 'portcullis', '--version'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${PRODUCT_VERSION}\n`);
    const check = spawnSync('npx', ['--no-install', 'portcullis', 'compile', '--check'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(check.status, 0, check.stderr);
    assert.match(`${check.stdout}${check.stderr}`, /generated\/ is up to date/);
  });

  it('GIVEN kubectl-portcullis on PATH WHEN kubectl portcullis explain runs THEN real kubectl hands it over and the decision comes back, with the grant that allows it', async () => {
    const { kubectl } = await ensureBinaries();
    const bin = mkdtempSync(join(tmpdir(), 'kubectl-plugin-'));
    dirs.push(bin);
    symlinkSync(join(ROOT, 'bin/kubectl-portcullis.js'), join(bin, 'kubectl-portcullis'));
    // kubectl runs the plugin with the node that runs this test first on PATH (the shebang says `env node`).
    const env = { ...process.env, PATH: `${bin}:${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };
    const list = spawnSync(kubectl, ['plugin', 'list'], { encoding: 'utf8', env });
    assert.match(list.stdout, /kubectl-portcullis/);
    const r = spawnSync(kubectl, ['portcullis', 'explain', 'GET', '/api/v1/namespaces/payments/pods', '--user', 'oidc:alice@acme.example', '--group', 'oidc:team-payments', '--cluster', 'dev', '--generated', join(ROOT, 'generated'), '--now', '2026-12-01T12:00:00Z'], { encoding: 'utf8', env, cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /allow/i);
    assert.match(r.stdout, /policies\/\S+\.ts:\d+/);
    const v = spawnSync(kubectl, ['portcullis', '--version'], { encoding: 'utf8', env });
    assert.equal(v.stdout, `${PRODUCT_VERSION}\n`);
  });
});
