/**
 * plan and apply end to end: the real compiler, the real CLI, real
 * kube-apiservers and kubectl from the shared sandbox fleet (dev, staging,
 * prod-eu). Leaves the fleet with the example's RBAC applied and no bundle
 * delivered: its bundles are signed per test process (signedExampleGenerated),
 * so another process's copy of the same revision must not look like a rollback.
 */
import { canonicalJson, decodeRuleSet, sha256 } from '../../core/index.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { decide, indexRuleSet, type RequestAttributes, type RuleSet } from '../../core/index.ts';
import { readCredentials } from '../../gitops/fleet.ts';
import { MANAGED_KINDS } from '../../gitops/objects.ts';
import { runApply, runPlan } from '../../gitops/run.ts';
import { getTestFleet, type TestFleet } from '../support/fleet.ts';
import { readGenerated } from '../../gitops/generated.ts';
import { fetchBundle } from '../../runtime-proxy/bundle-source.ts';
import { BundleStore } from '../../runtime-proxy/bundle-store.ts';
import { signedExampleGenerated } from '../support/example-bundles.ts';
import { pullRequestStandIn } from '../support/github-server.ts';
import { appendToLastFunction, closedPort, downKubeconfig, makeWorkspace, type Workspace } from './workspace.ts';

const MANAGED = 'app.kubernetes.io/managed-by=portcullis';
const KINDS = MANAGED_KINDS.map((k) => (k.group ? `${k.resource}.${k.group}` : k.resource)).join(',');
const EDIT = `new Grant(fleet, 'e2e-contractor-configmaps', { to: [id.contractor], role: new Role(fleet, 'e2e-configmap-reader').allow(['get', 'list'], ['configmaps']), clusters: { names: ['dev'] }, namespaces: ['search'] });`;

// The compiler names a ClusterRole by its role and a hash of its rules, and a binding by its grant and that hash.
const HASH = sha256(canonicalJson([{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }])).slice(0, 10);
const ROLE = `portcullis:role:e2e-configmap-reader:${HASH}`;
const BINDING = `portcullis:grant:e2e-contractor-configmaps:${HASH}`;

// The example's generated/ (signed again now) is at some revision; everything below counts from it.
const revisionOf = (cluster: string) => (JSON.parse(Buffer.from((JSON.parse(readFileSync(join(signedExampleGenerated(), cluster, 'bundle.sig.json'), 'utf8')) as { payload: string }).payload, 'base64').toString()) as { revision: number }).revision;
const BASE = revisionOf('dev');

let fleet: TestFleet;
let ws: Workspace;
let originalAccess: string;

async function k(cluster: string, args: readonly string[], input?: string) {
  const r = await fleet.kubectl(args, { kubeconfig: fleet.cluster(cluster).adminKubeconfig, ...(input === undefined ? {} : { input }) });
  return r;
}

