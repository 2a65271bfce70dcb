/** The git commands apply and audit-trace run: `git -C DIR …`, output as text, failures as GitopsError. */
import { spawn } from 'node:child_process';
import { GitopsError } from './gitops-error.ts';

/** Runs `git -C repo ARGS` and resolves with its standard output; a non-zero exit rejects with git's message. */
export function git(repo: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', repo, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new GitopsError('GIT_FAILED', `git: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new GitopsError('GIT_FAILED', `git ${args.join(' ')}: ${Buffer.concat(err).toString('utf8').trim() || `exit ${code}`}`));
    });
  });
}

/**
 * Refuses to deliver under `commit` unless it is what `generatedDir` holds:
 * the checked-out commit, with no change to generated/ beside it (staged,
 * unstaged, untracked or ignored). The proxies write the commit into every audit
 * record, so an auditor must be able to read the applied bundle at it.
 */
export async function checkCommitCheckedOut(generatedDir: string, commit: string): Promise<void> {
  let head: string;
  try {
    head = (await git(generatedDir, ['rev-parse', 'HEAD'])).trim();
  } catch (e) {
    throw new GitopsError('COMMIT_MISMATCH', `--commit ${commit}: ${generatedDir} is not in a git checkout (${e instanceof Error ? e.message : String(e)})`);
  }
  if (head !== commit) throw new GitopsError('COMMIT_MISMATCH', `--commit ${commit} is not the checked-out commit (HEAD is ${head}); apply from a checkout of the commit you name`);
  // Ignored files count too: apply reads every file under generated/, ignored or not.
  const dirty = (await git(generatedDir, ['--no-optional-locks', 'status', '--porcelain', '--untracked-files=all', '--ignored=matching', '--', '.'])).split('\n').filter(Boolean);
  if (dirty.length > 0) {
    const shown = dirty.slice(0, 5).map((l) => l.slice(3)).join(', ');
    throw new GitopsError('COMMIT_MISMATCH', `--commit ${commit}: ${generatedDir} differs from that commit (${dirty.length} changed file(s): ${shown}${dirty.length > 5 ? ', …' : ''}); commit them or apply without --commit`);
  }
}
