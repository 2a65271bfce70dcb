import { readFile } from 'node:fs/promises';
import { Octokit } from '@octokit/rest';
import { GitopsError } from './gitops-error.ts';
import { planExitCode, type Plan } from './plan.ts';
import { COMMENT_MARKER, renderMarkdown, summarize } from './render.ts';

/** Where the plan goes: a pull request and its head commit. */
export interface PullRequestTarget {
  readonly owner: string;
  readonly repo: string;
  readonly issueNumber: number;
  readonly sha: string;
  readonly token: string;
  readonly apiUrl: string;
  /** The workflow run, linked from the comment and the status. */
  readonly runUrl?: string;
}

/** The context the GitHub status is posted under. */
export const STATUS_CONTEXT = 'portcullis/plan';

/**
 * Reads the pull request from the GitHub Actions environment:
 * GITHUB_REPOSITORY, GITHUB_EVENT_PATH (a `pull_request` event), GITHUB_TOKEN,
 * GITHUB_API_URL, and GITHUB_SERVER_URL/GITHUB_RUN_ID for the run link.
 */
export async function pullRequestFromEnv(env: NodeJS.ProcessEnv): Promise<PullRequestTarget> {
  const need = (k: string): string => {
    const v = env[k];
    if (!v) throw new GitopsError('GITHUB_CONTEXT', `${k} is not set; --comment runs inside a GitHub Actions pull_request workflow`);
    return v;
  };
  const [owner, repo] = need('GITHUB_REPOSITORY').split('/');
  if (!owner || !repo) throw new GitopsError('GITHUB_CONTEXT', 'GITHUB_REPOSITORY is not OWNER/REPO');
  const token = need('GITHUB_TOKEN');
  const eventPath = need('GITHUB_EVENT_PATH');
  let event: { pull_request?: { number?: unknown; head?: { sha?: unknown } }; number?: unknown };
  try {
    event = JSON.parse(await readFile(eventPath, 'utf8')) as typeof event;
  } catch (e) {
    throw new GitopsError('GITHUB_CONTEXT', `cannot read the event payload ${eventPath}: ${(e as Error).message}`);
  }
  const number = event.pull_request?.number ?? event.number;
  const sha = event.pull_request?.head?.sha;
  if (typeof number !== 'number' || typeof sha !== 'string') {
    throw new GitopsError('GITHUB_CONTEXT', `${eventPath} is not a pull_request event (no pull_request.number / head.sha)`);
  }
  const server = env['GITHUB_SERVER_URL'];
  const run = env['GITHUB_RUN_ID'];
  return {
    owner,
    repo,
    issueNumber: number,
    sha,
    token,
    apiUrl: env['GITHUB_API_URL'] || 'https://api.github.com',
    ...(server && run ? { runUrl: `${server}/${owner}/${repo}/actions/runs/${run}` } : {}),
  };
}

/** An Octokit for the target's API. */
export function octokitFor(t: PullRequestTarget): Octokit {
  return new Octokit({ auth: t.token, baseUrl: t.apiUrl, userAgent: 'portcullis-plan' });
}

/**
 * One sticky comment per pull request: found again by the hidden marker,
 * updated in place, left alone when the body is unchanged, created otherwise.
 */
export async function upsertStickyComment(
  octokit: Octokit,
  t: PullRequestTarget,
  body: string,
): Promise<{ readonly action: 'created' | 'updated' | 'unchanged'; readonly id: number }> {
  if (!body.includes(COMMENT_MARKER)) body = `${COMMENT_MARKER}\n${body}`;
  const comments = await octokit.paginate(octokit.rest.issues.listComments, { owner: t.owner, repo: t.repo, issue_number: t.issueNumber, per_page: 100 });
  const mine = comments.find((c) => (c.body ?? '').includes(COMMENT_MARKER));
  if (mine) {
    if (mine.body === body) return { action: 'unchanged', id: mine.id };
    await octokit.rest.issues.updateComment({ owner: t.owner, repo: t.repo, comment_id: mine.id, body });
    return { action: 'updated', id: mine.id };
  }
  const created = await octokit.rest.issues.createComment({ owner: t.owner, repo: t.repo, issue_number: t.issueNumber, body });
  return { action: 'created', id: created.data.id };
}

/** Sets the commit status that carries the plan's summary. */
export async function setPlanStatus(octokit: Octokit, t: PullRequestTarget, plan: Plan): Promise<void> {
  const code = planExitCode(plan);
  const description = summarize(plan);
  await octokit.rest.repos.createCommitStatus({
    owner: t.owner,
    repo: t.repo,
    sha: t.sha,
    state: code === 1 ? 'failure' : 'success',
    context: STATUS_CONTEXT,
    // GitHub caps the description at 140 characters.
    description: description.length > 140 ? `${description.slice(0, 139)}…` : description,
    ...(t.runUrl ? { target_url: t.runUrl } : {}),
  });
}

/** Posts the plan: the sticky comment, then the status. */
export async function publishPlan(octokit: Octokit, t: PullRequestTarget, plan: Plan): Promise<{ readonly comment: 'created' | 'updated' | 'unchanged' }> {
  const body = renderMarkdown(plan, t.runUrl ? { fullPlanUrl: t.runUrl } : {});
  const { action } = await upsertStickyComment(octokit, t, body);
  await setPlanStatus(octokit, t, plan);
  return { comment: action };
}