/** Removes every trace of Portcullis from a cluster: managed objects and the bundle ConfigMap. */
async function wipe(cluster: string): Promise<void> {
  await k(cluster, ['delete', 'configmap', 'portcullis-bundle', '-n', 'portcullis-system', '--ignore-not-found']);
  const d = await k(cluster, ['delete', KINDS, '--all-namespaces', '-l', MANAGED, '--ignore-not-found', '--wait=false']);
  assert.equal(d.code, 0, d.stderr);
  const deadline = Date.now() + 90_000;
  for (;;) {
    const r = await k(cluster, ['get', 'namespaces', '-l', MANAGED, '-o', 'name']);
    if (r.stdout.trim() === '') return;
    if (Date.now() > deadline) throw new Error(`${cluster}: namespaces still terminating: ${r.stdout}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

function docs(text: string): { kind: string; metadata: { name: string; namespace?: string } }[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string } } | null)
    .filter((x): x is { kind: string; metadata: { name: string; namespace?: string } } => x !== null);
}

async function managedCount(cluster: string): Promise<number> {
  const r = await k(cluster, ['get', KINDS, '--all-namespaces', '-l', MANAGED, '-o', 'name']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).length;
}

async function canI(cluster: string, args: readonly string[]): Promise<boolean> {
  const r = await k(cluster, ['auth', 'can-i', ...args]);
  assert.ok(r.stdout.trim() === 'yes' || r.stdout.trim() === 'no', `can-i ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
  return r.stdout.trim() === 'yes';
}

before(async () => {
  fleet = await getTestFleet();
  ws = makeWorkspace();
  originalAccess = ws.read('policies/access.ts');
  await Promise.all(fleet.clusters.map((c) => wipe(c.name)));
});

after(async () => {
  ws?.remove();
  await Promise.all((fleet?.clusters ?? []).map((c) => k(c.name, ['delete', 'configmap', 'portcullis-bundle', '-n', 'portcullis-system', '--ignore-not-found'])));
});

test('GIVEN clusters without Portcullis WHEN apply runs THEN every generated object and the bundle ConfigMap exist', async () => {
  const r = await ws.cli(['apply', '--kubeconfigs', fleet.file]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /Apply summary: 3 of 3 clusters ok/);
  assert.match(r.stderr, /\[dev\] applying \d+ objects…/);
  assert.match(r.stderr, new RegExp(`\\[dev\\] delivering bundle revision ${BASE}…`));
  for (const c of fleet.clusters) {
    const want = docs(ws.read(`generated/${c.name}/rbac.yaml`)).length;
    assert.equal(await managedCount(c.name), want, `${c.name}: managed objects`);
    const cm = await k(c.name, ['get', 'configmap', 'portcullis-bundle', '-n', 'portcullis-system', '-o', 'json']);
    const data = (JSON.parse(cm.stdout) as { data: Record<string, string> }).data;
    assert.deepEqual(Object.keys(data).sort(), ['bundle.sig.json', 'rbac.yaml', 'rules.json']);
    for (const f of Object.keys(data)) assert.equal(data[f], ws.read(`generated/${c.name}/${f}`), `${c.name}: ${f}`);
  }
});

test('WHEN planned right after apply THEN there are no changes and the exit status is 0', async () => {
  const r = await ws.cli(['plan', '--kubeconfigs', fleet.file]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Summary: no changes on 3 clusters/);
});

test('GIVEN a read-only bearer token (--token-file, server and CA from fleet.json) WHEN plan runs THEN it plans; WHEN apply runs with it THEN the cluster refuses', async () => {
  const dev = fleet.cluster('dev');
  // A read-only credential, like the pull-request workflow's: list the managed kinds, read the bundle.
  const reader = [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'e2e-plan-reader' }, rules: [
      { apiGroups: [''], resources: ['namespaces', 'serviceaccounts', 'configmaps'], verbs: ['get', 'list'] },
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles', 'clusterrolebindings', 'roles', 'rolebindings'], verbs: ['get', 'list'] },
    ] },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'e2e-plan-reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'e2e-plan-reader' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'carol' }] },
  ].map((o) => JSON.stringify(o)).join('\n');
  assert.equal((await k('dev', ['apply', '-f', '-'], reader)).code, 0);
  const tokenFile = join(ws.dir, 'carol.token');
  writeFileSync(tokenFile, `${dev.tokens['carol'] ?? ''}\n`, { mode: 0o600 });
  const fleetFile = join(ws.dir, 'token-fleet.json');
  writeFileSync(fleetFile, JSON.stringify({ clusters: [{ name: 'dev', server: dev.server, proxyUrl: dev.server, labels: { env: 'dev' } }] }));
  const viaToken = ['--fleet', fleetFile, '--token-file', tokenFile, '--proxy-ca', dev.caFile, '--kubectl', fleet.bin.kubectl];
  try {
    const p = await ws.cli(['plan', ...viaToken]);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.match(p.stdout, /== dev: no changes/);
    // Drift, then try to revert it with the read-only token.
    const b = docs(ws.read('generated/dev/rbac.yaml')).find((d) => d.kind === 'RoleBinding');
    assert.ok(b?.metadata.namespace);
    assert.equal((await k('dev', ['delete', 'rolebinding', b.metadata.name, '-n', b.metadata.namespace])).code, 0);
    const a = await ws.cli(['apply', ...viaToken]);
    assert.equal(a.code, 1, a.stdout + a.stderr);
    assert.match(a.stdout, /dev: FAILED — .*forbidden/i);
  } finally {
    await k('dev', ['delete', 'clusterrolebinding,clusterrole', 'e2e-plan-reader', '--ignore-not-found']);
    const fix = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev']);
    assert.equal(fix.code, 0, fix.stdout + fix.stderr);
  }
});

