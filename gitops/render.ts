import { accessLines, formatAccessLine } from '../core/access-diff.ts';
import { countChanges, hasChanges, planExitCode, type ClusterPlan, type Plan } from './plan.ts';

/** The hidden marker that identifies the sticky plan comment on a pull request. */
export const COMMENT_MARKER = '<!-- portcullis-plan -->';
/** GitHub's limit on an issue comment body. */
export const GITHUB_COMMENT_LIMIT = 65_536;

const RELEASE_NOTE = ' (kept; Portcullis stops managing it — --prune-namespaces would delete it and everything in it)';

/** A one-line summary of the whole plan, e.g. `2 of 3 clusters change (+4 ~1 -2); 1 unreachable`. */
export function summarize(plan: Plan): string {
  const ok = plan.clusters.filter((c) => c.status === 'ok');
  const failed = plan.clusters.length - ok.length;
  const changing = ok.filter(hasChanges);
  const n = { create: 0, update: 0, delete: 0, release: 0 };
  for (const c of ok) {
    const k = countChanges(c);
    n.create += k.create;
    n.update += k.update;
    n.delete += k.delete;
    n.release += k.release;
  }
  const counts = `+${n.create} ~${n.update} -${n.delete}${n.release ? `, ${n.release} namespace${n.release === 1 ? '' : 's'} released` : ''}`;
  const head = changing.length === 0 ? `no changes on ${ok.length} cluster${ok.length === 1 ? '' : 's'}` : `${changing.length} of ${plan.clusters.length} clusters change (${counts})`;
  return failed ? `${head}; ${failed} failed` : head;
}

function clusterHeadline(c: ClusterPlan): string {
  if (c.status === 'error') return `${c.cluster}: ERROR ${c.error}`;
  const n = countChanges(c);
  const bundle = c.bundle.changed ? `bundle revision ${c.bundle.fromRevision ?? 'none'} → ${c.bundle.toRevision}` : `bundle revision ${c.bundle.toRevision} (unchanged)`;
  if (!hasChanges(c)) return `${c.cluster}: no changes (${c.unchanged} objects up to date, ${bundle})`;
  return `${c.cluster}: ${n.create} to create, ${n.update} to update, ${n.delete} to delete, ${n.release ? `${n.release} to release, ` : ''}${c.unchanged} unchanged; ${bundle}`;
}

/** The plan for a terminal. Pure. */
export function renderText(plan: Plan): string {
  const out: string[] = [];
  for (const c of plan.clusters) {
    out.push(`== ${clusterHeadline(c)}`);
    if (c.status === 'error') continue;
    const lines = accessLines(c.access);
    if (lines.length) {
      out.push('  Effective access:');
      for (const l of lines) out.push(`    ${formatAccessLine(l)}`);
    }
    for (const ch of c.changes) {
      out.push(`  ${ch.action} ${ch.ref}${ch.action === 'release' ? RELEASE_NOTE : ''}`);
      for (const l of ch.diff.split('\n')) out.push(`    ${l}`);
    }
  }
  out.push(`Summary: ${summarize(plan)}`);
  return `${out.join('\n')}\n`;
}

/** The plan as JSON (diffs included; full objects left out). Pure. */
export function renderJson(plan: Plan): string {
  return `${JSON.stringify(
    {
      exitCode: planExitCode(plan),
      summary: summarize(plan),
      clusters: plan.clusters.map((c) =>
        c.status === 'error'
          ? c
          : {
              cluster: c.cluster,
              status: c.status,
              counts: countChanges(c),
              unchanged: c.unchanged,
              bundle: { changed: c.bundle.changed, fromRevision: c.bundle.fromRevision, toRevision: c.bundle.toRevision },
              access: c.access,
              changes: c.changes.map(({ action, key, ref, kind, diff }) => ({ action, key, ref, kind, diff })),
            },
      ),
    },
    null,
    2,
  )}\n`;
}

/** Options for the markdown rendering. */
export interface MarkdownOptions {
  /** Upper bound on the length of the result. @default GITHUB_COMMENT_LIMIT */
  readonly maxChars?: number;
  /** A link to the full plan (e.g. the workflow run), shown when diffs were left out. */
  readonly fullPlanUrl?: string;
}

