// The example policy's own CI identities, end to end: the plan and apply workflows
// authenticate to the proxy with a GitHub-shaped OIDC token from a real issuer
// (oidc-provider on loopback, its own keys, discovery and JWKS; GitHub's claims), and
// `portcullis plan` and `apply --token-file` run through the proxy against a real
// kube-apiserver. Each identity can do what its workflow does and nothing more, at
// the proxy and in the cluster's RBAC alike.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeRuleSet } from '../../core/rule-set-codec.ts';
import { startOidcProvider, type LocalOidcProvider } from '../../sandbox/oidc-issuer.ts';
import { signedExampleGenerated } from '../support/example-bundles.ts';
import { getTestFleet } from '../support/fleet.ts';
import { startHarness, type Harness } from '../proxy/harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const GEN = signedExampleGenerated();
const RULES = decodeRuleSet(readFileSync(join(GEN, 'dev', 'rules.json'), 'utf8'));
const REPO = 'acme/fleet-policy';
const PLAN = `repo:${REPO}:pull_request`;
const APPLY = `repo:${REPO}:environment:production`;

/** The claims GitHub Actions puts in a job's OIDC token (docs.github.com, "About security hardening with OpenID Connect"). */
const githubClaims = (sub: string, o: { event: string; ref: string; workflow: string; environment?: string }) => ({
  sub,
  claims: {
    repository: REPO,
    repository_owner: 'acme',
    event_name: o.event,
    ref: o.ref,
    job_workflow_ref: `${REPO}/.github/workflows/${o.workflow}@${o.ref}`,
    runner_environment: 'github-hosted',
    ...(o.environment ? { environment: o.environment } : {}),
  },
});