test('GIVEN a GitHub Actions pull_request environment WHEN plan --comment runs THEN the sticky comment and the status reach the (schema-checked) GitHub API', async () => {
  const gh = pullRequestStandIn({ owner: 'acme', repo: 'fleet-policy', issueNumber: 7 });
  const api = await gh.server.start();
  try {
    const event = join(ws.dir, 'event.json');
    writeFileSync(event, JSON.stringify({ number: 7, pull_request: { number: 7, head: { sha: 'a'.repeat(40) } } }));
    const env = { GITHUB_REPOSITORY: 'acme/fleet-policy', GITHUB_EVENT_PATH: event, GITHUB_TOKEN: 'ghs_e2e', GITHUB_API_URL: api, GITHUB_SERVER_URL: 'https://github.com', GITHUB_RUN_ID: '5' };
    const r = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--format', 'markdown', '--comment'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /plan comment created on acme\/fleet-policy#7/);
    assert.equal(gh.comments.length, 1);
    assert.equal(gh.comments[0]?.body, r.stdout.replace(/\n$/, '\n'));
    assert.deepEqual(gh.statuses.map((s) => [s.state, s.context, s.description]), [['success', 'portcullis/plan', 'no changes on 3 clusters']]);
    const again = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--comment'], env);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /plan comment unchanged/);
    assert.deepEqual(gh.server.violations, []);
  } finally {
    await gh.server.stop();
  }
});

