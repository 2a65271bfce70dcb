import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Octokit } from '@octokit/rest';
import type { KubeObject } from '../../gitops/objects.ts';
import { planCluster, type Plan } from '../../gitops/plan.ts';
import { COMMENT_MARKER } from '../../gitops/render.ts';
import { STATUS_CONTEXT, octokitFor, publishPlan, pullRequestFromEnv, type PullRequestTarget } from '../../gitops/github.ts';
import { GitHubStandIn, pullRequestStandIn } from '../support/github-server.ts';

const OWNER = 'acme';
const REPO = 'fleet-policy';
const PR = 17;
const SHA = '6dcb09b5b57875f334f61aebed695e2e4193db5e';

const labels = { 'app.kubernetes.io/managed-by': 'portcullis', 'portcullis.dev/cluster': 'dev' };
const files = { 'rbac.yaml': 'a', 'rules.json': 'b', 'bundle.sig.json': 'c' };
const emptyRules = { apiVersion: 'portcullis.dev/v1' as const, kind: 'RuleSet' as const, cluster: 'dev', grants: [], denies: [], impersonable: { users: [], groups: [] } };

function planOf(n: number, verb = 'get'): Plan {
  const objects: KubeObject[] = Array.from({ length: n }, (_, i) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: `role-${i}`, namespace: 'team-a', labels },
    rules: [{ apiGroups: [''], resources: ['pods', 'services', 'configmaps', 'secrets'], verbs: [verb, 'list', 'watch', `custom-${i}`] }],
  }));
  return { clusters: [planCluster({ name: 'dev', objects, ruleSet: emptyRules, bundle: { revision: 2, files } }, { name: 'dev', objects: [], bundle: null })] };
}

let gh: ReturnType<typeof pullRequestStandIn>;
let target: PullRequestTarget;
let octokit: Octokit;

before(async () => {
  gh = pullRequestStandIn({ owner: OWNER, repo: REPO, issueNumber: PR });
  const base = await gh.server.start();
  target = { owner: OWNER, repo: REPO, issueNumber: PR, sha: SHA, token: 'ghs_test', apiUrl: base, runUrl: 'https://github.com/acme/fleet-policy/actions/runs/42' };
  octokit = octokitFor(target);
});
after(async () => {
  await gh.server.stop();
});

test('GIVEN a pull request without a plan comment WHEN the plan is published THEN one marked comment is created and a success status is set', async () => {
  const r = await publishPlan(octokit, target, planOf(2));
  assert.equal(r.comment, 'created');
  assert.equal(gh.comments.length, 1);
  assert.ok(gh.comments[0]?.body.startsWith(COMMENT_MARKER));
  assert.match(gh.comments[0]?.body ?? '', /create\*\* `Role team-a\/role-0`/);
  assert.deepEqual(gh.statuses.at(-1), {
    sha: SHA,
    state: 'success',
    context: STATUS_CONTEXT,
    description: '1 of 1 clusters change (+2 ~0 -0)',
    target_url: 'https://github.com/acme/fleet-policy/actions/runs/42',
  });
  assert.deepEqual(gh.server.violations, []);
});

test('GIVEN the same plan again WHEN published THEN the comment is left alone', async () => {
  const r = await publishPlan(octokit, target, planOf(2));
  assert.equal(r.comment, 'unchanged');
  assert.equal(gh.comments.length, 1);
  assert.equal(gh.comments[0]?.updated, 0);
  assert.ok(!gh.server.requests.some((x) => x.includes('issues/update-comment')));
  assert.deepEqual(gh.server.violations, []);
});

test('GIVEN a changed plan and 150 other comments before it WHEN published THEN the sticky comment is found on a later page and updated in place', async () => {
  const sticky = gh.comments.shift();
  assert.ok(sticky);
  for (let i = 0; i < 150; i++) gh.comments.push({ id: 5000 + i, body: `review comment ${i}`, updated: 0 });
  gh.comments.push(sticky);
  const r = await publishPlan(octokit, target, planOf(3, 'create'));
  assert.equal(r.comment, 'updated');
  assert.equal(gh.comments.filter((c) => c.body.includes(COMMENT_MARKER)).length, 1);
  assert.equal(sticky.updated, 1);
  assert.match(sticky.body, /role-2/);
  assert.ok(gh.server.requests.some((x) => /^GET \/repos\/acme\/fleet-policy\/issues\/17\/comments\?per_page=100&page=2 issues\/list-comments$/.test(x)), gh.server.requests.join('\n'));
  assert.deepEqual(gh.server.violations, []);
});

