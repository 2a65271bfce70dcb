// The product as a policy repository gets it: `npm pack` of this repository, installed
// into a fresh directory outside it, then `portcullis init`, keygen, discover, compile,
// verify, plan and apply against two clusters of the sandbox fleet, all through the
// package's compiled JavaScript (the policy imports `portcullis` by its package name).
// And the proxy image (packaging/Containerfile) as far as it can be built without a
// container engine: its install stage's command on the same tarball, then its
// entrypoint as 65532 on a read-only root, serving kubectl against a real apiserver.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { freePorts } from '../../sandbox/processes.ts';
import { after, before, describe, it } from 'node:test';
import { PRODUCT_VERSION } from '../../core/version.ts';
import { getTestFleet, type TestFleet } from '../support/fleet.ts';
import { CONFIG_PATH, synthProxyChart } from '../../runtime-proxy/deploy/index.ts';
import { grant, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user } from '../proxy/harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CLUSTERS = ['staging', 'prod-eu'];

describe('the npm package in a policy repository of its own', () => {
  let fleet: TestFleet;
  let work: string;
  let repo: string;
  let tarball: string;
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
    tarball = join(work, tgz);
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
    for (const f of ['policies/index.ts', 'policies/access.assert.ts', 'tsconfig.json', 'README.md', '.github/workflows/plan.yml', '.github/workflows/apply.yml', '.github/workflows/renew.yml']) assert.ok(existsSync(join(repo, f)), f);
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

    // The scaffolded assertions hold, offline, and say what the live clusters say.
    const claims = npx(['test']);
    assert.equal(claims.status, 0, claims.stdout + claims.stderr);
    assert.match(claims.stdout, /^policies\/access\.assert\.ts:7: ok {3}someone \(groups oidc:team-payments\) may create,patch deployments\.apps in payments on env=dev$/m);
    assert.match(claims.stdout, /^3 claims on 2 clusters: 3 hold, 0 fail$/m);
    for (const [cluster, verb, ns, expected] of [['staging', 'patch', 'payments', 'yes'], ['prod-eu', 'patch', 'kube-system', 'no']] as const) {
      assert.equal(admin(cluster, ['auth', 'can-i', verb, 'deployments.apps', '-n', ns, '--as', 'oidc:y', '--as-group', 'oidc:team-payments']).stdout.trim(), expected);
    }
    assert.equal(admin('prod-eu', ['auth', 'can-i', 'list', 'secrets', '-A', '--as', 'oidc:y', '--as-group', 'oidc:team-payments']).stdout.trim(), 'no');
    // A claim the policy does not satisfy fails at its line, naming the deny; the cluster agrees.
    const assertions = join(repo, 'policies/access.assert.ts');
    const lines = readFileSync(assertions, 'utf8').trimEnd().split('\n');
    writeFileSync(assertions, `${[...lines, "expectAccess.that(id.payments).may('get', 'secrets').in('payments').on({ labels: { env: 'prod' } });"].join('\n')}\n`);
    const failing = npx(['test']);
    assert.equal(failing.status, 1, failing.stdout + failing.stderr);
    assert.match(failing.stdout, new RegExp(`^policies/access\\.assert\\.ts:${lines.length + 1}: FAIL someone \\(groups oidc:team-payments\\) may get secrets in payments on env=prod\\n {4}on prod-eu: get secrets in payments is denied: deny no-secrets-in-prod \\(policies/access\\.ts:\\d+\\)$`, 'm'));
    assert.equal(admin('prod-eu', ['auth', 'can-i', 'get', 'secrets', '-n', 'payments', '--as', 'oidc:y', '--as-group', 'oidc:team-payments']).stdout.trim(), 'no');
  });

  it('GIVEN packaging/Containerfile THEN it is multi-stage, ends on a distroless non-root Node 22 as 65532, and its entrypoint and command are what the chart runs', () => {
    const text = readFileSync(join(ROOT, 'packaging/Containerfile'), 'utf8');
    const froms = [...text.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)];
    assert.deepEqual(froms.map((m) => m[2]), ['build', 'install', undefined], 'build, install, then the runtime');
    assert.match(froms.at(-1)?.[1] ?? '', /^gcr\.io\/distroless\/nodejs22-debian12:nonroot$/);
    assert.match(text, /npm install --omit=dev --omit=peer/, 'production dependencies only: no TypeScript compiler');
    const chart = parseAllDocuments(synthProxyChart({ image: 'x', cluster: 'dev', trustedKeys: { k: 'pem' }, config: {} })).map((d) => d.toJSON() as Record<string, unknown>);
    const pod = (chart.find((o) => o['kind'] === 'StatefulSet') as { spec: { template: { spec: { securityContext: Record<string, unknown>; containers: { args: string[]; securityContext: Record<string, unknown> }[] } } } }).spec.template.spec;
    assert.equal(/^USER (\S+)$/m.exec(text)?.[1], `${String(pod.securityContext['runAsUser'])}:${String(pod.securityContext['runAsGroup'])}`);
    assert.equal(pod.containers[0]?.securityContext['readOnlyRootFilesystem'], true);
    assert.deepEqual(JSON.parse(/^CMD (.+)$/m.exec(text)?.[1] ?? '[]'), pod.containers[0]?.args);
    assert.deepEqual(JSON.parse(/^ENTRYPOINT (.+)$/m.exec(text)?.[1] ?? '[]'), ['/nodejs/bin/node', '/app/node_modules/portcullis/dist/bin/portcullis.js']);
    assert.equal(pod.containers[0]?.args.at(-1), CONFIG_PATH);
  });

  it('GIVEN the image\'s install stage run on the tarball WHEN its entrypoint runs the proxy as 65532 on a read-only root (writable: the audit and /tmp volumes only) THEN kubectl works through it, it refuses what the bundle does not grant, audits, and stops on SIGTERM', async () => {
    // The install stage, as the Containerfile runs it.
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), '{"name":"portcullis-image","private":true}');
    const install = spawnSync('npm', ['install', '--omit=dev', '--omit=peer', '--no-audit', '--no-fund', tarball], { cwd: app, encoding: 'utf8', timeout: 300_000 });
    assert.equal(install.status, 0, install.stderr);
    assert.ok(!existsSync(join(app, 'node_modules/typescript')), 'no TypeScript compiler in the image');
    assert.ok(!existsSync(join(app, 'node_modules/fast-check')), 'no development dependencies');

    const NS = 'image-proxy';
    const rules = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }];
    const h = await startHarness({
      namespaces: [NS],
      rbac: manifestsYaml(upstreamRole(NS, 'alice-read', [user('oidc:alice')], rules)),
      impersonable: { users: ['oidc:alice'], groups: [] },
      ruleSet: ruleSet('dev', [grant('alice-read', [user('oidc:alice')], rules, ns(NS))], { users: ['oidc:alice'] }),
    });
    // What the pod mounts, owned by the pod's user: configuration, keys, TLS, tokens (copies), and the two writable volumes.
    const mnt = join(work, 'mnt');
    const files = join(mnt, 'files');
    for (const d of ['files', 'audit', 'tmp']) mkdirSync(join(mnt, d), { recursive: true });
    cpSync(h.dir, join(mnt, 'config'), { recursive: true });
    const cfg = parseYaml(readFileSync(join(h.dir, 'proxy.yaml'), 'utf8')) as Record<string, unknown>;
    let n = 0;
    const relocate = (v: unknown): unknown => {
      if (typeof v === 'string' && isAbsolute(v) && existsSync(v) && statSync(v).isFile()) {
        const to = join(files, `${n++}-${basename(v)}`);
        copyFileSync(v, to);
        return to;
      }
      if (Array.isArray(v)) return v.map(relocate);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, relocate(x)]));
      return v;
    };
    const [port = 0] = await freePorts(1);
    const config: Record<string, unknown> = { ...(relocate(cfg) as Record<string, unknown>), listen: { host: '127.0.0.1', port }, audit: { stdout: true, file: { path: join(mnt, 'audit', 'audit.log') }, flushIntervalMs: 50 } };
    delete config['metrics'];
    writeFileSync(join(mnt, 'config', 'image.yaml'), stringify(config));
    spawnSync('chown', ['-R', '65532:65532', mnt]);
    chmodSync(work, 0o755);
    // A private mount namespace: the two volumes stay writable, the rest of the root is remounted read-only.
    const script = [
      `mount --bind ${join(mnt, 'audit')} ${join(mnt, 'audit')}`,
      `mount --bind ${join(mnt, 'tmp')} ${join(mnt, 'tmp')}`,
      'mount -o remount,bind,ro /',
      `exec setpriv --reuid=65532 --regid=65532 --clear-groups env -i HOME=/nonexistent TMPDIR=${join(mnt, 'tmp')} NODE_ENV=production "$0" "$@"`,
    ].join(' && ');
    const entry = join(app, 'node_modules/portcullis/dist/bin/portcullis.js');
    const proxy = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, process.execPath, entry, 'proxy', '--config', join(mnt, 'config', 'image.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proxy.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proxy.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => proxy.on('close', r));
    try {
      const server = `https://127.0.0.1:${port}/clusters/dev`;
      const alice = h.kubeconfig(await h.token('alice', []));
      let r = { status: 1 as number | null, stdout: '', stderr: '' };
      for (let i = 0; i < 60 && r.status !== 0; i++) {
        r = await h.kubectl(alice, ['--server', server, 'get', 'configmaps', '-n', NS, '-o', 'name']);
        if (r.status !== 0) await new Promise((res) => setTimeout(res, 500));
      }
      assert.equal(r.status, 0, `${r.stderr}\nproxy stderr: ${err}`);
      assert.match(r.stdout, /configmap\/kube-root-ca\.crt/);
      assert.match(readFileSync(`/proc/${proxy.pid ?? 0}/status`, 'utf8'), /^Uid:\t65532\t/m, 'the proxy runs as 65532');
      const refused = await h.kubectl(alice, ['--server', server, 'get', 'secrets', '-n', NS]);
      assert.match(refused.stderr, /forbidden/i);
      // Nothing under the installed package or the mounted configuration was written; the audit volume was.
      assert.match(readFileSync(join(mnt, 'audit', 'audit.log'), 'utf8'), /"username":"oidc:alice"/);
      assert.match(out, /"verb":"list"/, 'audit records on stdout too');
    } finally {
      proxy.kill('SIGTERM');
      const code = await exited;
      await h.stop();
      assert.equal(code, 0, `exit ${code}: ${err}`);
    }
    assert.doesNotMatch(err, /EROFS|read-only file system/i);
  });
});