test('GIVEN a policy edit WHEN compiled and planned THEN exactly the expected objects and access change, and apply makes it real', async () => {
  ws.edit('policies/access.ts', (t) => appendToLastFunction(t, EDIT));
  const c = await ws.cli(['compile', '--no-typecheck']);
  assert.equal(c.code, 0, c.stderr);
  const p = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--format', 'json']);
  assert.equal(p.code, 2, p.stderr);
  const plan = JSON.parse(p.stdout) as { clusters: { cluster: string; counts: object; bundle: { changed: boolean; fromRevision: number; toRevision: number }; access: { change: string; subject: string; verb: string; resource: string; namespace: string }[]; changes: { action: string; ref: string; diff: string }[] }[] };
  const dev = plan.clusters.find((x) => x.cluster === 'dev');
  assert.ok(dev);
  assert.deepEqual(dev.changes.map((x) => `${x.action} ${x.ref}`), [
    'update ClusterRole portcullis:proxy-impersonator',
    `create ClusterRole ${ROLE}`,
    `create RoleBinding search/${BINDING}`,
  ]);
  assert.match(dev.changes[0]?.diff ?? '', /^\+ {6}- oidc:zoe@contractor\.example$/m);
  assert.deepEqual(
    dev.access.map((a) => `${a.change} ${a.subject} ${a.verb} ${a.resource} ${a.namespace}`),
    ['gained User oidc:zoe@contractor.example get configmaps search', 'gained User oidc:zoe@contractor.example list configmaps search'],
  );
  assert.deepEqual(dev.bundle, { changed: true, fromRevision: BASE, toRevision: BASE + 1 });
  for (const other of plan.clusters.filter((x) => x.cluster !== 'dev')) {
    assert.deepEqual(other.changes, [], `${other.cluster}: no object changes`);
    assert.deepEqual(other.access, [], `${other.cluster}: no access changes`);
  }
  const text = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'dev']);
  assert.match(text.stdout, /Effective access:\n {4}\+ User oidc:zoe@contractor\.example can now get, list on configmaps in namespace search\n/);

  assert.equal(await canI('dev', ['get', 'configmaps', '-n', 'search', '--as', 'oidc:zoe@contractor.example']), false);
  // The proxy's side of the pipeline: its ConfigMap bundle source, with the read-only bundle-reader token.
  const devCluster = fleet.cluster('dev');
  const token = await k('dev', ['create', 'token', 'portcullis-bundle-reader', '-n', 'portcullis-system', '--duration=10m']);
  assert.equal(token.code, 0, token.stderr);
  const tokenFile = join(ws.dir, 'bundle-reader.token');
  writeFileSync(tokenFile, token.stdout.trim(), { mode: 0o600 });
  const source = { kind: 'configMap' as const, tokenFile, namespace: 'portcullis-system', name: 'portcullis-bundle', pollIntervalMs: 1000 };
  const endpoint = { serverUrl: devCluster.server, ca: readFileSync(devCluster.caFile) };
  const store = new BundleStore('dev', (await readGenerated(join(ws.dir, 'generated'))).keys);
  const fetch = async () => {
    const f = await fetchBundle(source, endpoint);
    return store.offer(f.files, Date.now(), f.commit);
  };
  const first = await fetch();
  assert.equal(first.result === 'accepted' && first.bundle.revision, BASE);

  const badCommit = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--commit', 'HEAD']);
  assert.equal(badCommit.code, 1);
  assert.match(badCommit.stderr, /--commit must be a full commit id/);
  // --commit names what is checked out, or apply refuses before touching a cluster.
  ws.git('init', '-q', '-b', 'main');
  const COMMIT = ws.commitAll('Let contractors read configmaps in search');
  const notHead = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--commit', '5eed'.repeat(10)]);
  assert.equal(notHead.code, 1);
  assert.match(notHead.stderr, new RegExp(`COMMIT_MISMATCH: --commit 5eed5eed\\w+ is not the checked-out commit \\(HEAD is ${COMMIT}\\)`));
  writeFileSync(join(ws.dir, 'generated', 'dev', 'stray.yaml'), 'kind: Stray\n');
  const dirty = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--commit', COMMIT]);
  assert.equal(dirty.code, 1);
  assert.match(dirty.stderr, /COMMIT_MISMATCH: .*differs from that commit \(1 changed file\(s\): generated\/dev\/stray\.yaml\)/);
  rmSync(join(ws.dir, 'generated', 'dev', 'stray.yaml'));
  // A file git ignores still counts: apply reads every file under generated/.
  writeFileSync(join(ws.dir, '.git', 'info', 'exclude'), '*.bak\n');
  writeFileSync(join(ws.dir, 'generated', 'dev', 'stray.bak'), 'x\n');
  const ignored = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--commit', COMMIT]);
  assert.equal(ignored.code, 1);
  assert.match(ignored.stderr, /COMMIT_MISMATCH: .*\(1 changed file\(s\): generated\/dev\/stray\.bak\)/);
  rmSync(join(ws.dir, 'generated', 'dev', 'stray.bak'));
  const stillOld = await fetch();
  assert.equal(stillOld.result, 'unchanged', 'the refused applies delivered nothing');
  const a = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'env=dev,staging', '--commit', COMMIT]);
  assert.equal(a.code, 0, a.stderr + a.stdout);
  assert.match(a.stdout, /2 of 2 clusters ok/);
  const reloaded = await fetch();
  assert.equal(reloaded.result, 'accepted', JSON.stringify(reloaded));
  assert.equal(reloaded.result === 'accepted' && reloaded.bundle.revision, BASE + 1);
  assert.equal(reloaded.result === 'accepted' && reloaded.bundle.commit, COMMIT, 'the delivered bundle names the commit it was applied from');
  assert.ok(reloaded.result === 'accepted' && reloaded.bundle.ruleSet.grants.some((g) => g.id === 'e2e-contractor-configmaps'), 'the proxy now enforces the new grant');
  assert.equal(await canI('dev', ['get', 'configmaps', '-n', 'search', '--as', 'oidc:zoe@contractor.example']), true);
  assert.equal(await canI('dev', ['delete', 'configmaps', '-n', 'search', '--as', 'oidc:zoe@contractor.example']), false);
  const again = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'dev,staging']);
  assert.equal(again.code, 0, again.stdout);
  // prod-eu was not selected: its new bundle revision is still to come.
  const prod = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'env=prod']);
  assert.equal(prod.code, 2);
  assert.match(prod.stdout, new RegExp(`prod-eu: 0 to create, 0 to update, 0 to delete, \\d+ unchanged; bundle revision ${revisionOf('prod-eu')} → ${revisionOf('prod-eu') + 1}`));
});