test('GIVEN a huge plan WHEN published THEN the comment stays under 65,536 characters, folded, with a link to the run', async () => {
  await publishPlan(octokit, target, planOf(1500));
  const body = gh.comments.find((c) => c.body.includes(COMMENT_MARKER))?.body ?? '';
  assert.ok(body.length <= 65_536, `comment is ${body.length} chars`);
  assert.match(body, /<details><summary>1500 object changes<\/summary>/);
  assert.match(body, /full plan: https:\/\/github\.com\/acme\/fleet-policy\/actions\/runs\/42/);
  assert.deepEqual(gh.server.violations, []);
});

test('GIVEN a cluster that failed WHEN published THEN the status is failure', async () => {
  const plan: Plan = { clusters: [...planOf(1).clusters, { cluster: 'prod-eu', status: 'error', error: 'unreachable: connection refused' }] };
  await publishPlan(octokit, target, plan);
  assert.equal(gh.statuses.at(-1)?.state, 'failure');
  assert.match(gh.statuses.at(-1)?.description ?? '', /1 failed/);
  assert.deepEqual(gh.server.violations, []);
});

test('the stand-in refuses what GitHub would: a bad enum in a body, an undeclared query parameter, an unknown operation', async () => {
  const s = new GitHubStandIn().on('repos/create-commit-status', () => ({ status: 201, body: {} }));
  const base = await s.start();
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const o = new Octokit({ auth: 't', baseUrl: base, log: quiet });
  try {
    await assert.rejects(o.rest.repos.createCommitStatus({ owner: 'a', repo: 'b', sha: SHA, state: 'bogus' as 'success' }));
    await assert.rejects(o.request('GET /repos/{owner}/{repo}/issues/{issue_number}/comments', { owner: 'a', repo: 'b', issue_number: 1, colour: 'red' }));
    await assert.rejects(o.request('POST /repos/{owner}/{repo}/plans', { owner: 'a', repo: 'b' }));
    // A valid request whose answer is not schema-shaped is caught too.
    await assert.rejects(o.rest.repos.createCommitStatus({ owner: 'a', repo: 'b', sha: SHA, state: 'success' }));
    assert.equal(s.violations.length, 4);
    assert.match(s.violations[0] ?? '', /body does not match the schema.*state/);
    assert.match(s.violations[1] ?? '', /undeclared query parameter colour/);
    assert.match(s.violations[2] ?? '', /unknown operation: POST \/repos\/a\/b\/plans/);
    assert.match(s.violations[3] ?? '', /answer does not match the response schema/);
  } finally {
    await s.stop();
  }
});

test('GIVEN a GitHub Actions pull_request environment WHEN read THEN repo, number, head sha, API URL and run link come from it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gh-event-'));
  const event = join(dir, 'event.json');
  await writeFile(event, JSON.stringify({ action: 'synchronize', number: PR, pull_request: { number: PR, head: { sha: SHA } } }));
  const t = await pullRequestFromEnv({
    GITHUB_REPOSITORY: `${OWNER}/${REPO}`,
    GITHUB_EVENT_PATH: event,
    GITHUB_TOKEN: 'ghs_x',
    GITHUB_API_URL: 'https://ghe.example.com/api/v3',
    GITHUB_SERVER_URL: 'https://ghe.example.com',
    GITHUB_RUN_ID: '9',
  });
  assert.deepEqual(t, { owner: OWNER, repo: REPO, issueNumber: PR, sha: SHA, token: 'ghs_x', apiUrl: 'https://ghe.example.com/api/v3', runUrl: 'https://ghe.example.com/acme/fleet-policy/actions/runs/9' });
  await assert.rejects(pullRequestFromEnv({ GITHUB_REPOSITORY: 'a/b', GITHUB_TOKEN: 't' }), (e: Error & { code?: string }) => e.code === 'GITHUB_CONTEXT');
});
