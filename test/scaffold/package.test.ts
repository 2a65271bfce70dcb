// The product as a policy repository gets it: `npm pack` of this repository, installed
// into a fresh directory outside it, then `portcullis init`, keygen, discover, compile,
// verify, plan and apply against two clusters of the sandbox fleet, all through the
// package's compiled JavaScript (the policy imports `portcullis` by its package name).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PRODUCT_VERSION } from '../../core/version.ts';
import { getTestFleet, type TestFleet } from '../support/fleet.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CLUSTERS = ['staging', 'prod-eu'];

describe('the npm package in a policy repository of its own', () => {
  let fleet: TestFleet;
  let work: string;
  let repo: string;
  const npx = (args: readonly string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> =>
    spawnSync(join(repo, 'node_modules', '.bin', 'portcullis'), args, { cwd: repo, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 180_000 });
  const admin = (cluster: string, args: readonly string[]) => spawnSync(fleet.bin.kubectl, ['--kubeconfig', fleet.clusters.find((c) => c.name === cluster)?.adminKubeconfig ?? '', ...args], { encoding: 'utf8' });
  // Clusters without Portcullis yet: the shared fleet's bundles (higher revisions) would refuse revision 1 as a rollback.
  const forgetBundles = () => CLUSTERS.forEach((c) => admin(c, ['delete', 'configmap', 'portcullis-bundle', '-n', 'portcullis-system', '--ignore-not-found']));

  before(async () => {
    fleet = await getTestFleet();
    work = mkdtempSync(join(tmpdir(), 'portcullis-pack-'));
    repo = join(work, 'acme-policy');
    const pack = spawnSync('npm', ['pack', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
    assert.equal(pack.status, 0, pack.stderr);
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    assert.ok(tgz, pack.stdout);
    spawnSync('mkdir', [repo]);
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ name: 'acme-policy', private: true }));
    const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', join(work, tgz), 'typescript@^5.9.3'], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
    assert.equal(install.status, 0, install.stderr);
  });
  after(() => {
    // Leave the shared fleet with the example policy, as the other tests expect it.
    forgetBundles();
    spawnSync(process.execPath, [join(ROOT, 'bin/portcullis.js'), 'apply', '--kubeconfigs', fleet.file, '--clusters', CLUSTERS.join(','), '--generated', join(ROOT, 'generated')], { cwd: ROOT, encoding: 'utf8' });
    rmSync(work, { recursive: true, force: true });
  });

  it('GIVEN the packed package WHEN installed THEN it holds compiled JavaScript and types, no TypeScript sources, and its bin runs from the compiled JavaScript', () => {
    const pkg = join(repo, 'node_modules', 'portcullis');
    const files = readdirSync(join(pkg, 'dist'), { recursive: true, encoding: 'utf8' });
    assert.ok(files.includes('compiler/index.js') && files.includes('compiler/index.d.ts'), 'compiled JS and declarations');
    assert.deepEqual(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no TypeScript sources');
    assert.ok(!existsSync(join(pkg, 'test')), 'no tests');
    const v = npx(['--version']);
    assert.equal(v.stdout, `${PRODUCT_VERSION}\n`, v.stderr);
  });

  it('GIVEN a fresh directory WHEN portcullis init, keygen, discover, compile, verify, plan and apply run THEN the policy is live on the clusters, and a second plan has nothing to do', () => {
    const init = npx(['init']);
    assert.equal(init.status, 0, init.stderr);
    for (const f of ['policies/index.ts', 'tsconfig.json', 'README.md', '.github/workflows/plan.yml', '.github/workflows/apply.yml', '.github/workflows/renew.yml']) assert.ok(existsSync(join(repo, f)), f);
    const plan = readFileSync(join(repo, '.github/workflows/plan.yml'), 'utf8');
    assert.match(plan, /npx portcullis plan/);
    assert.doesNotMatch(plan, /bin\/portcullis\.js/);
    assert.match(readFileSync(join(repo, 'policies/index.ts'), 'utf8'), /from 'portcullis'/);
    assert.equal(npx(['init']).status, 1, 'a second init refuses: policies/ exists');
    // What a platform engineer edits first: the clusters.
    const servers = new Map(fleet.clusters.map((c) => [c.name, c.server]));
    const clusters = join(repo, 'policies/clusters.ts');
    writeFileSync(
      clusters,
      readFileSync(clusters, 'utf8')
        .replace(/'dev', \{ server: '[^']+'/, `'staging', { server: '${servers.get('staging')}'`)
        .replace(/'prod', \{ server: '[^']+'/, `'prod-eu', { server: '${servers.get('prod-eu')}'`),
    );
    assert.equal(npx(['keygen', '--out', 'keys/signing.key']).status, 0);
    for (const c of CLUSTERS) {
      const d = npx(['discover', '--cluster', c, '--kubeconfig', fleet.clusters.find((x) => x.name === c)?.adminKubeconfig ?? '', '--kubectl', fleet.bin.kubectl]);
      assert.equal(d.status, 0, d.stderr);
    }
    const env = { PORTCULLIS_SIGNING_KEY: 'keys/signing.key' };
    const compile = npx(['compile'], env);
    assert.equal(compile.status, 0, compile.stderr + compile.stdout);
    assert.equal(npx(['compile', '--check']).status, 0);
    for (const c of CLUSTERS) assert.equal(npx(['verify', '--cluster', c]).status, 0);
    forgetBundles();
    const planned = npx(['plan', '--kubeconfigs', fleet.file]);
    assert.equal(planned.status, 2, planned.stderr + planned.stdout);
    const applied = npx(['apply', '--kubeconfigs', fleet.file]);
    assert.equal(applied.status, 0, applied.stderr + applied.stdout);
    assert.match(applied.stdout + applied.stderr, /2 of 2 clusters ok/);
    const again = npx(['plan', '--kubeconfigs', fleet.file]);
    assert.equal(again.status, 0, again.stdout);
    // The new policy holds upstream: sre views everywhere; payments edits only where env=dev.
    assert.equal(admin('prod-eu', ['auth', 'can-i', 'list', 'pods', '-A', '--as', 'oidc:x', '--as-group', 'oidc:sre']).stdout.trim(), 'yes');
    assert.equal(admin('staging', ['auth', 'can-i', 'create', 'deployments.apps', '-n', 'payments', '--as', 'oidc:y', '--as-group', 'oidc:team-payments']).stdout.trim(), 'yes');
    assert.equal(admin('prod-eu', ['auth', 'can-i', 'create', 'deployments.apps', '-n', 'payments', '--as', 'oidc:y', '--as-group', 'oidc:team-payments']).stdout.trim(), 'no');
  });
});