test('GIVEN a grant removed WHEN applied THEN its objects are pruned (binding before role) and unmanaged objects are untouched', async () => {
  const handMade = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"hand-made","namespace":"search"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}`;
  assert.equal((await k('dev', ['apply', '-f', '-'], handMade)).code, 0);
  ws.edit('policies/access.ts', () => originalAccess);
  assert.equal((await ws.cli(['compile', '--no-typecheck'])).code, 0);
  const p = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--format', 'json']);
  assert.equal(p.code, 2);
  const dev = (JSON.parse(p.stdout) as { clusters: { changes: { action: string; ref: string }[]; access: { change: string }[] }[] }).clusters[0];
  assert.deepEqual(dev?.changes.map((x) => `${x.action} ${x.ref}`), [
    'update ClusterRole portcullis:proxy-impersonator',
    `delete RoleBinding search/${BINDING}`,
    `delete ClusterRole ${ROLE}`,
  ]);
  assert.deepEqual(dev?.access.map((a) => a.change), ['lost', 'lost']);
  const a = await ws.cli(['apply', '--kubeconfigs', fleet.file]);
  assert.equal(a.code, 0, a.stderr + a.stdout);
  assert.match(a.stdout, /dev: ok — 1 applied, 2 pruned, bundle delivered/);
  assert.equal((await k('dev', ['get', 'rolebinding', '-n', 'search', BINDING, '--ignore-not-found', '-o', 'name'])).stdout, '');
  assert.equal((await k('dev', ['get', 'clusterrole', ROLE, '--ignore-not-found', '-o', 'name'])).stdout, '');
  assert.equal((await k('dev', ['get', 'role', '-n', 'search', 'hand-made', '-o', 'name'])).stdout.trim(), 'role.rbac.authorization.k8s.io/hand-made');
  assert.equal(await canI('dev', ['get', 'configmaps', '-n', 'search', '--as', 'oidc:zoe@contractor.example']), false);
  assert.equal((await ws.cli(['plan', '--kubeconfigs', fleet.file])).code, 0);
  await k('dev', ['delete', 'role', '-n', 'search', 'hand-made']);
});

test('GIVEN a managed namespace no longer generated WHEN applied THEN it is kept with its contents and released; --prune-namespaces would delete it', async () => {
  const orphan = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'e2e-orphan', labels: { 'app.kubernetes.io/managed-by': 'portcullis', 'portcullis.dev/cluster': 'dev' } } });
  // As an earlier apply would have left it: applied with Portcullis' field manager.
  assert.equal((await k('dev', ['apply', '--server-side', '--field-manager=portcullis', '-f', '-'], orphan)).code, 0);
  assert.equal((await k('dev', ['create', 'configmap', 'workload', '-n', 'e2e-orphan', '--from-literal=a=b'])).code, 0);
  const p = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'dev']);
  assert.equal(p.code, 2, p.stdout);
  assert.match(p.stdout, /== dev: 0 to create, 0 to update, 0 to delete, 1 to release/);
  assert.match(p.stdout, /release Namespace e2e-orphan \(kept; Portcullis stops managing it/);
  const pruning = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--prune-namespaces']);
  assert.match(pruning.stdout, /delete Namespace e2e-orphan/);
  const a = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev']);
  assert.equal(a.code, 0, a.stdout + a.stderr);
  assert.match(a.stdout, /dev: ok — 0 applied, 0 pruned, 1 namespace released/);
  const nsJson = JSON.parse((await k('dev', ['get', 'namespace', 'e2e-orphan', '-o', 'json'])).stdout) as { metadata: { labels: Record<string, string>; deletionTimestamp?: string } };
  assert.equal(nsJson.metadata.deletionTimestamp, undefined);
  assert.equal(nsJson.metadata.labels['app.kubernetes.io/managed-by'], undefined);
  assert.equal((await k('dev', ['get', 'configmap', 'workload', '-n', 'e2e-orphan', '-o', 'name'])).stdout.trim(), 'configmap/workload');
  assert.equal((await ws.cli(['plan', '--kubeconfigs', fleet.file])).code, 0);
  await k('dev', ['delete', 'namespace', 'e2e-orphan', '--wait=false']);
});

test('GIVEN drift (a subject added by hand, a foreign label, a binding deleted) WHEN planned THEN shown; WHEN applied with one cluster down THEN reverted on the others and the down one reported', async () => {
  const bindings = docs(ws.read('generated/dev/rbac.yaml')).filter((d) => d.kind === 'RoleBinding');
  const b = bindings[0];
  assert.ok(b?.metadata.namespace);
  const ns = b.metadata.namespace;
  const name = b.metadata.name;
  const patched = await k('dev', ['patch', 'rolebinding', name, '-n', ns, '--type=json', '-p', '[{"op":"add","path":"/subjects/-","value":{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"oidc:mallory"}}]']);
  assert.equal(patched.code, 0, patched.stderr);
  assert.equal((await k('dev', ['label', 'rolebinding', name, '-n', ns, 'team.example/owner=bob'])).code, 0);
  const stagingBinding = docs(ws.read('generated/staging/rbac.yaml')).find((d) => d.kind === 'RoleBinding');
  assert.ok(stagingBinding?.metadata.namespace);
  assert.equal((await k('staging', ['delete', 'rolebinding', stagingBinding.metadata.name, '-n', stagingBinding.metadata.namespace])).code, 0);

  const p = await ws.cli(['plan', '--kubeconfigs', fleet.file]);
  assert.equal(p.code, 2, p.stderr);
  assert.match(p.stdout, /== dev: 0 to create, 1 to update, 0 to delete/);
  assert.match(p.stdout, new RegExp(`update RoleBinding ${ns}/${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(p.stdout, /^ {4}- {4}name: oidc:mallory$/m);
  assert.doesNotMatch(p.stdout, /team\.example\/owner/);
  assert.match(p.stdout, /== staging: 1 to create, 0 to update, 0 to delete/);

  // prod-eu is down: its fleet entry points at a closed loopback port.
  const creds = JSON.parse(readFileSync(fleet.file, 'utf8')) as { clusters: { name: string; adminKubeconfig: string }[] };
  const downPath = join(ws.dir, 'down.kubeconfig');
  downKubeconfig(downPath, await closedPort());
  const credsFile = join(ws.dir, 'creds.json');
  writeFileSync(credsFile, JSON.stringify({ ...creds, clusters: creds.clusters.map((c) => (c.name === 'prod-eu' ? { ...c, adminKubeconfig: downPath } : c)) }));

  const down = await ws.cli(['plan', '--kubeconfigs', credsFile]);
  assert.equal(down.code, 1);
  assert.match(down.stdout, /== prod-eu: ERROR unreachable: /);
  assert.match(down.stdout, /== dev: 0 to create, 1 to update/);
  assert.match(down.stdout, /== staging: 1 to create/);

  const a = await ws.cli(['apply', '--kubeconfigs', credsFile, '--concurrency', '3']);
  assert.equal(a.code, 1, a.stdout);
  assert.match(a.stdout, /Apply summary: 2 of 3 clusters ok, 1 failed/);
  assert.match(a.stdout, /prod-eu: FAILED — unreachable/);
  assert.match(a.stdout, /dev: ok — 1 applied, 0 pruned/);
  assert.match(a.stdout, /staging: ok — 1 applied, 0 pruned/);
  const rb = JSON.parse((await k('dev', ['get', 'rolebinding', name, '-n', ns, '-o', 'json'])).stdout) as { subjects: { name: string }[]; metadata: { labels: Record<string, string> } };
  assert.ok(!rb.subjects.some((s) => s.name === 'oidc:mallory'), 'drift reverted');
  assert.equal(rb.metadata.labels['team.example/owner'], 'bob', 'a label Portcullis does not manage is left alone');
  const clean = await ws.cli(['plan', '--kubeconfigs', fleet.file]);
  assert.equal(clean.code, 0, clean.stdout);
});