describe('the policy repository\'s plan and apply workflows through the proxy, with GitHub OIDC tokens', () => {
  let h: Harness;
  let github: LocalOidcProvider;
  let fleetFile: string;
  let planToken: string;
  let applyToken: string;
  // Not spawnSync: the proxy runs in this process and must keep serving while the CLI talks to it.
  const cli = (args: readonly string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((res) => {
      execFile(process.execPath, [join(ROOT, 'bin/portcullis.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 }, (err, stdout, stderr) =>
        res({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });
  const viaToken = (token: string) => ['--fleet', fleetFile, '--token-file', token, '--proxy-ca', h.proxyCa.caFile, '--generated', GEN, '--kubectl', h.kubectlBin];

  before(async () => {
    github = await startOidcProvider();
    h = await startHarness({
      rbac: readFileSync(join(GEN, 'dev', 'rbac.yaml'), 'utf8'),
      impersonable: RULES.impersonable,
      compiled: { bundleDir: join(GEN, 'dev'), trustedKeyFiles: readdirSync(join(GEN, 'keys')).map((f) => join(GEN, 'keys', f)), serviceAccount: 'portcullis-proxy' },
      // GitHub's issuer as the policy declares it: prefix github:, no groups.
      configExtra: { authn: { issuers: [{ issuer: github.issuer, audiences: ['portcullis'], usernamePrefix: 'github:', caFile: github.caFile }] } },
    });
    fleetFile = join(h.dir, 'ci-fleet.json');
    writeFileSync(fleetFile, JSON.stringify({ clusters: [{ name: 'dev', server: h.cluster.server, proxyUrl: `https://127.0.0.1:${h.port}/clusters/dev`, labels: { env: 'dev' } }] }));
    planToken = join(h.dir, 'plan.token');
    writeFileSync(planToken, await github.token(githubClaims(PLAN, { event: 'pull_request', ref: 'refs/pull/7/merge', workflow: 'plan.yml' })), { mode: 0o600 });
    applyToken = join(h.dir, 'apply.token');
    writeFileSync(applyToken, await github.token(githubClaims(APPLY, { event: 'push', ref: 'refs/heads/main', workflow: 'apply.yml', environment: 'production' })), { mode: 0o600 });
    // The cluster as the last merge left it: the example applied by its admin. Its bundle is signed
    // again for this process, so a bundle another test run left there may carry a later revision.
    const fleet = await getTestFleet();
    h.admin(['delete', 'configmap', 'portcullis-bundle', '-n', 'portcullis-system', '--ignore-not-found']);
    const base = await cli(['apply', '--kubeconfigs', fleet.file, '--clusters', 'dev', '--generated', GEN]);
    assert.equal(base.status, 0, base.stdout + base.stderr);
  });
  after(async () => {
    await h?.stop();
    await github?.stop();
  });

  it('GIVEN drift on dev WHEN plan runs with the pull request\'s token THEN it sees the drift; apply with that token is refused; apply with the production environment\'s token reverts it; a second plan has nothing to do; audit names both identities', async () => {
    let p = await cli(['plan', ...viaToken(planToken)]);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    assert.match(p.stdout, /== dev: no changes/);
    const drifted = 'portcullis:grant:sre-view';
    const b = h.admin(['get', 'rolebindings,clusterrolebindings', '-A', '-l', 'app.kubernetes.io/managed-by=portcullis', '-o', 'name']).stdout.split('\n').find((n) => n.includes(drifted));
    assert.ok(b, `a managed binding of ${drifted}`);
    assert.equal(h.admin(['delete', b]).status, 0);
    p = await cli(['plan', ...viaToken(planToken)]);
    assert.equal(p.status, 2, p.stdout + p.stderr);
    assert.match(p.stdout, new RegExp(drifted));
    const refused = await cli(['apply', ...viaToken(planToken)]);
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /dev: FAILED — .*forbidden/i);
    assert.notEqual(h.admin(['get', b]).status, 0, 'the plan identity changed nothing');
    const applied = await cli(['apply', ...viaToken(applyToken)]);
    assert.equal(applied.status, 0, applied.stdout + applied.stderr);
    assert.equal(h.admin(['get', b]).status, 0, 'the apply identity reverted the drift');
    p = await cli(['plan', ...viaToken(planToken)]);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    const users = new Set(h.auditEvents().map((e) => e.user.username));
    assert.ok(users.has(`github:${PLAN}`) && users.has(`github:${APPLY}`), [...users].join());
  });

  it('GIVEN each identity THEN the proxy and the cluster\'s RBAC agree it may do its workflow\'s calls and nothing else', async () => {
    const plan = h.kubeconfig(readFileSync(planToken, 'utf8').trim());
    const apply = h.kubeconfig(readFileSync(applyToken, 'utf8').trim());
    // [identity, verb, resource, namespace or '' (cluster), name or '', expected]
    const cases: readonly [string, string, string, string, string, boolean][] = [
      [PLAN, 'list', 'clusterrolebindings.rbac.authorization.k8s.io', '', '', true],
      [PLAN, 'list', 'rolebindings.rbac.authorization.k8s.io', '', '', true],
      [PLAN, 'get', 'namespaces', '', 'portcullis-system', true],
      [PLAN, 'get', 'configmaps', 'portcullis-system', 'portcullis-bundle', true],
      [PLAN, 'get', 'configmaps', 'portcullis-system', 'portcullis-proxy-config', false],
      [PLAN, 'patch', 'clusterroles.rbac.authorization.k8s.io', '', '', false],
      [PLAN, 'patch', 'configmaps', 'portcullis-system', 'portcullis-bundle', false],
      [PLAN, 'list', 'secrets', 'payments', '', false],
      [APPLY, 'patch', 'clusterroles.rbac.authorization.k8s.io', '', '', true],
      [APPLY, 'escalate', 'clusterroles.rbac.authorization.k8s.io', '', '', true],
      [APPLY, 'delete', 'rolebindings.rbac.authorization.k8s.io', 'payments', '', true],
      [APPLY, 'create', 'namespaces', '', '', true],
      [APPLY, 'patch', 'configmaps', 'portcullis-system', 'portcullis-bundle', true],
      [APPLY, 'patch', 'configmaps', 'portcullis-system', 'portcullis-proxy-config', false],
      [APPLY, 'delete', 'configmaps', 'portcullis-system', 'portcullis-bundle', false],
      [APPLY, 'create', 'configmaps', 'payments', '', false],
      [APPLY, 'list', 'secrets', 'payments', '', false],
      [APPLY, 'create', 'pods', 'payments', '', false],
      [APPLY, 'create', 'pods/exec', 'payments', '', false],
      [APPLY, 'impersonate', 'users', '', '', false],
      [APPLY, 'list', 'pods', 'payments', '', false],
    ];
    const mismatches: string[] = [];
    for (const [who, verb, resource, namespace, name, want] of cases) {
      const target = [verb, name ? `${resource}/${name}` : resource, ...(namespace ? ['-n', namespace] : [])];
      const viaProxy = await h.kubectl(who === PLAN ? plan : apply, ['auth', 'can-i', ...target]);
      const upstream = h.admin(['auth', 'can-i', ...target, '--as', `github:${who}`]);
      // can-i prints the answer first, then maybe ` - REASON`.
      const got = [viaProxy.stdout.trim().split(/\s/)[0] ?? '', upstream.stdout.trim().split(/\s/)[0] ?? ''];
      const expected = want ? 'yes' : 'no';
      if (got[0] !== expected || got[1] !== expected) mismatches.push(`${who} ${target.join(' ')}: proxy ${got[0] || viaProxy.stderr.trim()}, RBAC ${got[1] || upstream.stderr.trim()}, want ${expected}`);
    }
    assert.deepEqual(mismatches, []);
  });
});