/**
 * The plan as a pull-request comment: the marker, a summary, per cluster the
 * effective-access changes in the open and the object diffs folded in
 * `<details>`. Kept under `maxChars` by shortening first the diffs, then the
 * access lists; says so when it did. Pure.
 */
export function renderMarkdown(plan: Plan, opts: MarkdownOptions = {}): string {
  const max = opts.maxChars ?? GITHUB_COMMENT_LIMIT;
  // Budgets per section, from generous to bare; the first that fits wins.
  const budgets: readonly { diff: number; access: number }[] = [
    { diff: Infinity, access: Infinity },
    { diff: 4000, access: Infinity },
    { diff: 800, access: 200 },
    { diff: 0, access: 50 },
    { diff: 0, access: 0 },
  ];
  for (const b of budgets) {
    const md = markdownWith(plan, b.diff, b.access, b !== budgets[0], opts.fullPlanUrl);
    if (md.length <= max) return md;
  }
  const bare = markdownWith(plan, 0, 0, true, opts.fullPlanUrl);
  const note = '\n\n_…truncated to fit a GitHub comment._\n';
  return bare.slice(0, Math.max(0, max - note.length)) + note;
}

function markdownWith(plan: Plan, diffBudget: number, accessBudget: number, shortened: boolean, url: string | undefined): string {
  const code = planExitCode(plan);
  const icon = code === 1 ? '❌' : code === 2 ? '📝' : '✅';
  const out: string[] = [COMMENT_MARKER, `## ${icon} Portcullis plan`, '', `**${escapeMd(summarize(plan))}**`, ''];
  out.push('| cluster | create | update | delete | unchanged | bundle |', '| --- | ---: | ---: | ---: | ---: | --- |');
  for (const c of plan.clusters) {
    if (c.status === 'error') {
      out.push(`| ${escapeMd(c.cluster)} | – | – | – | – | ❌ ${escapeMd(c.error).replace(/\n/g, ' ')} |`);
      continue;
    }
    const n = countChanges(c);
    const bundle = c.bundle.changed ? `${c.bundle.fromRevision ?? 'none'} → ${c.bundle.toRevision}` : `${c.bundle.toRevision}`;
    out.push(`| ${escapeMd(c.cluster)} | ${n.create} | ${n.update} | ${n.delete}${n.release ? ` (+${n.release} released)` : ''} | ${c.unchanged} | ${bundle} |`);
  }
  for (const c of plan.clusters) {
    if (c.status === 'error' || !hasChanges(c)) continue;
    out.push('', `### ${escapeMd(c.cluster)}`);
    const lines = accessLines(c.access);
    if (lines.length) {
      out.push('', '**Effective access changes**', '', '```diff');
      for (const l of lines.slice(0, accessBudget)) out.push(fence(formatAccessLine(l)));
      if (lines.length > accessBudget) out.push(`# … ${lines.length - Math.min(accessBudget, lines.length)} more access changes not shown`);
      out.push('```');
    } else out.push('', '_No effective-access change._');
    if (c.changes.length) {
      out.push('', `<details><summary>${c.changes.length} object change${c.changes.length === 1 ? '' : 's'}</summary>`, '');
      let used = 0;
      let hidden = 0;
      for (const ch of c.changes) {
        const body = fence(ch.diff);
        if (used + body.length > diffBudget) {
          hidden++;
          out.push(`- ${ch.action} \`${ch.ref}\``);
          continue;
        }
        used += body.length;
        out.push(`**${ch.action}** \`${ch.ref}\`${ch.action === 'release' ? escapeMd(RELEASE_NOTE) : ''}`, '', '```diff', body, '```', '');
      }
      if (hidden) out.push('', `_${hidden} diff${hidden === 1 ? '' : 's'} left out to fit a comment${url ? `; full plan: ${url}` : ''}._`);
      out.push('</details>');
    }
  }
  if (shortened) out.push('', `_This plan was shortened to fit a GitHub comment${url ? `; full plan: ${url}` : ''}._`);
  return `${out.join('\n')}\n`;
}

function escapeMd(s: string): string {
  return s.replace(/[|<>]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** Keeps a code block closed: a ``` inside a diff would end the fence early. */
function fence(s: string): string {
  return s.replace(/```/g, '`\u200b``');
}