test('GIVEN a policy edited but not compiled WHEN apply runs THEN it refuses the stale generated/ and changes nothing', async () => {
  ws.edit('policies/access.ts', (t) => appendToLastFunction(t, EDIT));
  try {
    const a = await ws.cli(['apply', '--kubeconfigs', fleet.file]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /GENERATED_STALE: generated is not what policies compiles to/);
    assert.doesNotMatch(a.stderr, /applying/);
  } finally {
    ws.edit('policies/access.ts', () => originalAccess);
  }
  assert.equal((await ws.cli(['plan', '--kubeconfigs', fleet.file])).code, 0);
});

test('GIVEN a tampered generated/ WHEN planned or applied THEN that cluster is refused (signature) while the others proceed', async () => {
  const original = ws.read('generated/dev/rbac.yaml');
  ws.edit('generated/dev/rbac.yaml', (t) => t.replace('- oidc:team-payments', '- oidc:mallory'));
  assert.notEqual(ws.read('generated/dev/rbac.yaml'), original);
  try {
    const a = await ws.cli(['apply', '--kubeconfigs', fleet.file]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /GENERATED_STALE/);
    const p = await ws.cli(['plan', '--kubeconfigs', fleet.file]);
    assert.equal(p.code, 1);
    assert.match(p.stdout, /== dev: ERROR refusing generated\/dev: BUNDLE_DIGEST: file rbac\.yaml does not match its digest/);
    assert.match(p.stdout, /== staging: no changes/);
    // Even past the staleness check, the signature check alone refuses it.
    const { credentials, kubectl } = await readCredentials(fleet.file);
    const r = await runApply({ generatedDir: join(ws.dir, 'generated'), credentials, kubectl: kubectl ?? 'kubectl', checkFresh: async () => {} });
    const dev = r.results.find((x) => x.cluster === 'dev');
    assert.equal(dev?.ok, false);
    assert.match(dev?.error ?? '', /BUNDLE_DIGEST/);
    assert.ok(r.results.filter((x) => x.cluster !== 'dev').every((x) => x.ok));
    assert.equal(await canI('dev', ['get', 'pods', '-n', 'payments', '--as', 'oidc:probe', '--as-group', 'oidc:mallory']), false);
  } finally {
    ws.edit('generated/dev/rbac.yaml', () => original);
  }
});

