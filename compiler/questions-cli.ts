import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompilerError } from './compiler-error.ts';
import { decodeRuleSet, indexRuleSet, type RuleSet } from '../core/index.ts';
import { accessLines, diffAccess, formatAccessLine } from '../core/access-diff.ts';
import { explainRequest, parseResourceArg, whoCan } from './questions.ts';

function readRuleSet(generated: string, cluster: string): RuleSet {
  const p = join(generated, cluster, 'rules.json');
  if (!existsSync(p)) throw new CompilerError('NOT_FOUND', `no rule set for cluster '${cluster}' at ${p}; run 'portcullis compile'`);
  return decodeRuleSet(readFileSync(p, 'utf8'));
}

function timeOf(now: string | undefined): number {
  const t = now ? Date.parse(now) : Date.now();
  if (Number.isNaN(t)) throw new CompilerError('BAD_ARGUMENT', `--now '${now}' is not an RFC 3339 time`);
  return t;
}

/** `portcullis who-can`. */
export function runWhoCan(verb: string, resource: string, o: { cluster: string; namespace: string; name: string; generated: string; now?: string }): void {
  const r = parseResourceArg(resource);
  const rows = whoCan(
    { verb, isResourceRequest: true, path: '', apiVersion: '', ...r, namespace: o.namespace, name: o.name },
    indexRuleSet(readRuleSet(o.generated, o.cluster)),
    timeOf(o.now),
  );
  if (rows.length === 0) {
    process.stdout.write(`nobody can ${verb} ${resource}${o.namespace ? ` in ${o.namespace}` : ''} on ${o.cluster}\n`);
    return;
  }
  for (const row of rows) {
    const note = row.deniedBy ? `  DENIED by ${row.deniedBy.id} (${row.deniedBy.source.file}:${row.deniedBy.source.line})` : row.inactive ? `  (${row.inactive})` : '';
    process.stdout.write(`${row.subject.kind} ${row.subject.name}\tvia ${row.grant.id} (${row.grant.source.file}:${row.grant.source.line})${note}\n`);
  }
}

/** `portcullis explain`: exit 0 when allowed, 3 when denied. */
export function runExplain(method: string, path: string, o: { user: string; group: string[]; cluster: string; generated: string; now?: string; breakGlass: string[] }): void {
  const rs = readRuleSet(o.generated, o.cluster);
  const r = explainRequest(method, path, { user: o.user, groups: o.group }, indexRuleSet(rs), { now: timeOf(o.now), breakGlass: new Set(o.breakGlass) });
  process.stdout.write(`${r.lines.join('\n')}\n`);
  if (!r.allowed) process.exitCode = 3;
}

/** The rule sets of every cluster at a git revision (`WORKTREE` for the files on disk). */
function ruleSetsAt(rev: string, generated: string): Map<string, RuleSet> {
  const out = new Map<string, RuleSet>();
  const read = (p: string) => (rev === 'WORKTREE' ? readFileSync(p, 'utf8') : execFileSync('git', ['show', `${rev}:${p}`], { encoding: 'utf8', maxBuffer: 256 << 20 }));
  let list: string[];
  try {
    list = rev === 'WORKTREE' ? execFileSync('git', ['ls-files', '--others', '--cached', generated], { encoding: 'utf8' }).split('\n') : execFileSync('git', ['ls-tree', '-r', '--name-only', rev, '--', generated], { encoding: 'utf8' }).split('\n');
  } catch {
    throw new CompilerError('NOT_FOUND', `cannot read ${generated}/ at '${rev}': is it a git revision?`);
  }
  for (const p of list.filter((x) => x.endsWith('/rules.json')).sort()) {
    const rs = decodeRuleSet(read(p));
    out.set(rs.cluster, rs);
  }
  return out;
}

/** `portcullis diff-access BASE HEAD`: per cluster, who gains or loses what. Exit 0 = no change, 2 = changes. */
export function runDiffAccess(base: string, head: string, o: { generated: string; format: string }): void {
  const a = ruleSetsAt(base, o.generated);
  const b = ruleSetsAt(head, o.generated);
  const clusters = [...new Set([...a.keys(), ...b.keys()])].sort();
  const result = clusters.map((c) => ({ cluster: c, changes: accessLines(diffAccess(a.get(c), b.get(c))) }));
  const any = result.some((r) => r.changes.length);
  if (o.format === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const md = o.format === 'markdown';
    for (const r of result) {
      process.stdout.write(md ? `### ${r.cluster}\n\n` : `${r.cluster}:\n`);
      if (!r.changes.length) process.stdout.write(md ? 'No access changes.\n\n' : '  no access changes\n');
      else process.stdout.write(md ? `\`\`\`diff\n${r.changes.map(formatAccessLine).join('\n')}\n\`\`\`\n\n` : `${r.changes.map((l) => `  ${formatAccessLine(l)}`).join('\n')}\n`);
    }
  }
  if (any) process.exitCode = 2;
}