test('GIVEN keys pinned with --trusted-key WHEN generated/ is signed by another key THEN every cluster is refused', async () => {
  const other = join(ws.dir, 'other.pub.pem');
  writeFileSync(other, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
  const bad = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--trusted-key', other]);
  assert.equal(bad.code, 1);
  assert.equal((bad.stdout.match(/ERROR refusing generated\/[\w-]+: BUNDLE_UNKNOWN_KEY/g) ?? []).length, 3, bad.stdout);
  const good = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--trusted-key', other, join(ws.dir, 'policies', 'demo-keys', 'signing.pub.pem')]);
  assert.equal(good.code, 0, good.stdout);
  // The apply workflow writes the key from a variable of its protected environment; unset, the file is empty.
  const empty = join(ws.dir, 'empty.pub.pem');
  writeFileSync(empty, '\n');
  const unset = await ws.cli(['apply', '--kubeconfigs', fleet.file, '--trusted-key', empty]);
  assert.equal(unset.code, 1);
  assert.match(unset.stderr, /--trusted-key .*empty\.pub\.pem holds no PEM public key/);
  assert.doesNotMatch(unset.stderr, /delivering|applying/);
  // During a key rotation the one variable holds both keys.
  const both = join(ws.dir, 'both.pub.pem');
  writeFileSync(both, readFileSync(other, 'utf8') + readFileSync(join(ws.dir, 'policies', 'demo-keys', 'signing.pub.pem'), 'utf8'));
  const rotating = await ws.cli(['plan', '--kubeconfigs', fleet.file, '--trusted-key', both]);
  assert.equal(rotating.code, 0, rotating.stdout + rotating.stderr);
});

test('GIVEN an older signed generated/ than what is live WHEN planned THEN it is refused as a rollback', async () => {
  // The workspace is at revision BASE + 2 on dev now; the repository's generated/ is revision BASE.
  const { credentials, kubectl } = await readCredentials(fleet.file);
  const old = makeWorkspace();
  try {
    const plan = await runPlan({ generatedDir: join(old.dir, 'generated'), credentials, kubectl: kubectl ?? 'kubectl', selector: 'dev' });
    assert.equal(plan.clusters[0]?.status, 'error');
    assert.match(plan.clusters[0]?.status === 'error' ? plan.clusters[0].error : '', new RegExp(`BUNDLE_ROLLBACK: revision ${BASE} is older than ${BASE + 3}`));
  } finally {
    old.remove();
  }
});

test('GIVEN a policy edit WHEN apply --dry-run runs THEN the server checks it and nothing changes', async () => {
  ws.edit('policies/access.ts', (t) => appendToLastFunction(t, EDIT));
  assert.equal((await ws.cli(['compile', '--no-typecheck'])).code, 0);
  const d = await ws.cli(['apply', '--dry-run', '--kubeconfigs', fleet.file, '--clusters', 'dev']);
  assert.equal(d.code, 0, d.stderr + d.stdout);
  assert.match(d.stdout, /Apply \(dry run\) summary: 1 of 1 clusters ok/);
  assert.match(d.stderr, /\[dev\] applying 3 objects \(server dry run\)…/);
  assert.equal((await ws.cli(['plan', '--kubeconfigs', fleet.file, '--clusters', 'dev'])).code, 2);
  assert.equal(await canI('dev', ['get', 'configmaps', '-n', 'search', '--as', 'oidc:zoe@contractor.example']), false);
});

test("GIVEN the example policy applied WHEN kubectl auth can-i asks the real clusters THEN RBAC agrees with the authorizer for every grant's rules", async () => {
  // The example policy as generated/ says (the bundles go again in after()).
  await Promise.all(fleet.clusters.map((c) => wipe(c.name)));
  const repo = makeWorkspace();
  try {
    const a = await repo.cli(['apply', '--kubeconfigs', fleet.file]);
    assert.equal(a.code, 0, a.stderr + a.stdout);
    const now = Date.now();
    const mismatches: string[] = [];
    let probes = 0;
    for (const c of fleet.clusters) {
      const rs = decodeRuleSet(repo.read(`generated/${c.name}/rules.json`));
      const index = indexRuleSet(rs);
      const served = new Set((await k(c.name, ['api-resources', '-o', 'name'])).stdout.split('\n').filter(Boolean));
      const cases = probeCases(rs, served);
      probes += cases.length;
      await pool(cases, 4, async (pc) => {
        const attrs: RequestAttributes = { user: pc.user, groups: [...pc.groups, 'system:authenticated'], verb: pc.verb, isResourceRequest: true, path: '', apiGroup: pc.apiGroup, apiVersion: 'v1', resource: pc.resource, subresource: pc.subresource, namespace: pc.namespace, name: '' };
        const v = decide(attrs, index, { now, breakGlass: new Set(rs.grants.filter((g) => g.conditions.breakGlass).map((g) => g.id)) });
        const decision = v.decision;
        // Exactly what the proxy would assert upstream (activation and guard groups included); a refusal as the caller with its own groups.
        const user = v.impersonate?.user ?? pc.user;
        const groups = v.impersonate?.groups ?? pc.groups;
        const res = `${pc.resource}${pc.apiGroup ? `.${pc.apiGroup}` : ''}`;
        const args = [pc.verb, res, ...(pc.subresource ? [`--subresource=${pc.subresource}`] : []), ...(pc.namespace ? ['-n', pc.namespace] : ['--all-namespaces']), '--as', user, ...groups.flatMap((g) => ['--as-group', g])];
        const rbac = await canI(c.name, args);
        if (rbac !== decision.allowed) mismatches.push(`${c.name}: can-i ${args.join(' ')} → ${rbac ? 'yes' : 'no'}, authorizer → ${decision.allowed ? 'allow' : 'deny'} (${decision.reason})`);
      });
    }
    assert.ok(probes > 60, `only ${probes} probes`);
    assert.deepEqual(mismatches, []);
  } finally {
    repo.remove();
  }
});

interface Probe {
  user: string;
  groups: string[];
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
}

/**
 * For every grant and (up to two of) its subjects: a few of its verb/resource
 * pairs spread over its rules in its first namespace, the first pair again in
 * a namespace outside its scope, and a verb it does not grant. Only resources
 * the cluster serves: kubectl cannot ask about the others.
 */
function probeCases(rs: RuleSet, served: ReadonlySet<string>): Probe[] {
  const out = new Map<string, Probe>();
  for (const g of rs.grants) {
    for (const s of g.subjects.slice(0, 2)) {
      const who = s.kind === 'User' ? { user: s.name, groups: [] } : { user: 'oidc:e2e-probe', groups: [s.name] };
      const ns = g.scope.kind === 'cluster' ? 'default' : (g.scope.namespaces[0] ?? 'default');
      const pairs: { verb: string; apiGroup: string; resource: string; subresource: string }[] = [];
      for (const r of g.rules) {
        if (r.resourceNames?.length) continue;
        for (const apiGroup of (r.apiGroups ?? []).filter((x) => x !== '*')) {
          for (const resource of (r.resources ?? []).filter((x) => x !== '*' && !x.startsWith('*/'))) {
            const [res = '', sub = ''] = resource.split('/');
            if (!served.has(apiGroup ? `${res}.${apiGroup}` : res)) continue;
            for (const verb of r.verbs.filter((v) => v !== '*')) pairs.push({ verb, apiGroup, resource: res, subresource: sub });
          }
        }
      }
      if (pairs.length === 0) continue;
      const picks = [...new Set([0, Math.floor(pairs.length / 3), Math.floor((2 * pairs.length) / 3), pairs.length - 1])].map((i) => pairs[i]);
      for (const pair of picks) if (pair) out.set(JSON.stringify({ ...who, ...pair, namespace: ns }), { ...who, ...pair, namespace: ns });
      const first = pairs[0];
      if (first) {
        if (g.scope.kind !== 'cluster') out.set(JSON.stringify({ ...who, ...first, namespace: 'kube-public' }), { ...who, ...first, namespace: 'kube-public' });
        out.set(JSON.stringify({ ...who, ...first, verb: 'escalate', namespace: ns }), { ...who, ...first, verb: 'escalate', namespace: ns });
      }
    }
  }
  return [...out.values()];
}

async function pool<T>(items: readonly T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++] as T);
  }));
}
